"""Known-answer vectors for every format of docs/protocol.md, computed from the code.

Each vector file ``tests/vectors/<name>.json`` holds fixed ``inputs`` (keys,
seeds, nonces, times) and the ``expected`` bytes (hex) the code makes from
them. They were generated ONCE by this script. **Regenerating a file is a
protocol change**: a node built from the new vectors no longer talks to one
built from the old. Change a format only on purpose, say so in
docs/protocol.md, and regenerate with ``--protocol-change``.

    .venv/bin/python -m tests.vectors.make_vectors                    # check: exit 1 if one differs
    .venv/bin/python -m tests.vectors.make_vectors --protocol-change  # rewrite the files

``tests/unit/test_vectors.py`` runs the same builders on the inputs stored in
each file and compares byte for byte, then decodes the stored bytes with the
code's parsers and checks the fields.

Randomness: where the code draws random bytes (ephemeral keys, nonces,
branches and tags) it is handed either the exact bytes listed in the inputs
(``Scripted``) or, for long SIP transcripts, ``CountingRandom(label)``:
the n bytes of call i (from 1) are SHAKE-256(label | u64be(i))[:n]. Those
values are free choices of the sender; an implementation only has to carry
them, not reproduce them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import nacl.bindings

from anonsip.admission import challenge, prove
from anonsip.call import Direction, SessionDescription
from anonsip.call import Notify as CallNotify
from anonsip.call._signalling import request_for
from anonsip.dht import (
    Anonymous,
    Challenge,
    Collect,
    Delete,
    DeleteResult,
    DepositResult,
    Deposits,
    DhtRecord,
    Envelope,
    Error,
    FindNode,
    FindValue,
    NodeId,
    NodeIdentity,
    Nodes,
    Ping,
    Pong,
    Proof,
    Store,
    StoreDeposit,
    StoreResult,
    Value,
    encode_frame,
    puzzle_bits,
    puzzle_seed,
    registration_record,
)
from anonsip.dht._identity import PUZZLE_SEED_LABEL, identity_proof_message
from anonsip.dht._identity import Contact as DhtContact
from anonsip.dht._placement import SharedRandom, disaster_value, positions, shared_random_at
from anonsip.dht._record import record_key as dht_record_key
from anonsip.dht._record import record_signed_message
from anonsip.identity import (
    Address,
    BlindedKey,
    Identity,
    SafetyNumber,
    SecureChannel,
    TimePeriods,
    blind_public_key,
    record_key,
)
from anonsip.identity._blinding import blinding_param
from anonsip.identity._channel import _KIND_IK, _prologue
from anonsip.invite import DhtSeed, Invite
from anonsip.mailbox import (
    Deletion,
    Deposit,
    Letter,
    LetterKind,
    dht_key,
    mailbox_key,
    mailbox_keypair,
)
from anonsip.mailbox._deposit import _pow_material
from anonsip.mailbox._letter import LABEL as LETTER_LABEL
from anonsip.media import derive_media_keys
from anonsip.media._frame import MediaSealer
from anonsip.node._call_media import (
    MEDIA_KEY_LABEL,
    MEDIA_TOKEN_LABEL,
    media_context,
    media_token,
)
from anonsip.node._links import KIND_MEDIA, KIND_SESSION
from anonsip.node._messaging import BOX_HEADER, EFFORT_HEADER, PROOF_HEADER, TEXT_PLAIN
from anonsip.node._node import SIP_PORT
from anonsip.node._registrar import sequence_number
from anonsip.registration import Contact, Presence, Registration, seal
from anonsip.registration._record import _SIGN_CONTEXT, _encode_inner, _Outer
from anonsip.sip import (
    IMDN_CONTENT_TYPE,
    AckReceived,
    Availability,
    Request,
    RequestReceived,
    ResponseReceived,
    SipEndpoint,
    Uri,
    bye_request,
    encode_pidf,
    imdn_body,
    invite_request,
    notify_request,
    refer_request,
    subscribe_request,
)
from anonsip.sip import (
    Presence as PidfPresence,
)
from onion import OnionKey

HERE = pathlib.Path(__file__).resolve().parent
Json = dict[str, Any]


# -- deterministic randomness -------------------------------------------------


class Scripted:
    """A RandomSource that returns exactly the listed values, in order."""

    def __init__(self, *values: str) -> None:
        self._values = [bytes.fromhex(v) for v in values]

    def __call__(self, n: int) -> bytes:
        if not self._values:
            raise AssertionError("the code asked for more random bytes than the vector lists")
        value = self._values.pop(0)
        if len(value) != n:
            raise AssertionError(
                f"the code asked for {n} random bytes, the vector has {len(value)}"
            )
        return value

    def done(self) -> None:
        if self._values:
            raise AssertionError("the code used fewer random values than the vector lists")


class CountingRandom:
    """``rng(n)`` of call i (from 1): SHAKE-256(label | u64be(i))[:n]."""

    def __init__(self, label: str) -> None:
        self._label = label.encode()
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        self._counter += 1
        return hashlib.shake_256(self._label + self._counter.to_bytes(8, "big")).digest(n)


def label_bytes(label: str, n: int = 32) -> str:
    """Fixed input bytes named by a label (how the inputs below were chosen)."""
    return hashlib.shake_256(b"anonsip test vector: " + label.encode()).hexdigest(n)


def _b(text: str) -> bytes:
    return bytes.fromhex(text)


def _periods(inputs: Json) -> TimePeriods:
    return TimePeriods(
        length_minutes=inputs["period_length_minutes"],
        rotation_offset_minutes=inputs["period_rotation_offset_minutes"],
    )


# -- the inputs ----------------------------------------------------------------

ALICE_SEED = label_bytes("alice identity seed")
BOB_SEED = label_bytes("bob identity seed")
NOW = 1764000000  # 2025-11-24T16:00:00Z
PERIODS: Json = {"period_length_minutes": 1440, "period_rotation_offset_minutes": 720}


# -- 1. identity: address, SIP URI, Noise static key, onion address, safety number --


def build_identity(inputs: Json) -> Json:
    alice = Identity(seed=_b(inputs["identity_seed"]))
    bob = Identity(seed=_b(inputs["other_identity_seed"]))
    onion = OnionKey.from_seed(_b(inputs["onion_service_seed"]))
    number = SafetyNumber.between(alice.public_key, bob.public_key)
    return {
        "public_key": alice.public_key.hex(),
        "address": alice.address.text,
        "sip_uri": alice.address.sip_uri,
        "x25519_public_key": alice.x25519_public_key.hex(),
        "x25519_private_key": alice.x25519_private_key.hex(),
        "other_public_key": bob.public_key.hex(),
        "safety_number_digits": number.digits,
        "safety_number_compact": number.compact,
        "onion_service_public_key": onion.public_key.hex(),
        "onion_address": onion.address + ".onion",
    }


IDENTITY: Json = {
    "identity_seed": ALICE_SEED,
    "other_identity_seed": BOB_SEED,
    "onion_service_seed": label_bytes("alice onion service seed"),
}


# -- 2. blinding: periods, blinded keys, record key, mailbox key ----------------------


def build_blinding(inputs: Json) -> Json:
    periods = _periods(inputs)
    identity = Identity(seed=_b(inputs["identity_seed"]))
    period = periods.number_at(inputs["unix_time"])
    blinded = BlindedKey.for_identity(identity, period, periods)
    mailbox = mailbox_keypair(identity, period, periods)
    message = inputs["message_to_sign"].encode()
    return {
        "public_key": identity.public_key.hex(),
        "period": period,
        "period_start": periods.start_of(period),
        "period_end": periods.end_of(period),
        "blinding_param": blinding_param(identity.public_key, period, periods).hex(),
        "blinded_public_key": blinded.public_key.hex(),
        "blinded_signature": blinded.sign(message).hex(),
        "registration_dht_key": dht_record_key(blinded.public_key).hex(),
        "record_encryption_key": record_key(identity.public_key, period, periods).hex(),
        "mailbox_blinding_param": blinding_param(
            identity.public_key, period, periods, purpose=b"anonsip-mailbox"
        ).hex(),
        "mailbox_public_key": mailbox.public_key.hex(),
        "mailbox_signature": mailbox.sign(message).hex(),
        "mailbox_dht_key": dht_key(mailbox.public_key).hex(),
        "contacts_mailbox_public_key": mailbox_keypair(
            identity, period, periods, secret=_b(inputs["contacts_mailbox_secret"])
        ).public_key.hex(),
    }


BLINDING: Json = {
    "identity_seed": ALICE_SEED,
    "unix_time": NOW,
    **PERIODS,
    "message_to_sign": "anonsip blinded signature vector",
    "contacts_mailbox_secret": label_bytes("alice contacts' mailbox secret"),
}


# -- 3. secure channel: Noise IK over the framed stream ----------------------------------


def _channel_pair(inputs: Json) -> tuple[SecureChannel, SecureChannel, list[Json]]:
    """Run the vector's conversation; returns both channels and every write in order."""
    caller = Identity(seed=_b(inputs["initiator_seed"]))
    callee = Identity(seed=_b(inputs["responder_seed"]))
    rng_i = Scripted(inputs["initiator_ephemeral"])
    rng_r = Scripted(inputs["responder_ephemeral"])
    initiator = SecureChannel.initiate(
        caller, rng=rng_i, remote_public_key=callee.public_key, prologue=b""
    )
    responder = SecureChannel.respond(callee, rng=rng_r, prologue=b"", ik_only=True)
    writes: list[Json] = []

    def move(sender: SecureChannel, receiver: SecureChannel, who: str, what: str) -> None:
        data = sender.data_to_send()
        writes.append({"from": who, "what": what, "bytes": data.hex()})
        receiver.receive_data(data)

    move(
        initiator,
        responder,
        "initiator",
        "handshake message 1 (kind byte 0x01, IK -> e, es, s, ss)",
    )
    assert responder.next_event().__class__.__name__ == "HandshakeComplete"
    move(responder, initiator, "responder", "handshake message 2 (IK <- e, ee, se)")
    assert initiator.next_event().__class__.__name__ == "HandshakeComplete"
    for step in inputs["transport"]:
        sender, receiver = (
            (initiator, responder)
            if step["from"] == "initiator"
            else (
                responder,
                initiator,
            )
        )
        if step["type"] == "DATA":
            sender.send_message(_b(step["data"]))
        elif step["type"] == "REKEY":
            sender.request_rekey()
        else:
            sender.close()
        move(sender, receiver, step["from"], step["type"])
        receiver.next_event()
    rng_i.done()
    rng_r.done()
    return initiator, responder, writes


