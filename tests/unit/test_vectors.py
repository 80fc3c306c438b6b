"""The protocol's known-answer vectors (tests/vectors/*.json) hold against the code.

Each vector is recomputed from its stored inputs by the code and compared
byte for byte; then its stored bytes are decoded by the code's parsers and
the fields checked against the inputs. A change to any format on the wire
fails here: that is a protocol change (see docs/protocol.md and
tests/vectors/make_vectors.py). Last, docs/protocol.md and the vector files
name each other.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
from typing import Any

import nacl.bindings
import pytest

from anonsip._errors import RemoteProtocolError
from anonsip.admission import (
    RESTING_EFFORT,
    GateLimits,
    RequestGate,
    Verdict,
    leading_zero_bits,
    verify,
)
from anonsip.call import Direction, MediaPreferences, SessionDescription, sipfrag_status
from anonsip.dht import (
    Challenge,
    Collect,
    Delete,
    DeleteResult,
    DepositOutcome,
    DepositResult,
    Deposits,
    DepositStore,
    DhtRecord,
    Error,
    FindNode,
    FindValue,
    FrameDecoder,
    NodeId,
    Nodes,
    Ping,
    Pong,
    Proof,
    Store,
    StoreDeposit,
    StoreResult,
    Value,
    check_kind,
    puzzle_bits,
    satisfies_puzzle,
    verify_identity_proof,
)
from anonsip.dht._codec import MAX_FRAME, MAX_PAGE
from anonsip.dht._identity import PUZZLE_SEED_LABEL
from anonsip.dht._kinds import KindVerdict
from anonsip.dht._placement import SharedRandom, value_of_location
from anonsip.dht._store import RecordStore, StoreOutcome
from anonsip.identity import (
    NEED_DATA,
    Address,
    CloseReceived,
    HandshakeComplete,
    Identity,
    Message,
    SafetyNumber,
    SecureChannel,
    TimePeriods,
    blind_public_key,
    ed25519_to_x25519_public,
    verify_signature,
)
from anonsip.invite import Invite, looks_like_invite
from anonsip.mailbox import Deletion, Deposit, LetterKind, mailbox_key, open_letter, seal_letter
from anonsip.media import PathMerger, derive_media_keys
from anonsip.media._frame import MediaReceiver
from anonsip.registration import Presence, open_record, record_period, verify_outer
from anonsip.sip import (
    MessageParser,
    Request,
    Response,
    message_text,
    parse_imdn,
    parse_pidf,
)
from onion import public_key_from_onion_address
from tests.vectors import make_vectors
from tests.vectors.make_vectors import CALL_ID, CALLEE_TAG, Scripted

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTOR_DIR = ROOT / "tests" / "vectors"
PROTOCOL_DOC = ROOT / "docs" / "protocol.md"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTOR_DIR / f"{name}.json").read_text())
    return data


def _b(text: str) -> bytes:
    return bytes.fromhex(text)


# -- recomputed from the inputs, byte for byte -------------------------------------------------


@pytest.mark.parametrize("name", sorted(make_vectors.VECTORS))
def test_vector_is_what_the_code_makes_from_its_inputs(name: str) -> None:
    vector = load(name)
    assert make_vectors.build(name, vector["inputs"]) == vector["expected"], (
        f"tests/vectors/{name}.json no longer matches the code: a format on the wire changed. "
        "If that is meant, it is a protocol change: update docs/protocol.md and regenerate "
        "with `python -m tests.vectors.make_vectors --protocol-change`."
    )


def test_a_changed_byte_is_noticed() -> None:
    vector = load("media")
    path = vector["expected"]["paths"][1]
    frames = path["caller_frames"]
    flipped = frames[0][:-2] + f"{int(frames[0][-2:], 16) ^ 1:02x}"
    changed_path = {**path, "caller_frames": [flipped, *frames[1:]]}
    changed = {**vector["expected"], "paths": [vector["expected"]["paths"][0], changed_path]}
    assert make_vectors.build("media", vector["inputs"]) != changed


def test_chained_inputs_are_the_other_vectors_outputs() -> None:
    channel = load("secure_channel")["expected"]
    media = load("media")["inputs"]
    assert media["export_secret"] == channel["exports"][0]["key"]
    call = load("sip_call")
    assert media["call_id"] == call["inputs"]["call_id"]
    answer = _parse(call["expected"]["transcript"][2]["bytes"])
    assert isinstance(answer, Response)
    assert answer.to.tag == media["callee_tag"]
    admission = load("admission_pow")["expected"]["cases"]
    assert admission[0]["header"] == "Anonsip-Proof: " + load("sip_message")["inputs"]["proof"]
    weak = load("sip_message")["inputs"]["weak_proof"]
    assert admission[1]["header"] == "Anonsip-Proof: " + weak
    assert leading_zero_bits(_b(admission[1]["digest"])) < RESTING_EFFORT  # hence the 486
    puzzle = load("dht_identity")["expected"]["puzzle_cases"][0]["node_seed"]
    assert load("dht_messages")["inputs"]["caller_seed"] == puzzle
    secret = load("sip_message")["inputs"]["bob_mailbox_secret"]
    assert load("mailbox_deposit")["inputs"]["recipient_mailbox_secret"] == secret
    reply_box = load("sip_message")["inputs"]["alice_mailbox_secret"]
    assert load("mailbox_letter")["inputs"]["letters"][0]["reply_box"] == reply_box
    sealed = load("mailbox_letter")["expected"]["letters"][0]["sealed"]
    assert load("mailbox_deposit")["inputs"]["sealed_letter"] == sealed
    registration = load("registration")["inputs"]
    assert load("dht_record")["inputs"]["registration"] == registration
    mailbox = load("dht_messages")["inputs"]
    deposit = load("mailbox_deposit")["expected"]
    assert (mailbox["deposit"], mailbox["deletion"]) == (deposit["deposit"], deposit["deletion"])
    srvs = load("dht_record")["inputs"]
    assert (mailbox["srv_current"], mailbox["srv_previous"]) == (
        srvs["srv_current"],
        srvs["srv_previous"],
    )
    assert load("dht_messages")["inputs"]["registration"] == registration


# -- decoded by the code, fields checked ---------------------------------------------------


def test_identity_decodes() -> None:
    v = load("identity")
    e = v["expected"]
    key = _b(e["public_key"])
    assert Identity(seed=_b(v["inputs"]["identity_seed"])).public_key == key
    assert Address.parse(e["address"]).public_key == key
    assert Address.parse(e["address"].upper()).public_key == key
    assert Address.from_sip_uri(e["sip_uri"]).public_key == key
    assert e["address"].startswith("asip1q")
    assert len(e["address"]) == 64
    assert ed25519_to_x25519_public(key).hex() == e["x25519_public_key"]
    onion = e["onion_address"].removesuffix(".onion")
    assert public_key_from_onion_address(onion).hex() == e["onion_service_public_key"]
    swapped = SafetyNumber.between(_b(e["other_public_key"]), key)
    assert swapped.digits == e["safety_number_digits"]
    assert swapped.matches(e["safety_number_compact"])


def test_blinding_decodes() -> None:
    v = load("blinding")
    i, e = v["inputs"], v["expected"]
    periods = TimePeriods(i["period_length_minutes"], i["period_rotation_offset_minutes"])
    assert periods.number_at(e["period_start"]) == e["period"]
    assert periods.number_at(e["period_end"] - 1) == e["period"]
    assert periods.number_at(e["period_end"]) == e["period"] + 1
    key = _b(e["public_key"])
    blinded = _b(e["blinded_public_key"])
    assert blind_public_key(key, e["period"], periods) == blinded
    assert mailbox_key(key, e["period"], periods).hex() == e["mailbox_public_key"]
    secret = _b(i["contacts_mailbox_secret"])
    contacts_box = mailbox_key(key, e["period"], periods, secret=secret)
    assert contacts_box.hex() == e["contacts_mailbox_public_key"]
    message = i["message_to_sign"].encode()
    assert verify_signature(blinded, message, _b(e["blinded_signature"]))
    assert verify_signature(_b(e["mailbox_public_key"]), message, _b(e["mailbox_signature"]))
    assert not verify_signature(key, message, _b(e["blinded_signature"]))
    assert hashlib.sha3_256(blinded).hexdigest() == e["registration_dht_key"]
    assert hashlib.sha3_256(_b(e["mailbox_public_key"])).hexdigest() == e["mailbox_dht_key"]


def _events(channel: SecureChannel) -> list[Any]:
    out = []
    while (event := channel.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def test_secure_channel_decodes() -> None:
    v = load("secure_channel")
    i, e = v["inputs"], v["expected"]
    caller = Identity(seed=_b(i["initiator_seed"]))
    callee = Identity(seed=_b(i["responder_seed"]))
    writes = e["writes"]
    for write in writes:
        raw = _b(write["bytes"])
        assert int.from_bytes(raw[:2], "big") == len(raw) - 2  # one frame per write
    assert _b(writes[0]["bytes"])[2] == 0x01  # the IK kind byte
    assert len(_b(writes[0]["bytes"])) == 2 + 129
    # The callee reads the caller's bytes; the caller reads the callee's.
    responder = SecureChannel.respond(callee, rng=Scripted(i["responder_ephemeral"]), ik_only=True)
    initiator = SecureChannel.initiate(
        caller, rng=Scripted(i["initiator_ephemeral"]), remote_public_key=callee.public_key
    )
    assert initiator.data_to_send().hex() == writes[0]["bytes"]
    heard: dict[str, list[Any]] = {"initiator": [], "responder": []}
    for write in writes:
        reader = responder if write["from"] == "initiator" else initiator
        reader.receive_data(_b(write["bytes"]))
        heard["responder" if write["from"] == "initiator" else "initiator"] += _events(reader)
    by_responder, by_initiator = heard["responder"], heard["initiator"]
    assert isinstance(by_responder[0], HandshakeComplete)
    assert by_responder[0].remote_public_key == caller.public_key
    assert by_responder[0].handshake_hash.hex() == e["handshake_hash"]
    assert isinstance(by_initiator[0], HandshakeComplete)
    assert by_initiator[0].remote_public_key == callee.public_key
    sent = [s for s in i["transport"] if s["type"] == "DATA"]
    assert [m.data.hex() for m in by_responder if isinstance(m, Message)] == [
        s["data"] for s in sent if s["from"] == "initiator"
    ]
    assert [m.data.hex() for m in by_initiator if isinstance(m, Message)] == [
        s["data"] for s in sent if s["from"] == "responder"
    ]
    assert isinstance(by_responder[-1], CloseReceived)
    assert isinstance(by_initiator[-1], CloseReceived)
    for export in e["exports"]:
        assert responder.export_key(_b(export["label"])).hex() == export["key"]
    # The media tokens naming a call's paths: path 0's label has no suffix, path n's ends in
    # "\0path" | u8(n); the callee (responder) computes what the caller sends.
    context = f"{CALL_ID}\x00{CALLEE_TAG}".encode()
    for token in e["media_tokens"]:
        number = token["path"]
        suffix = b"" if number == 0 else b"\x00path" + bytes([number])
        label = b"anonsip-media-token" + context + suffix
        assert responder.export_key(label)[:16].hex() == token["token"]
    assert len({t["token"] for t in e["media_tokens"]}) == len(e["media_tokens"])


def test_admission_pow_decodes() -> None:
    v = load("admission_pow")
    i = v["inputs"]
    for case, out in zip(i["cases"], v["expected"]["cases"], strict=True):
        bits = case["difficulty_bits"]
        name, _, value = out["header"].partition(": ")
        assert name == "Anonsip-Proof"
        bucket_text, _, nonce_hex = value.partition(";")
        bucket, nonce = int(bucket_text), bytes.fromhex(nonce_hex)
        assert bucket == case["unix_time"] // 600
        assert verify(_b(out["challenge"]), nonce, bits)
        digest = hashlib.blake2b(_b(out["challenge"]) + nonce, digest_size=32).digest()
        assert digest.hex() == out["digest"]
        assert leading_zero_bits(digest) >= bits
        now = float(case["unix_time"])

        def clock(now: float = now) -> float:
            return now

        gate = RequestGate(i["recipient"], clock, GateLimits(difficulty_bits=bits))
        assert gate.check(sender=i["sender"], bucket=bucket, nonce=nonce) is Verdict.ADMIT
        other = RequestGate(i["sender"], clock)
        assert other.check(sender=i["recipient"], bucket=bucket, nonce=nonce) is not Verdict.ADMIT


def _parse(hex_bytes: str) -> Request | Response:
    parser = MessageParser()
    raw = _b(hex_bytes)
    parser.receive_data(raw)
    message = parser.next_message()
    assert message is not None
    assert parser.next_message() is None
    assert message.to_bytes() == raw  # our serialisation is canonical for what we send
    return message


def _transcript(name: str) -> list[Request | Response]:
    return [_parse(m["bytes"]) for m in load(name)["expected"]["transcript"]]


def _shape(messages: list[Request | Response]) -> list[str]:
    return [m.method if isinstance(m, Request) else str(m.status_code) for m in messages]


def test_sip_message_decodes() -> None:
    i = load("sip_message")["inputs"]
    messages = _transcript("sip_message")
    assert _shape(messages) == [
        *("MESSAGE", "100", "486"),  # a contact request with too little work
        *("MESSAGE", "100", "202"),  # the same request with enough
        *("MESSAGE", "100", "200"),  # a contact's message
        *("MESSAGE", "100", "403"),  # a refusal
        *("MESSAGE", "200"),  # a delivery notification
    ]
    weak, busy = messages[0], messages[2]
    assert isinstance(weak, Request)
    assert weak.get("Anonsip-Proof") == i["weak_proof"]
    assert isinstance(busy, Response)
    assert busy.get("Anonsip-Effort") == str(i["effort_asked"]) == str(RESTING_EFFORT)
    request, contact, refused, receipt = (messages[k] for k in (3, 6, 9, 12))
    assert weak.call_id == request.call_id  # the retry with more work is the same message
    assert isinstance(request, Request)
    assert request.call_id == i["request_message_id"]
    assert request.get("Anonsip-Proof") == i["proof"]
    assert message_text(request) == i["request_text"]
    assert isinstance(contact, Request)
    assert contact.get("Anonsip-Proof") is None
    assert contact.get("Anonsip-Mailbox") == i["alice_mailbox_secret"]
    delivered = messages[8]
    assert isinstance(delivered, Response)
    assert delivered.get("Anonsip-Mailbox") == i["bob_mailbox_secret"]
    assert message_text(contact) == i["text"]
    assert contact.call_id == i["message_id"]
    assert isinstance(refused, Request)
    assert refused.call_id == i["refused_message_id"]
    assert isinstance(receipt, Request)
    assert parse_imdn(receipt.body) == i["message_id"]
    alice = Identity(seed=_b(i["alice_seed"])).address
    bob = Identity(seed=_b(i["bob_seed"])).address
    for message in messages:
        peers = {message.from_.uri.user, message.to.uri.user}
        assert peers == {alice.text, bob.text}
        assert message.top_via.branch is not None
        assert message.top_via.branch.startswith("z9hG4bK")
    trying = messages[1]
    assert isinstance(trying, Response)
    assert trying.to.tag is None  # a 100 carries no To tag
    assert all(m.to.tag for m in messages if isinstance(m, Response) and m.status_code > 100)


def test_sip_presence_decodes() -> None:
    v = load("sip_presence")
    i = v["inputs"]
    messages = _transcript("sip_presence")
    assert _shape(messages) == ["SUBSCRIBE", "200", "NOTIFY", "200", "NOTIFY", "200"]
    subscribe, granted, notify, _, goodbye, _ = messages
    assert subscribe.event is not None
    assert subscribe.event.value == "presence"
    assert subscribe.expires == i["requested_expires"]
    assert granted.expires == i["granted_expires"]
    assert notify.subscription_state is not None
    assert notify.subscription_state.value == "active"
    assert notify.subscription_state.param("expires") == str(i["granted_expires"])
    presence = parse_pidf(notify.body)
    assert presence.availability.value == i["availability"]
    assert presence.note == i["note"]
    assert notify.body.decode() == v["expected"]["pidf"]
    assert goodbye.subscription_state is not None
    assert goodbye.subscription_state.value == "terminated"
    assert parse_pidf(goodbye.body).availability.value == "offline"


def test_sip_call_decodes() -> None:
    v = load("sip_call")
    i = v["inputs"]
    messages = _transcript("sip_call")
    assert _shape(messages) == [
        "INVITE",
        "180",
        "200",
        "ACK",
        "REFER",
        "202",
        "NOTIFY",
        "200",
        "BYE",
        "200",
    ]
    invite, _, ok, ack, refer, _, notify, _, bye, _ = messages
    assert invite.call_id == i["call_id"]
    assert all(m.call_id == i["call_id"] for m in messages)
    offer = SessionDescription.parse(invite.body)
    assert offer.session_id == i["offer_session_id"]
    assert (offer.sample_rate, offer.frame_ms, offer.bitrate) == (16000, 20, 24000)
    assert offer.direction is Direction.SENDRECV
    assert offer.paths == i["offer_paths"]
    assert b"a=x-anonsip-paths:2\r\n" in invite.body
    answer = SessionDescription.parse(ok.body)
    assert answer.session_id == i["answer_session_id"]
    assert answer.paths == i["answer_paths"] == min(offer.paths, MediaPreferences().paths)
    # A body without the attribute means one path.
    bare = invite.body.replace(b"a=x-anonsip-paths:2\r\n", b"")
    assert SessionDescription.parse(bare).paths == 1
    assert ack.cseq.number == invite.cseq.number
    assert refer.refer_to is not None
    target = Identity(seed=_b(i["transfer_target_seed"])).address
    assert Address.from_sip_uri(str(refer.refer_to.uri)) == target
    assert notify.event is not None
    assert notify.event.value == "refer"
    assert sipfrag_status(notify.body) == (200, "OK")
    assert bye.cseq.number > refer.cseq.number


def test_dht_messages_decode() -> None:
    v = load("dht_messages")
    i = v["inputs"]
    decoder = FrameDecoder()
    for frame in v["expected"]["frames"]:
        decoder.feed(_b(frame["frame"]))
    envelopes = []
    while (envelope := decoder.next_message()) is not None:
        envelopes.append(envelope)
    kinds = [type(e.message).__name__ for e in envelopes]
    assert kinds == [
        "Challenge",
        "Proof",
        "Anonymous",
        "Ping",
        "Pong",
        "FindNode",
        "Nodes",
        "FindValue",
        "Value",
        "Store",
        "StoreResult",
        "Error",
        *("StoreDeposit", "DepositResult"),
        *("Collect", "Deposits", "Collect", "Deposits"),
        *("Delete", "DeleteResult"),
    ]
    messages = [e.message for e in envelopes]
    challenge, proof = messages[0], messages[1]
    assert isinstance(challenge, Challenge)
    assert challenge.nonce.hex() == i["challenge_nonce"]
    assert isinstance(proof, Proof)
    contact = verify_identity_proof(
        callee_public_key=_b(i["callee_public_key"]),
        nonce=challenge.nonce,
        caller_public_key=proof.public_key,
        caller_port=proof.port,
        signature=proof.signature,
        difficulty=16,
    )
    assert contact.port == i["caller_port"]
    assert isinstance(messages[3], Ping)
    assert isinstance(messages[4], Pong)
    assert [e.request_id for e in envelopes] == [
        *(0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5),
        *(6, 6, 7, 7, 8, 8, 9, 9),
    ]
    find_node, nodes, find_value, value, store, result, error = messages[5:12]
    assert isinstance(find_node, FindNode)
    assert find_node.target == NodeId.from_bytes(_b(i["target"]))
    assert isinstance(nodes, Nodes)
    assert [(c.public_key.hex(), c.port) for c in nodes.contacts] == [
        (c["public_key"], c["port"]) for c in i["contacts"]
    ]
    assert isinstance(find_value, FindValue)
    assert find_value.key.hex() == i["location"]
    assert isinstance(value, Value)
    assert value.record.verify_signature()
    assert isinstance(store, Store)
    assert store.record == value.record
    assert store.location.hex() == i["location"]
    assert isinstance(result, StoreResult)
    assert result.outcome == "stored"
    assert isinstance(error, Error)
    assert error.code == "refused"
    _check_mailbox_messages(i, v["expected"], messages[12:])


def _check_mailbox_messages(i: dict[str, Any], e: dict[str, Any], messages: list[Any]) -> None:
    """The mailbox exchange is what a storing node answers: a store replays it."""
    deposit_at, deposited, collect, page, collect_more, last_page, delete, deleted = messages
    location = _b(e["mailbox_location"])
    raw = _b(i["deposit"])
    deposit = Deposit.decode(raw)
    shared = SharedRandom(current=_b(i["srv_current"]), previous=_b(i["srv_previous"]))
    assert (
        location
        == hashlib.sha3_256(
            b"anonsip-dht-store-at" + deposit.key + shared.current + b"\x00"
        ).digest()
    )
    assert deposit.key == hashlib.sha3_256(deposit.mailbox).digest()
    store = DepositStore()
    now = load("mailbox_deposit")["inputs"]["unix_time"]
    assert isinstance(deposit_at, StoreDeposit)
    assert (deposit_at.location, deposit_at.deposit) == (location, raw)
    verdict = store.put(location, raw, now=now, shared=shared)
    assert isinstance(deposited, DepositResult)
    assert (deposited.outcome, deposited.work, deposited.floor) == (
        verdict.outcome.value,
        verdict.work,
        verdict.floor,
    )
    assert verdict.outcome is DepositOutcome.STORED
    assert isinstance(collect, Collect)
    assert (collect.location, collect.after) == (location, b"")
    assert isinstance(page, Deposits)
    assert (list(page.deposits), page.more) == store.page(
        location,
        b"",
        now,
        max_items=MAX_PAGE,
        max_bytes=MAX_FRAME - 1024,  # as DhtProtocol
    )
    assert isinstance(collect_more, Collect)
    assert collect_more.after == hashlib.sha3_256(page.deposits[-1]).digest()
    assert isinstance(last_page, Deposits)
    assert (list(last_page.deposits), last_page.more) == ([], False)
    assert isinstance(delete, Delete)
    assert (delete.location, delete.deletion) == (location, _b(i["deletion"]))
    deletion_time = load("mailbox_deposit")["inputs"]["deletion_time"]
    outcome, removed = store.delete(location, delete.deletion, now=deletion_time, shared=shared)
    assert isinstance(deleted, DeleteResult)
    assert (deleted.outcome, deleted.removed) == (outcome.value, removed) == ("deleted", 1)
    assert store.put(location, raw, now=now, shared=shared).outcome is DepositOutcome.DELETED


def test_dht_identity_decodes() -> None:
    v = load("dht_identity")
    i, e = v["inputs"], v["expected"]
    for case, out in zip(i["puzzle_cases"], e["puzzle_cases"], strict=True):
        key = _b(out["public_key"])
        seed = _b(case["stored_seed"])
        assert Identity(seed=_b(out["node_seed"])).public_key == key
        assert hashlib.sha3_256(key).hexdigest() == out["node_id"]
        assert puzzle_bits(key) == out["puzzle_bits"]
        assert satisfies_puzzle(key, case["difficulty"])
        assert not satisfies_puzzle(Identity(seed=seed).public_key, case["difficulty"])
        counter = out["derivation_counter"].to_bytes(8, "big")
        assert hashlib.sha3_256(PUZZLE_SEED_LABEL + seed + counter).hexdigest() == out["node_seed"]
        assert public_key_from_onion_address(out["onion_address"]) == key
    contact = verify_identity_proof(
        callee_public_key=_b(i["proof_callee_public_key"]),
        nonce=_b(i["proof_nonce"]),
        caller_public_key=_b(e["proof_caller_public_key"]),
        caller_port=i["port"],
        signature=_b(e["proof_signature"]),
        difficulty=16,
    )
    assert contact.public_key.hex() == e["proof_caller_public_key"]
    assert verify_signature(contact.public_key, _b(e["proof_message"]), _b(e["proof_signature"]))


def _record(e: dict[str, Any]) -> DhtRecord:
    return DhtRecord(
        kind=e["kind"],
        public_key=_b(e["public_key"]),
        seq=e["seq"],
        expiry=e["expiry"],
        payload=_b(e["payload"]),
        signature=_b(e["signature"]),
    )


def test_dht_record_decodes() -> None:
    v = load("dht_record")
    i, e = v["inputs"], v["expected"]
    record = _record(e)
    assert record.verify_signature()
    assert record.key.hex() == e["record_key"]
    assert check_kind(record) is KindVerdict.OK
    assert record.payload.hex() == load("registration")["expected"]["value"]
    shared = SharedRandom(current=_b(i["srv_current"]), previous=_b(i["srv_previous"]))
    for position in e["positions"]:
        location = _b(position["location"])
        value = value_of_location(location, record.key, shared)
        assert value is not None
        assert value.hex() == position["srv"]
        store = RecordStore()
        assert store.put(location, record, now=i["unix_time"], shared=shared).accepted
    elsewhere = _b(e["positions_without_consensus"][0]["location"])
    assert (
        RecordStore().put(elsewhere, record, now=i["unix_time"], shared=shared)
        is StoreOutcome.WRONG_LOCATION
    )


def test_registration_decodes() -> None:
    v = load("registration")
    i, e = v["inputs"], v["expected"]
    value = _b(e["value"])
    outer = verify_outer(value)
    assert outer.blinded_public_key.hex() == e["blinded_public_key"]
    assert (outer.sequence, outer.expires) == (i["sequence"], i["expires"])
    assert record_period(value) == e["period"]
    identity = Identity(seed=_b(i["identity_seed"]))
    periods = TimePeriods(i["period_length_minutes"], i["period_rotation_offset_minutes"])
    registration = open_record(
        identity.public_key, e["period"], value, i["unix_time"], periods=periods
    )
    assert [(c.onion, c.port) for c in registration.contacts] == [
        (c["onion"], c["port"]) for c in i["contacts"]
    ]
    assert registration.presence is Presence(i["presence"])
    assert registration.note == i["note"]
    assert len(_b(e["inner_plaintext"])) == 512
    assert len(value) <= 684  # what storing nodes accept of this kind


def test_media_decodes() -> None:
    v = load("media")
    i, e = v["inputs"], v["expected"]
    context = e["media_context"]
    assert _b(context) == f"{i['call_id']}\x00{i['callee_tag']}".encode()
    assert [p["path"] for p in e["paths"]] == i["paths"]
    merger = PathMerger()
    played: list[int] = []
    for path in e["paths"]:
        number = path["path"]
        callee = derive_media_keys(
            _b(i["export_secret"]), _b(context).decode(), caller=False, path=number
        )
        assert callee.receive.key.hex() == path["caller_to_callee_key"]
        assert callee.send.salt.hex() == path["callee_to_caller_salt"]
        receiver = MediaReceiver(callee.receive)
        receiver.receive_data(b"".join(_b(f) for f in path["caller_frames"]))
        frames = []
        while (frame := receiver.next_frame()) is not None:
            frames.append(frame)
        receiver.receive_eof()
        assert receiver.ended
        for sent, got in zip(i["frames"], frames, strict=True):
            assert (got.seq, got.timestamp_ms) == (sent["seq"], sent["timestamp_ms"])
            if sent.get("end"):
                assert got.end
                assert got.packets == ()
                continue
            assert [p.hex() for p in got.packets] == sent["packets"]
            assert got.speech == sent["speech"]
            assert (got.echo_ms, got.echo_hold_ms) == (sent["echo_ms"], sent["echo_hold_ms"])
            played += [
                got.seq + k for k in range(len(got.packets)) if merger.accept(number, got.seq + k)
            ]
    # Each path carries every packet; each plays once, from the path it came on first.
    assert played == sorted(set(played))
    assert merger.duplicates == len(played)
    # A frame copied from one path to the other fails there: each path has its own key.
    keys_0, keys_1 = (
        derive_media_keys(_b(i["export_secret"]), _b(context).decode(), caller=False, path=n)
        for n in (0, 1)
    )
    assert keys_0.receive.key != keys_1.receive.key
    crossed = MediaReceiver(keys_1.receive)
    crossed.receive_data(_b(e["paths"][0]["caller_frames"][0]))
    with pytest.raises(RemoteProtocolError):
        crossed.next_frame()


def test_invite_decodes() -> None:
    v = load("invite")
    i, e = v["inputs"], v["expected"]
    assert looks_like_invite(e["text"])
    invite = Invite.parse(e["text"])
    assert invite.address == Identity(seed=_b(i["identity_seed"])).address
    assert invite.expires == i["expires"]
    assert [(s.key.hex(), s.port) for s in invite.seeds] == [
        (s["key"], s["port"]) for s in i["seeds"]
    ]
    assert Invite.parse(e["text"].upper()) == invite


def test_mailbox_letter_decodes() -> None:
    v = load("mailbox_letter")
    i, e = v["inputs"], v["expected"]
    sender = Identity(seed=_b(i["sender_seed"]))
    recipient = Identity(seed=_b(i["recipient_seed"]))
    for case, out in zip(i["letters"], e["letters"], strict=True):
        letter = open_letter(recipient, _b(out["sealed"]))
        assert letter.sender == sender.public_key
        assert letter.kind is LetterKind[case["kind"]]
        assert (letter.message_id, letter.time_ms, letter.text) == (
            case["message_id"],
            case["time_ms"],
            case["text"],
        )
        assert letter.reply_box.hex() == case["reply_box"]
        # The code's own seal draws a fresh ephemeral key: open it, the plaintext is the vector's.
        sealed = seal_letter(sender, recipient.public_key, letter)
        inner = nacl.bindings.crypto_box_seal_open(
            sealed, recipient.x25519_public_key, recipient.x25519_private_key
        )
        assert inner.hex() == out["inner"]
        assert len(sealed) == len(_b(out["sealed"]))


def test_mailbox_deposit_decodes() -> None:
    v = load("mailbox_deposit")
    i, e = v["inputs"], v["expected"]
    deposit = Deposit.decode(_b(e["deposit"]))
    assert deposit.mailbox.hex() == e["mailbox_key"]
    periods = TimePeriods(i["period_length_minutes"], i["period_rotation_offset_minutes"])
    secret = _b(i["recipient_mailbox_secret"])
    key = Identity(seed=_b(i["recipient_seed"])).public_key
    assert mailbox_key(key, e["period"], periods, secret=secret) == deposit.mailbox
    assert mailbox_key(key, e["period"], periods).hex() == e["open_mailbox_key"]
    assert deposit.expiry == i["expiry"]
    assert deposit.sealed.hex() == i["sealed_letter"]
    assert deposit.work == e["work"] >= i["difficulty"]
    assert deposit.deposit_id.hex() == e["deposit_id"]
    deposit.check(i["unix_time"], difficulty=i["difficulty"])
    recipient = Identity(seed=_b(i["recipient_seed"]))
    assert open_letter(recipient, deposit.sealed).text == "sealed for bob only"
    deletion = Deletion.decode(_b(e["deletion"]))
    assert deletion.mailbox == deposit.mailbox
    assert deletion.deposit_ids == (deposit.deposit_id,)
    assert deletion.time == i["deletion_time"]
    deletion.check(i["deletion_time"])


# -- the document and the vectors name each other -------------------------------------------------

_VECTOR_REF = re.compile(r"tests/vectors/([A-Za-z0-9_]+\.json)")


def test_every_vector_file_is_in_the_protocol_document() -> None:
    named = set(_VECTOR_REF.findall(PROTOCOL_DOC.read_text()))
    files = {p.name for p in VECTOR_DIR.glob("*.json")}
    assert files - named == set(), f"vectors docs/protocol.md does not mention: {files - named}"


def test_every_vector_the_document_names_exists() -> None:
    named = set(_VECTOR_REF.findall(PROTOCOL_DOC.read_text()))
    files = {p.name for p in VECTOR_DIR.glob("*.json")}
    assert named - files == set(), f"docs/protocol.md names missing vectors: {named - files}"


def test_every_generated_vector_has_its_file() -> None:
    files = {p.stem for p in VECTOR_DIR.glob("*.json")}
    assert set(make_vectors.VECTORS) <= files
