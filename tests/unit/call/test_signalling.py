"""The mapping between call signals and SIP, on two real endpoints in memory (no trio).

``request_for`` builds what the caller sends; the callee's endpoint parses
it; ``signal_of`` turns it back into the signal the callee's machine
takes. A refused request raises only ``RemoteProtocolError``.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonsip._errors import LocalError, RemoteProtocolError
from anonsip.call import (
    Bye,
    Direction,
    Invite,
    Method,
    Notify,
    Refer,
    Response,
    SessionDescription,
    request_for,
    response_parts,
    signal_of,
    sipfrag_status,
)
from anonsip.identity import Identity
from anonsip.sip import (
    Dialog,
    DialogId,
    Request,
    RequestReceived,
    ResponseReceived,
    SipEndpoint,
    Uri,
    message_request,
)
from tests.unit.sip.helpers import drain


def _identity(seed: int) -> Identity:
    r = random.Random(seed)
    return Identity.generate(f"p{seed}", rng=r.randbytes)


ALICE, BOB, CAROL = _identity(1), _identity(2), _identity(3)
OFFER = SessionDescription(session_id=7, version=1)


def _uri(identity: Identity) -> Uri:
    return Uri.parse(identity.address.sip_uri)


class Pair:
    """Alice (caller) and Bob, their frames moved by hand."""

    def __init__(self) -> None:
        self.alice = SipEndpoint(
            local_aor=_uri(ALICE), peer_aor=_uri(BOB), rng=random.Random(5).randbytes
        )
        self.bob = SipEndpoint(
            local_aor=_uri(BOB), peer_aor=_uri(ALICE), rng=random.Random(6).randbytes
        )

    def deliver(self, sender: SipEndpoint) -> list[object]:
        receiver = self.bob if sender is self.alice else self.alice
        for frame in sender.frames_to_send():
            receiver.receive_data(frame)
        return list(drain(receiver))

    def established(self) -> tuple[Dialog, Dialog, Request]:
        """An answered call: (Alice's dialog, Bob's dialog, the INVITE)."""
        invite, method = request_for(self.alice, Invite(offer=OFFER), call_id="c1", dialog=None)
        assert method is Method.INVITE
        self.alice.send_request(invite, 0.0)
        (received,) = [e for e in self.deliver(self.alice) if isinstance(e, RequestReceived)]
        assert received.request.call_id == "c1"
        assert SessionDescription.parse(received.request.body) == OFFER
        callee_tag = self.bob.local_tag(received.request)
        headers, body = response_parts(Response(status=200, method=Method.INVITE, answer=OFFER))
        response = self.bob.respond(received.request, 200, headers=headers, body=body, now=0.0)
        bob_dialog = self.bob.dialog_of_response(response)
        assert bob_dialog is not None
        (answer,) = [e for e in self.deliver(self.bob) if isinstance(e, ResponseReceived)]
        assert SessionDescription.parse(answer.response.body) == OFFER
        alice_dialog = self.alice.dialog(
            DialogId(
                call_id="c1",
                local_tag=invite.from_.tag or "",
                remote_tag=answer.response.to.tag or "",
            )
        )
        assert alice_dialog is not None
        # The callee's To tag, chosen when the INVITE arrived, is what Alice sees.
        assert callee_tag == alice_dialog.id.remote_tag
        self.deliver(self.alice)  # the ACK
        return alice_dialog, bob_dialog, invite

    def in_dialog(self, signal: object, dialog: Dialog) -> Request:
        request, _method = request_for(self.alice, signal, call_id="c1", dialog=dialog)  # type: ignore[arg-type]
        self.alice.send_request(request, 0.0)
        (received,) = [e for e in self.deliver(self.alice) if isinstance(e, RequestReceived)]
        assert received.dialog is not None
        return received.request


def test_every_in_dialog_signal_comes_back_as_itself() -> None:
    pair = Pair()
    alice_dialog, _bob_dialog, _invite = pair.established()
    held = SessionDescription(session_id=7, version=2, direction=Direction.SENDONLY)
    cases: list[tuple[object, object, Method]] = [
        (Invite(offer=held, reinvite=True), Invite(offer=held, reinvite=True), Method.INVITE),
        (Refer(target=CAROL.address.text), Refer(target=CAROL.address.text), Method.REFER),
        (Notify(status=180, reason="Ringing"), Notify(status=180, reason="Ringing"), Method.NOTIFY),
        (Bye(), Bye(), Method.BYE),
    ]
    for sent, expected, method in cases:
        request = pair.in_dialog(sent, alice_dialog)
        assert signal_of(request) == (expected, method)
        pair.bob.respond(request, 200, now=0.0)
        pair.deliver(pair.bob)


def test_a_notify_of_a_transfer_is_a_sipfrag_in_the_refer_package() -> None:
    pair = Pair()
    alice_dialog, _, _ = pair.established()
    request = pair.in_dialog(Notify(status=200, reason="OK"), alice_dialog)
    assert request.get("Event") == "refer"
    assert (request.get("Subscription-State") or "").startswith("terminated")
    assert request.body == b"SIP/2.0 200 OK"


def test_signals_that_need_a_dialog_refuse_without_one() -> None:
    pair = Pair()
    for signal in (Bye(), Refer(target=CAROL.address.text), Notify(status=100, reason="Trying")):
        with pytest.raises(LocalError, match="no dialog"):
            request_for(pair.alice, signal, call_id="c1", dialog=None)


def test_requests_that_are_not_a_call_signal_are_refused() -> None:
    pair = Pair()
    alice_dialog, _, _ = pair.established()
    refer = pair.in_dialog(Refer(target=CAROL.address.text), alice_dialog)
    with pytest.raises(RemoteProtocolError, match="Refer-To"):
        signal_of(refer.with_replaced("Refer-To", None))
    with pytest.raises(RemoteProtocolError, match="not an address"):
        signal_of(refer.with_replaced("Refer-To", "<sip:someone@example.org>"))
    with pytest.raises(RemoteProtocolError, match="does not belong"):
        signal_of(message_request(pair.alice, "hello"))
    notify = pair.in_dialog(Notify(status=180, reason="Ringing"), alice_dialog)
    with pytest.raises(RemoteProtocolError):
        signal_of(dataclasses.replace(notify, body=b"HTTP/1.1 200 OK"))


def test_responses_carry_an_sdp_answer_only_when_there_is_one() -> None:
    assert response_parts(Response(status=486, method=Method.INVITE)) == ((), b"")
    headers, body = response_parts(Response(status=200, method=Method.INVITE, answer=OFFER))
    assert headers == (("Content-Type", "application/sdp"),)
    assert SessionDescription.parse(body) == OFFER


def test_sipfrag_status_line() -> None:
    assert sipfrag_status(b"SIP/2.0 200 OK\r\n") == (200, "OK")
    assert sipfrag_status(b"SIP/2.0 100 Trying") == (100, "Trying")
    body = b"SIP/2.0 486 Busy Here\r\n"
    for cut in range(len(b"SIP/2.0 486")):
        with pytest.raises(RemoteProtocolError):
            sipfrag_status(body[:cut])
    for bad in (b"SIP/2.0 99 x", b"SIP/3.0 200 OK", b"SIP/2.0 2000 OK", b"x" * 300):
        with pytest.raises(RemoteProtocolError):
            sipfrag_status(bad)


@given(st.binary(max_size=400))
def test_sipfrag_raises_only_remote_errors(data: bytes) -> None:
    try:
        status, reason = sipfrag_status(data)
    except RemoteProtocolError:
        return
    assert 100 <= status <= 699
    assert len(reason) <= 64