def build_secure_channel(inputs: Json) -> Json:
    initiator, responder, writes = _channel_pair(inputs)
    exports = []
    for label_hex in inputs["export_labels"]:
        key = initiator.export_key(_b(label_hex))
        assert key == responder.export_key(_b(label_hex))
        exports.append({"label": label_hex, "key": key.hex()})
    tokens = [
        {"path": path, "token": media_token(initiator, MEDIA_CONTEXT, path).hex()}
        for path in inputs["media_token_paths"]
    ]
    return {
        "stream_kind_byte": KIND_SESSION.hex(),
        "noise_protocol_name": "Noise_IK_25519_ChaChaPoly_BLAKE2b",
        "noise_prologue": _prologue(_KIND_IK, b"").hex(),
        "writes": writes,
        "handshake_hash": initiator.handshake_hash.hex(),
        "exports": exports,
        "media_tokens": tokens,
    }


CALL_ID = label_bytes("call id", 16)  # what secrets.token_hex(16) gives a call
CALLEE_TAG = "4a536e34d5448fa0"  # the To tag of the callee's answer in sip_call.json
MEDIA_CONTEXT = media_context(CALL_ID, CALLEE_TAG)

SECURE_CHANNEL: Json = {
    "initiator_seed": ALICE_SEED,
    "responder_seed": BOB_SEED,
    "initiator_ephemeral": label_bytes("initiator ephemeral"),
    "responder_ephemeral": label_bytes("responder ephemeral"),
    "prologue": "",
    "transport": [
        {"from": "initiator", "type": "DATA", "data": b"hello from the caller".hex()},
        {"from": "responder", "type": "DATA", "data": b"hello from the callee".hex()},
        {"from": "initiator", "type": "REKEY"},
        {"from": "initiator", "type": "DATA", "data": b"after the rekey".hex()},
        {"from": "initiator", "type": "CLOSE"},
        {"from": "responder", "type": "CLOSE"},
    ],
    "export_labels": [
        MEDIA_KEY_LABEL.hex(),
        (MEDIA_TOKEN_LABEL + MEDIA_CONTEXT.encode()).hex(),
        (MEDIA_TOKEN_LABEL + MEDIA_CONTEXT.encode() + b"\x00path\x01").hex(),
    ],
    # media tokens of sip_call.json's call (its Call-ID and the callee's To tag), paths 0 and 1
    "media_token_paths": [0, 1],
}


