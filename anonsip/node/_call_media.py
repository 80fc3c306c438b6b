"""A call's media stream: how it is found, keyed and run beside the call's SIP dialog.

Media runs on a second onion stream on its own circuit: after the 200 OK
the caller dials the callee's onion service again and sends a 16-byte
token; the callee attaches the stream to the call the token names and
closes a stream whose token it does not know. Token and keys come from the
secure session's exporter over the call's *media context*: the Call-ID
(the caller's choice) and the To tag of the callee's answer (the callee's
choice, fresh random per dialog). A caller that reuses a Call-ID therefore
still gets new keys, and the callee's nonce counter never restarts under an
old key. Only the authenticated peer of that session can compute either.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from anonsip._errors import LocalError
from anonsip.media import MediaKeys, derive_media_keys
from anonsip.node._link import PeerLink

__all__ = ["MediaDoor", "media_context", "media_keys", "media_token"]

log = logging.getLogger(__name__)

MEDIA_TOKEN_LABEL = b"anonsip-media-token"
MEDIA_KEY_LABEL = b"anonsip-media-key"
TOKEN_BYTES = 16
MEDIA_TOKEN_READ_S = 15.0  # callee: a media stream must name its call this fast
MAX_WAITING = 16  # calls whose media stream is awaited at once (bounded by the calls cap)


def media_context(call_id: str, callee_tag: str) -> str:
    return f"{call_id}\x00{callee_tag}"


def media_token(link: PeerLink, context: str) -> bytes:
    """The token that names a call's media stream; only the session's two ends know it."""
    return link.session.export_key(MEDIA_TOKEN_LABEL + context.encode())[:TOKEN_BYTES]


def media_keys(link: PeerLink, context: str, *, caller: bool) -> MediaKeys:
    return derive_media_keys(link.session.export_key(MEDIA_KEY_LABEL), context, caller=caller)


class _Waiting:
    def __init__(self) -> None:
        self.arrived = trio.Event()
        self.stream: trio.abc.Stream | None = None
        self.done = trio.Event()


class MediaDoor:
    """The callee's side: media streams that reached our onion service, matched to calls."""

    def __init__(self) -> None:
        self._waiting: dict[bytes, _Waiting] = {}

    def expect(self, token: bytes) -> None:
        if len(self._waiting) >= MAX_WAITING:
            raise LocalError("too many calls wait for their media stream")
        self._waiting.setdefault(token, _Waiting())

    def forget(self, token: bytes) -> None:
        waiting = self._waiting.pop(token, None)
        if waiting is not None:
            waiting.done.set()

    async def wait_stream(self, token: bytes) -> trio.abc.Stream:
        waiting = self._waiting[token]
        await waiting.arrived.wait()
        assert waiting.stream is not None
        return waiting.stream

    def release(self, token: bytes) -> None:
        """The call is over with the stream: let ``serve`` return (and close it)."""
        self.forget(token)

    async def serve(self, stream: trio.abc.Stream) -> None:
        """A stream marked as media: read its token, hand it to its call, hold it open."""
        token = b""
        try:
            with trio.move_on_after(MEDIA_TOKEN_READ_S):
                while len(token) < TOKEN_BYTES:
                    chunk = await stream.receive_some(TOKEN_BYTES - len(token))
                    if not chunk:
                        break
                    token += chunk
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            token = b""
        waiting = self._waiting.get(token) if len(token) == TOKEN_BYTES else None
        if waiting is None or waiting.arrived.is_set():
            log.info("refused a media stream that names no call")
            await trio.aclose_forcefully(stream)
            return
        waiting.stream = stream
        waiting.arrived.set()
        # The onion service closes the stream when this returns: hold it for the call.
        await waiting.done.wait()


async def dial_media(
    open_media: Callable[[bytes], Awaitable[trio.abc.Stream]],
    peer_key: bytes,
    token: bytes,
    *,
    timeout: float,
) -> trio.abc.Stream:
    """The caller's side: a new stream to the peer's onion service, named by ``token``."""
    with trio.fail_after(timeout):
        stream = await open_media(peer_key)
        try:
            await stream.send_all(token)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
    return stream