# -- 4. admission proof of work -----------------------------------------------------------


def build_admission_pow(inputs: Json) -> Json:
    recipient, sender = inputs["recipient"], inputs["sender"]
    out = []
    for case in inputs["cases"]:
        bits = case["difficulty_bits"]
        proof = prove(
            recipient,
            sender,
            case["unix_time"],
            difficulty_bits=bits,
            rng=Scripted(case["nonce_prefix"]),
        )
        material = challenge(recipient, sender, proof.bucket)
        digest = hashlib.blake2b(material + proof.nonce, digest_size=32).digest()
        out.append(
            {
                "bucket": proof.bucket,
                "challenge": material.hex(),
                "nonce": proof.nonce.hex(),
                "digest": digest.hex(),
                "header": f"{PROOF_HEADER}: {proof.bucket};{proof.nonce.hex()}",
            }
        )
    return {"cases": out}


ADMISSION_POW: Json = {
    "recipient": Address(Identity(seed=_b(BOB_SEED)).public_key).text,
    "sender": Address(Identity(seed=_b(ALICE_SEED)).public_key).text,
    "cases": [
        {"unix_time": NOW, "difficulty_bits": 20, "nonce_prefix": label_bytes("pow prefix", 8)},
        {"unix_time": NOW, "difficulty_bits": 8, "nonce_prefix": label_bytes("pow prefix 8", 8)},
    ],
}


# -- 5. SIP: messages, presence, calls -------------------------------------------------------


class _SipPair:
    """Two endpoints joined back to back, recording every message either sends."""

    def __init__(self, inputs: Json) -> None:
        self.alice_key = Identity(seed=_b(inputs["alice_seed"])).public_key
        self.bob_key = Identity(seed=_b(inputs["bob_seed"])).public_key
        alice_uri = Uri.parse(Address(self.alice_key).sip_uri)
        bob_uri = Uri.parse(Address(self.bob_key).sip_uri)
        self.alice = SipEndpoint(
            local_aor=alice_uri, peer_aor=bob_uri, rng=CountingRandom(inputs["alice_rng"])
        )
        self.bob = SipEndpoint(
            local_aor=bob_uri, peer_aor=alice_uri, rng=CountingRandom(inputs["bob_rng"])
        )
        self.transcript: list[Json] = []
        self.now = 0.0

    def flush(self, who: str, what: str) -> list[Any]:
        """Carry what ``who`` queued to the other side; the events it caused there."""
        sender, receiver = (self.alice, self.bob) if who == "alice" else (self.bob, self.alice)
        events = []
        for frame in sender.frames_to_send():
            self.transcript.append({"from": who, "what": what, "bytes": frame.hex()})
            receiver.receive_data(frame)
            while (event := receiver.next_event()) is not None:
                events.append(event)
        return events

    def request(self, who: str, request: Request, what: str) -> RequestReceived:
        sender = self.alice if who == "alice" else self.bob
        sender.send_request(request, self.now)
        (event,) = self.flush(who, what)
        assert isinstance(event, RequestReceived), event
        return event

    def respond(
        self,
        who: str,
        request: Request,
        code: int,
        what: str,
        *,
        reason: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> list[Any]:
        endpoint = self.alice if who == "alice" else self.bob
        endpoint.respond(request, code, reason, headers=headers, body=body, now=self.now)
        return self.flush(who, what)


def build_sip_message(inputs: Json) -> Json:
    pair = _SipPair(inputs)
    # Too little work for what the node asks now: 486 naming the effort it asks.
    weak = pair.alice.create_request(
        "MESSAGE",
        headers=(("Content-Type", TEXT_PLAIN), (PROOF_HEADER, inputs["weak_proof"])),
        body=inputs["request_text"].encode(),
    ).with_replaced("Call-ID", inputs["request_message_id"])
    got = pair.request("alice", weak, "MESSAGE: a contact request with too little work")
    pair.respond("bob", got.request, 100, "100 Trying: the message is 'sent'")
    pair.respond(
        "bob",
        got.request,
        486,
        "486 Busy Here: the effort asked now",
        reason="Busy Here",
        headers=((EFFORT_HEADER, str(inputs["effort_asked"])),),
    )
    # A contact request: a stranger's first MESSAGE carries a proof of work.
    first = pair.alice.create_request(
        "MESSAGE",
        headers=(("Content-Type", TEXT_PLAIN), (PROOF_HEADER, inputs["proof"])),
        body=inputs["request_text"].encode(),
    ).with_replaced("Call-ID", inputs["request_message_id"])
    got = pair.request("alice", first, "MESSAGE: a contact request (proof of work)")
    pair.respond("bob", got.request, 100, "100 Trying: the message is 'sent'")
    pair.respond("bob", got.request, 202, "202 Accepted: held as a contact request")
    # Once accepted: a contact's MESSAGE, no proof.
    # Once accepted: a contact's MESSAGE, no proof; both sides tell their mailbox secret.
    second = pair.alice.create_request(
        "MESSAGE",
        headers=(("Content-Type", TEXT_PLAIN), (BOX_HEADER, inputs["alice_mailbox_secret"])),
        body=inputs["text"].encode(),
    ).with_replaced("Call-ID", inputs["message_id"])
    got = pair.request("alice", second, "MESSAGE from a contact")
    pair.respond("bob", got.request, 100, "100 Trying: the message is 'sent'")
    pair.respond(
        "bob",
        got.request,
        200,
        "200 OK: 'delivered' (stored)",
        headers=((BOX_HEADER, inputs["bob_mailbox_secret"]),),
    )
    # A refusal: every refusal is the same 403.
    third = pair.alice.create_request(
        "MESSAGE", headers=(("Content-Type", TEXT_PLAIN),), body=b"refused"
    ).with_replaced("Call-ID", inputs["refused_message_id"])
    got = pair.request("alice", third, "MESSAGE from a blocked peer")
    pair.respond("bob", got.request, 100, "100 Trying")
    pair.respond("bob", got.request, 403, "403 Forbidden: every refusal", reason="Forbidden")
    # A delivery notification for a message that came through the mailbox.
    receipt = pair.bob.create_request(
        "MESSAGE",
        headers=(("Content-Type", IMDN_CONTENT_TYPE),),
        body=imdn_body(inputs["message_id"], inputs["receipt_time"]),
    )
    got = pair.request("bob", receipt, "MESSAGE: an RFC 5438 delivery notification")
    pair.respond("alice", got.request, 200, "200 OK")
    return {"transcript": pair.transcript}


SIP_COMMON: Json = {
    "alice_seed": ALICE_SEED,
    "bob_seed": BOB_SEED,
    "alice_rng": "alice sip",
    "bob_rng": "bob sip",
}
SIP_MESSAGE: Json = {
    **SIP_COMMON,
    # admission_pow.json's 20-bit proof (Alice to Bob at NOW)
    "proof": "2940000;19248c4ce47f7b8100000000000aff0c",
    # admission_pow.json's 8-bit proof: less than the resting effort
    "weak_proof": "2940000;4fafeb3df23f118e0000000000000113",
    "effort_asked": 16,
    "request_message_id": "2f0c6d1e-3b7a-4c55-9a43-0d6f1b2e8c71",
    "request_text": "hi bob, it's alice",
    "message_id": "7d1f6a0e-95b2-4e3c-8f11-2a9c4b5d6e70",
    "text": "hello again \u2014 utf-8 works",
    "alice_mailbox_secret": label_bytes("alice contacts' mailbox secret"),
    "bob_mailbox_secret": label_bytes("bob contacts' mailbox secret"),
    "refused_message_id": "0b8e2c4a-1d3f-4a5b-8c6d-7e8f9a0b1c2d",
    "receipt_time": NOW,
}


def build_sip_presence(inputs: Json) -> Json:
    pair = _SipPair(inputs)
    subscribe = subscribe_request(pair.alice, expires=inputs["requested_expires"])
    got = pair.request("alice", subscribe, "SUBSCRIBE (Event: presence)")
    events = pair.respond(
        "bob",
        got.request,
        200,
        "200 OK with the granted Expires",
        headers=(("Expires", str(inputs["granted_expires"])),),
    )
    assert isinstance(events[0], ResponseReceived)
    response = events[0].response
    dialog = pair.bob.dialog_of_response(response)
    assert dialog is not None
    entity = Uri.parse(Address(pair.bob_key).sip_uri)
    pidf = encode_pidf(
        PidfPresence(
            entity=entity,
            availability=Availability(inputs["availability"]),
            note=inputs["note"],
        )
    )
    notify = notify_request(pair.bob, dialog, pidf=pidf, expires=inputs["granted_expires"])
    got = pair.request("bob", notify, "NOTIFY with a PIDF body")
    pair.respond("alice", got.request, 200, "200 OK")
    goodbye = notify_request(
        pair.bob,
        dialog,
        pidf=encode_pidf(PidfPresence(entity=entity, availability=Availability.OFFLINE)),
        expires=None,
        reason="noresource",
    )
    got = pair.request("bob", goodbye, "NOTIFY: the goodbye when the node stops")
    pair.respond("alice", got.request, 200, "200 OK")
    return {"pidf": pidf.decode(), "transcript": pair.transcript}


SIP_PRESENCE: Json = {
    **SIP_COMMON,
    "alice_rng": "alice presence",
    "bob_rng": "bob presence",
    "requested_expires": 300,
    "granted_expires": 300,
    "availability": "away",
    "note": "back at five <ish> & later",
}


def build_sip_call(inputs: Json) -> Json:
    pair = _SipPair(inputs)
    offer = SessionDescription(
        session_id=inputs["offer_session_id"], version=1, paths=inputs["offer_paths"]
    )
    invite = invite_request(pair.alice, offer.to_bytes()).with_replaced(
        "Call-ID", inputs["call_id"]
    )
    got = pair.request("alice", invite, "INVITE with the SDP offer")
    pair.respond("bob", got.request, 180, "180 Ringing")
    answer = SessionDescription(
        session_id=inputs["answer_session_id"],
        version=1,
        sample_rate=16000,
        frame_ms=20,
        bitrate=24000,
        direction=Direction.SENDRECV,
        paths=inputs["answer_paths"],
    )
    events = pair.respond(
        "bob",
        got.request,
        200,
        "200 OK with the SDP answer (the endpoint ACKs it)",
        headers=(("Content-Type", "application/sdp"),),
        body=answer.to_bytes(),
    )
    assert isinstance(events[0], ResponseReceived)
    assert events[0].dialog is not None
    alice_dialog = events[0].dialog
    ack_events = pair.flush("alice", "ACK")  # the endpoint's automatic ACK of the 2xx
    assert isinstance(ack_events[0], AckReceived)
    bob_dialog = ack_events[0].dialog
    transfer_to = Uri.parse(
        Address(Identity(seed=_b(inputs["transfer_target_seed"])).public_key).sip_uri
    )
    refer = refer_request(pair.alice, alice_dialog, transfer_to)
    got = pair.request("alice", refer, "REFER (blind transfer)")
    pair.respond("bob", got.request, 202, "202 Accepted")
    notify, _ = request_for(
        pair.bob,
        CallNotify(status=200, reason="OK"),
        call_id=inputs["call_id"],
        dialog=bob_dialog,
    )
    got = pair.request("bob", notify, "NOTIFY (Event: refer) with the sipfrag outcome")
    pair.respond("alice", got.request, 200, "200 OK")
    bye = bye_request(pair.alice, alice_dialog)
    got = pair.request("alice", bye, "BYE")
    pair.respond("bob", got.request, 200, "200 OK")
    return {
        "offer_sdp": offer.to_bytes().decode(),
        "answer_sdp": answer.to_bytes().decode(),
        "transcript": pair.transcript,
    }


SIP_CALL: Json = {
    **SIP_COMMON,
    "alice_rng": "alice call",
    "bob_rng": "bob call",
    "call_id": CALL_ID,
    "offer_session_id": 1234567890123,
    "answer_session_id": 987654321987,
    "offer_paths": 2,  # what our node offers (MediaPreferences.paths)
    "answer_paths": 2,
    "transfer_target_seed": label_bytes("carol identity seed"),
}


# -- 6. DHT: node identity, messages, records, placement ---------------------------------------


def _proof_caller(seed_hex: str, port: int) -> NodeIdentity:
    return NodeIdentity.from_seed(_b(seed_hex), port)


def build_dht_identity(inputs: Json) -> Json:
    cases = []
    for case in inputs["puzzle_cases"]:
        seed = _b(case["stored_seed"])
        solved = puzzle_seed(seed, case["difficulty"])
        counter = None
        if solved != seed:
            counter = 0
            while (
                hashlib.sha3_256(PUZZLE_SEED_LABEL + seed + counter.to_bytes(8, "big")).digest()
                != solved
            ):
                counter += 1
        node = NodeIdentity.from_seed(solved, inputs["port"])
        cases.append(
            {
                "node_seed": solved.hex(),
                "derivation_counter": counter,
                "public_key": node.public_key.hex(),
                "node_id": NodeId.from_public_key(node.public_key).to_bytes().hex(),
                "puzzle_bits": puzzle_bits(node.public_key),
                "onion_address": node.contact.onion_address,
            }
        )
    caller = _proof_caller(inputs["proof_caller_seed"], inputs["port"])
    callee = _b(inputs["proof_callee_public_key"])
    nonce = _b(inputs["proof_nonce"])
    return {
        "puzzle_cases": cases,
        "proof_caller_public_key": caller.public_key.hex(),
        "proof_message": identity_proof_message(
            callee, nonce, caller.public_key, caller.port
        ).hex(),
        "proof_signature": caller.prove(callee, nonce).hex(),
    }


DHT_IDENTITY: Json = {
    "port": 7044,
    "puzzle_cases": [
        {"stored_seed": label_bytes("dht node stored seed"), "difficulty": 16},
        {"stored_seed": label_bytes("dht node stored seed, low difficulty"), "difficulty": 6},
    ],
    # the first puzzle case's node seed: a caller whose key solves the 16-bit puzzle
    "proof_caller_seed": "781520ee7e82ca04541995d5bbe0295b4e745839c680af5035be88629044884e",
    "proof_callee_public_key": NodeIdentity.from_seed(
        _b(label_bytes("dht callee seed")), 7044
    ).public_key.hex(),
    "proof_nonce": label_bytes("dht challenge nonce"),
}


def build_registration(inputs: Json) -> Json:
    periods = _periods(inputs)
    identity = Identity(seed=_b(inputs["identity_seed"]))
    now = inputs["unix_time"]
    period = periods.number_at(now)
    registration = _registration(inputs)
    value = seal(identity, period, registration, rng=Scripted(inputs["nonce"]), periods=periods)
    blinded = blind_public_key(identity.public_key, period, periods)
    header = _Outer(
        blinded_public_key=blinded,
        period=period,
        sequence=registration.sequence,
        expires=registration.expires,
        ciphertext=b"",
        signature=b"",
    ).header()
    return {
        "period": period,
        "registrar_sequence_number": sequence_number(identity, period, now, periods),
        "inner_plaintext": _encode_inner(registration).hex(),
        "outer_header": header.hex(),
        "aead_associated_data": (_SIGN_CONTEXT + header).hex(),
        "record_encryption_key": record_key(identity.public_key, period, periods).hex(),
        "blinded_public_key": blinded.hex(),
        "value": value.hex(),
    }


REGISTRATION: Json = {
    "identity_seed": ALICE_SEED,
    "unix_time": NOW,
    **PERIODS,
    "contacts": [
        {
            "onion": OnionKey.from_seed(_b(IDENTITY["onion_service_seed"])).address + ".onion",
            "port": SIP_PORT,
        }
    ],
    "presence": "available",
    "note": "",
    "expires": NOW + 3 * 3600,
    "sequence": 5000000000000000000,
    "nonce": label_bytes("registration nonce", 24),
}


def _registration(inputs: Json) -> Registration:
    return Registration(
        contacts=tuple(Contact(onion=c["onion"], port=c["port"]) for c in inputs["contacts"]),
        presence=Presence(inputs["presence"]),
        expires=inputs["expires"],
        sequence=inputs["sequence"],
        note=inputs["note"],
    )


def _registration_dht_record(inputs: Json) -> DhtRecord:
    """The DHT record of the registration whose inputs are ``inputs`` (registration.json's)."""
    periods = _periods(inputs)
    identity = Identity(seed=_b(inputs["identity_seed"]))
    period = periods.number_at(inputs["unix_time"])
    return registration_record(
        identity, period, _registration(inputs), rng=Scripted(inputs["nonce"]), periods=periods
    )


def build_dht_record(inputs: Json) -> Json:
    record = _registration_dht_record(inputs["registration"])
    periods = _periods(inputs)
    period = periods.number_at(inputs["unix_time"])
    shared = SharedRandom(current=_b(inputs["srv_current"]), previous=_b(inputs["srv_previous"]))
    no_consensus = shared_random_at(inputs["unix_time"], None, None, periods)
    return {
        "kind": record.kind,
        "public_key": record.public_key.hex(),
        "seq": record.seq,
        "expiry": record.expiry,
        "payload": record.payload.hex(),
        "record_key": record.key.hex(),
        "signed_message": record_signed_message(
            record.kind, record.key, record.seq, record.expiry, record.payload
        ).hex(),
        "signature": record.signature.hex(),
        "positions": [
            {"srv": p.value.hex(), "replica": p.replica, "location": p.location.hex()}
            for p in positions(record.key, shared, inputs["replicas"])
        ],
        "disaster_srv": disaster_value(period, periods.length_minutes).hex(),
        "positions_without_consensus": [
            {"srv": p.value.hex(), "replica": p.replica, "location": p.location.hex()}
            for p in positions(record.key, no_consensus, inputs["replicas"])
        ],
    }


DHT_RECORD: Json = {
    "registration": REGISTRATION,
    "unix_time": NOW,
    **PERIODS,
    "srv_current": label_bytes("shared random value, current"),
    "srv_previous": label_bytes("shared random value, previous"),
    "replicas": 2,
}


def build_dht_messages(inputs: Json) -> Json:
    record = _registration_dht_record(inputs["registration"])
    caller = _proof_caller(inputs["caller_seed"], inputs["caller_port"])
    callee_key = _b(inputs["callee_public_key"])
    nonce = _b(inputs["challenge_nonce"])
    contacts = tuple(
        DhtContact.from_public_key(_b(c["public_key"]), c["port"]) for c in inputs["contacts"]
    )
    location = _b(inputs["location"])
    target = NodeId.from_bytes(_b(inputs["target"]))
    messages: list[tuple[str, Envelope]] = [
        ("CHALLENGE", Envelope(request_id=0, message=Challenge(nonce=nonce))),
        (
            "PROOF",
            Envelope(
                request_id=0,
                message=Proof(
                    public_key=caller.public_key,
                    port=caller.port,
                    signature=caller.prove(callee_key, nonce),
                ),
            ),
        ),
        ("ANONYMOUS", Envelope(request_id=0, message=Anonymous())),
        ("PING", Envelope(request_id=1, message=Ping())),
        ("PONG", Envelope(request_id=1, message=Pong())),
        ("FIND_NODE", Envelope(request_id=2, message=FindNode(target=target))),
        ("NODES", Envelope(request_id=2, message=Nodes(contacts=contacts))),
        ("FIND_VALUE", Envelope(request_id=3, message=FindValue(key=location))),
        ("VALUE", Envelope(request_id=3, message=Value(record=record, contacts=()))),
        ("STORE", Envelope(request_id=4, message=Store(location=location, record=record))),
        ("STORE_RESULT", Envelope(request_id=4, message=StoreResult(outcome="stored"))),
        (
            "ERROR",
            Envelope(
                request_id=5,
                message=Error(code="refused", reason="not served to anonymous clients"),
            ),
        ),
    ]
    # Mailboxes: mailbox_deposit.json's deposit, collected and deleted at the first position
    # of its mailbox under dht_record.json's shared random values.
    raw_deposit = _b(inputs["deposit"])
    raw_deletion = _b(inputs["deletion"])
    deposit = Deposit.decode(raw_deposit)
    shared = SharedRandom(current=_b(inputs["srv_current"]), previous=_b(inputs["srv_previous"]))
    box = positions(deposit.key, shared, inputs["replicas"])[0].location
    messages += [
        (
            "DEPOSIT",
            Envelope(request_id=6, message=StoreDeposit(location=box, deposit=raw_deposit)),
        ),
        (
            "DEPOSIT_RESULT",
            Envelope(
                request_id=6,
                message=DepositResult(
                    outcome="stored", work=deposit.work, floor=inputs["deposit_floor"]
                ),
            ),
        ),
        ("COLLECT", Envelope(request_id=7, message=Collect(location=box, after=b""))),
        ("DEPOSITS", Envelope(request_id=7, message=Deposits(deposits=(raw_deposit,), more=False))),
        (
            "COLLECT",
            Envelope(request_id=8, message=Collect(location=box, after=deposit.deposit_id)),
        ),
        ("DEPOSITS", Envelope(request_id=8, message=Deposits(deposits=(), more=False))),
        ("DELETE", Envelope(request_id=9, message=Delete(location=box, deletion=raw_deletion))),
        (
            "DELETE_RESULT",
            Envelope(request_id=9, message=DeleteResult(outcome="deleted", removed=1)),
        ),
    ]
    return {
        "mailbox_location": box.hex(),
        "frames": [{"type": name, "frame": encode_frame(e).hex()} for name, e in messages],
    }


DHT_MESSAGES: Json = {
    "caller_seed": DHT_IDENTITY["proof_caller_seed"],
    "caller_port": 7044,
    "callee_public_key": DHT_IDENTITY["proof_callee_public_key"],
    "challenge_nonce": DHT_IDENTITY["proof_nonce"],
    "target": label_bytes("find node target"),
    "location": label_bytes("find value location"),
    "contacts": [
        {
            "public_key": NodeIdentity.from_seed(
                _b(label_bytes(f"dht contact {i}")), 7044
            ).public_key.hex(),
            "port": 7044 + i,
        }
        for i in range(2)
    ],
    "registration": REGISTRATION,
    "srv_current": DHT_RECORD["srv_current"],
    "srv_previous": DHT_RECORD["srv_previous"],
    "replicas": DHT_RECORD["replicas"],
    "deposit_floor": 12,  # what an empty store asks (DEPOSIT_POW_BITS)
    # "deposit" and "deletion": mailbox_deposit.json's, set below once it is built
}


# -- 7. media --------------------------------------------------------------------------------


def build_media(inputs: Json) -> Json:
    secret = _b(inputs["export_secret"])
    context = media_context(inputs["call_id"], inputs["callee_tag"])
    paths = []
    for path in inputs["paths"]:
        caller_keys = derive_media_keys(secret, context, caller=True, path=path)
        sealer = MediaSealer(caller_keys.send)  # each path its own key and nonce counter
        frames = []
        for frame in inputs["frames"]:  # every frame on every path: the first copy plays
            if frame.get("end"):
                wire = sealer.seal_end(seq=frame["seq"], timestamp_ms=frame["timestamp_ms"])
            else:
                wire = sealer.seal(
                    seq=frame["seq"],
                    timestamp_ms=frame["timestamp_ms"],
                    packets=[_b(p) for p in frame["packets"]],
                    speech=frame["speech"],
                    echo_ms=frame["echo_ms"],
                    echo_hold_ms=frame["echo_hold_ms"],
                )
            frames.append(wire.hex())
        paths.append(
            {
                "path": path,
                "caller_to_callee_key": caller_keys.send.key.hex(),
                "caller_to_callee_salt": caller_keys.send.salt.hex(),
                "callee_to_caller_key": caller_keys.receive.key.hex(),
                "callee_to_caller_salt": caller_keys.receive.salt.hex(),
                "caller_frames": frames,
            }
        )
    return {
        "stream_kind_byte": KIND_MEDIA.hex(),
        "media_context": context.encode().hex(),
        "paths": paths,
    }


_PACKET = label_bytes("an opus packet (opaque here)", 60)
MEDIA: Json = {
    # secure_channel.json's export for the label "anonsip-media-key"
    "export_secret": build_secure_channel(SECURE_CHANNEL)["exports"][0]["key"],
    "call_id": CALL_ID,
    "callee_tag": CALLEE_TAG,
    "paths": [0, 1],
    "frames": [
        {
            "seq": 0,
            "timestamp_ms": 0,
            "packets": [_PACKET],
            "speech": False,
            "echo_ms": 0,
            "echo_hold_ms": 0,
        },
        {
            "seq": 1,
            "timestamp_ms": 20,
            "packets": [_PACKET, label_bytes("a second opus packet", 60)],
            "speech": True,
            "echo_ms": 1001,
            "echo_hold_ms": 7,
        },
        {"seq": 3, "timestamp_ms": 60, "end": True},
    ],
}


# -- 8. invites -------------------------------------------------------------------------------


def build_invite(inputs: Json) -> Json:
    invite = Invite(
        address=Address(Identity(seed=_b(inputs["identity_seed"])).public_key),
        seeds=tuple(DhtSeed(key=_b(s["key"]), port=s["port"]) for s in inputs["seeds"]),
        expires=inputs["expires"],
    )
    raw = (
        bytes([1])
        + invite.address.public_key
        + invite.expires.to_bytes(4, "big")
        + bytes([len(invite.seeds)])
        + b"".join(s.key + s.port.to_bytes(2, "big") for s in invite.seeds)
    )
    return {"raw": raw.hex(), "text": invite.text}


INVITE: Json = {
    "identity_seed": ALICE_SEED,
    "expires": NOW + 7 * 86400,
    "seeds": [
        {"key": DHT_MESSAGES["contacts"][0]["public_key"], "port": 7044},
        {"key": DHT_MESSAGES["contacts"][1]["public_key"], "port": 7045},
    ],
}


# -- 9. mailbox -------------------------------------------------------------------------------


def sealed_box(message: bytes, recipient_x25519: bytes, ephemeral_secret: bytes) -> bytes:
    """libsodium's crypto_box_seal with a chosen ephemeral key (it draws a random one):
    ephemeral public key | crypto_box(message, nonce, recipient, ephemeral secret), where
    nonce = BLAKE2b-192(ephemeral public key | recipient public key)."""
    ephemeral_public = nacl.bindings.crypto_scalarmult_base(ephemeral_secret)
    nonce = hashlib.blake2b(ephemeral_public + recipient_x25519, digest_size=24).digest()
    return ephemeral_public + nacl.bindings.crypto_box(
        message, nonce, recipient_x25519, ephemeral_secret
    )


def _letter(case: Json) -> Letter:
    return Letter(
        kind=LetterKind[case["kind"]],
        message_id=case["message_id"],
        time_ms=case["time_ms"],
        text=case["text"],
        reply_box=_b(case["reply_box"]),
    )


def build_mailbox_letter(inputs: Json) -> Json:
    sender = Identity(seed=_b(inputs["sender_seed"]))
    recipient = Identity(seed=_b(inputs["recipient_seed"]))
    out = []
    for case in inputs["letters"]:
        body = _letter(case).body()
        signed = LETTER_LABEL + recipient.public_key + body
        signature = sender.sign(signed)
        inner = sender.public_key + signature + body
        out.append(
            {
                "body": body.hex(),
                "signed_message": signed.hex(),
                "signature": signature.hex(),
                "inner": inner.hex(),
                "sealed": sealed_box(
                    inner, recipient.x25519_public_key, _b(case["ephemeral_secret"])
                ).hex(),
            }
        )
    return {"recipient_x25519_public_key": recipient.x25519_public_key.hex(), "letters": out}


MAILBOX_LETTER: Json = {
    "sender_seed": ALICE_SEED,
    "recipient_seed": BOB_SEED,
    "letters": [
        {
            "kind": "MESSAGE",
            "message_id": SIP_MESSAGE["message_id"],
            "time_ms": NOW * 1000 + 123,
            "text": "sealed for bob only",
            "reply_box": SIP_MESSAGE["alice_mailbox_secret"],
            "ephemeral_secret": label_bytes("letter ephemeral 1"),
        },
        {
            "kind": "RECEIPT",
            "message_id": SIP_MESSAGE["request_message_id"],
            "time_ms": NOW * 1000 + 456,
            "text": "",
            "reply_box": "",
            "ephemeral_secret": label_bytes("letter ephemeral 2"),
        },
    ],
}


def build_mailbox_deposit(inputs: Json) -> Json:
    periods = _periods(inputs)
    recipient = Identity(seed=_b(inputs["recipient_seed"]))
    period = periods.number_at(inputs["unix_time"])
    secret = _b(inputs["recipient_mailbox_secret"])
    open_box = mailbox_key(recipient.public_key, period, periods)
    mailbox = mailbox_key(recipient.public_key, period, periods, secret=secret)
    sealed = _b(inputs["sealed_letter"])
    deposit = Deposit.make(
        mailbox=mailbox,
        expiry=inputs["expiry"],
        sealed=sealed,
        difficulty=inputs["difficulty"],
        rng=Scripted(inputs["nonce_prefix"]),
    )
    owner = mailbox_keypair(recipient, period, periods, secret=secret)
    deletion = Deletion.make(owner, inputs["deletion_time"], (deposit.deposit_id,))
    return {
        "period": period,
        "open_mailbox_key": open_box.hex(),
        "open_mailbox_dht_key": dht_key(open_box).hex(),
        "mailbox_key": mailbox.hex(),
        "mailbox_dht_key": dht_key(mailbox).hex(),
        "pow_material": _pow_material(mailbox, deposit.expiry, sealed).hex(),
        "nonce": deposit.nonce.hex(),
        "work": deposit.work,
        "deposit": deposit.encode().hex(),
        "deposit_id": deposit.deposit_id.hex(),
        "deletion": deletion.encode().hex(),
    }


MAILBOX_DEPOSIT: Json = {
    "recipient_seed": BOB_SEED,
    # what bob told alice in sip_message.json's Anonsip-Mailbox header: his contacts' mailbox
    "recipient_mailbox_secret": SIP_MESSAGE["bob_mailbox_secret"],
    # mailbox_letter.json's first sealed letter
    "sealed_letter": build_mailbox_letter(MAILBOX_LETTER)["letters"][0]["sealed"],
    "unix_time": NOW,
    **PERIODS,
    "expiry": NOW + 7 * 86400,
    "difficulty": 12,
    "nonce_prefix": label_bytes("deposit pow prefix", 8),
    "deletion_time": NOW + 600,
}

# dht_messages.json carries this deposit and deletion in its mailbox messages.
DHT_MESSAGES["deposit"] = build_mailbox_deposit(MAILBOX_DEPOSIT)["deposit"]
DHT_MESSAGES["deletion"] = build_mailbox_deposit(MAILBOX_DEPOSIT)["deletion"]


# -- the table ----------------------------------------------------------------------------------

Builder = Callable[[Json], Json]


VECTORS: dict[str, tuple[str, Json, Builder]] = {
    "identity": (
        "An identity's address (Bech32m, HRP asip), SIP URI, X25519 form, a v3 onion "
        "address and the safety number of two identities.",
        IDENTITY,
        build_identity,
    ),
    "blinding": (
        "Time period, blinded keys (key-blind and anonsip-mailbox purposes), the "
        "registration's encryption key and DHT keys, blinded signatures.",
        BLINDING,
        build_blinding,
    ),
    "secure_channel": (
        "A Noise IK secure channel between two identities: every byte written, the "
        "handshake hash and exporter keys.",
        SECURE_CHANNEL,
        build_secure_channel,
    ),
    "admission_pow": (
        "The contact-request proof of work (Anonsip-Proof header).",
        ADMISSION_POW,
        build_admission_pow,
    ),
    "sip_message": (
        "MESSAGE transcripts: too little work 100/486 with the effort, contact request with "
        "proof 100/202, contact message 100/200, a 403, an IMDN delivery notification.",
        SIP_MESSAGE,
        build_sip_message,
    ),
    "sip_presence": (
        "SUBSCRIBE/200/NOTIFY with PIDF, and the goodbye NOTIFY.",
        SIP_PRESENCE,
        build_sip_presence,
    ),
    "sip_call": (
        "INVITE with SDP offer, 180, 200 with SDP answer, ACK, REFER/202, sipfrag NOTIFY, BYE.",
        SIP_CALL,
        build_sip_call,
    ),
    "dht_identity": (
        "DHT node identities: the id puzzle, node id, onion address, identity proof.",
        DHT_IDENTITY,
        build_dht_identity,
    ),
    "dht_messages": (
        "Every DHT message type as a framed msgpack message, the mailbox ones carrying "
        "mailbox_deposit.json's deposit and deletion.",
        DHT_MESSAGES,
        build_dht_messages,
    ),
    "dht_record": (
        "The registration of registration.json as a signed DHT record, and its storage "
        "positions under shared random values.",
        DHT_RECORD,
        build_dht_record,
    ),
    "registration": (
        "A sealed registration value: inner plaintext, AEAD data, outer value.",
        REGISTRATION,
        build_registration,
    ),
    "media": (
        "Media keys of two paths from a session export secret, and the same frames (one "
        "packet, two packets, END) sealed on each path.",
        MEDIA,
        build_media,
    ),
    "invite": ("An invite (Bech32m, HRP asipinv).", INVITE, build_invite),
    "mailbox_letter": (
        "Mailbox letters: body, signature, plaintext and the sealed box.",
        MAILBOX_LETTER,
        build_mailbox_letter,
    ),
    "mailbox_deposit": (
        "A mailbox deposit with its proof of work, and the owner's deletion of it.",
        MAILBOX_DEPOSIT,
        build_mailbox_deposit,
    ),
}


def build(name: str, inputs: Json) -> Json:
    """The expected outputs of vector ``name`` for ``inputs``."""
    return VECTORS[name][2](inputs)


def document(name: str) -> Json:
    description, inputs, _ = VECTORS[name]
    return {
        "description": description,
        "generated_by": "tests/vectors/make_vectors.py (regenerating is a protocol change)",
        "inputs": inputs,
        "expected": build(name, inputs),
    }


def render(name: str) -> str:
    return json.dumps(document(name), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--protocol-change",
        action="store_true",
        help="rewrite the vector files (this changes the protocol: say so in docs/protocol.md)",
    )
    args = parser.parse_args(argv)
    differ = []
    for name in VECTORS:
        path = HERE / f"{name}.json"
        text = render(name)
        if path.exists() and path.read_text() == text:
            continue
        differ.append(name)
        if args.protocol_change:
            path.write_text(text)
    if differ and not args.protocol_change:
        print("these vectors differ from the code:", ", ".join(differ), file=sys.stderr)
        return 1
    print("rewritten: " + ", ".join(differ) if differ else "every vector matches the code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
