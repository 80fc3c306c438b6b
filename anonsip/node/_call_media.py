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

from anonsip._errors import AnonsipError, LocalError
from anonsip.call import StartMedia
from anonsip.control import View
from anonsip.media import JitterPolicy, MediaKeys, derive_media_keys
from anonsip.media.io import EndReason, GatedSink, MediaCall, MediaEnded, MediaParams, silent_audio
from anonsip.node._call_leg import CallLeg, stats_view
from anonsip.node._link import PeerLink

__all__ = ["CallMedia", "MediaDoor", "media_context", "media_keys", "media_token"]

log = logging.getLogger(__name__)

MEDIA_TOKEN_LABEL = b"anonsip-media-token"
MEDIA_KEY_LABEL = b"anonsip-media-key"
TOKEN_BYTES = 16
MEDIA_OPEN_TIMEOUT_S = 45.0  # caller: dial the media stream (a new rendezvous circuit)
MEDIA_TOKEN_READ_S = 15.0
STATS_INTERVAL_S = 1.0  # callee: a media stream must name its call this fast
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


class CallMedia:
    """Runs each call's media: opens or awaits its stream, keys it, plays and records."""

    def __init__(
        self,
        *,
        open_media: Callable[[bytes], Awaitable[trio.abc.Stream]],
        publish: Callable[[str, View], None],
        on_ended: Callable[[CallLeg, MediaEnded], Awaitable[None]],
        media_wait_s: float,
    ) -> None:
        self._door = MediaDoor()
        self._open_media = open_media
        self._publish = publish
        self._on_ended = on_ended
        self._media_wait_s = media_wait_s

    def forget(self, token: bytes) -> None:
        self._door.forget(token)

    async def serve(self, stream: trio.abc.Stream) -> None:
        await self._door.serve(stream)

    def start(self, leg: CallLeg, start: StartMedia, callee_tag: str) -> None:
        """Media begins (before the 200 OK leaves, so the caller's stream finds its call)."""
        if leg.media_running or leg.nursery is None or leg.link is None:
            return
        context = media_context(leg.call_id, callee_tag)
        leg.media_running = True
        leg.direction = start.direction
        leg.token = media_token(leg.link, context)
        if not start.caller:
            self._door.expect(leg.token)
        leg.nursery.start_soon(self._run_media, leg, start, context)

    def apply_direction(self, leg: CallLeg) -> None:
        if leg.media is not None:
            # Holding someone stops our microphone too: RFC 3264's sendonly
            # would play it to them, which is not what a user means by hold.
            m = leg.machine
            silent = m.muted or leg.pending_mute or m.local_hold
            leg.media.set_muted(silent or not leg.direction.sends)
        if leg.gate is not None:
            leg.gate.open = leg.direction.receives

    async def _open_media_stream(self, leg: CallLeg, caller: bool) -> trio.abc.Stream:
        assert leg.token is not None
        if caller:
            return await dial_media(
                self._open_media, leg.peer_key, leg.token, timeout=MEDIA_OPEN_TIMEOUT_S
            )
        with trio.fail_after(self._media_wait_s):
            return await self._door.wait_stream(leg.token)

    async def _run_media(self, leg: CallLeg, start: StartMedia, context: str) -> None:
        ended: MediaEnded | None = None
        try:
            assert leg.link is not None
            params = MediaParams(
                sample_rate=start.sample_rate,
                frame_ms=start.frame_ms,
                bitrate=start.bitrate,
                jitter=JitterPolicy(frame_ms=start.frame_ms),
            )
            keys = media_keys(leg.link, context, caller=start.caller)
            stream = await self._open_media_stream(leg, start.caller)
            audio = leg.audio or silent_audio("silence")
            leg.audio = audio
            gate = GatedSink(audio.sink)
            try:
                media = MediaCall(stream, keys=keys, source=audio.source, sink=gate, params=params)
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            async with media:
                leg.media, leg.gate = media, gate
                self.apply_direction(leg)
                async with trio.open_nursery() as helpers:
                    helpers.start_soon(self._stats_loop, leg, media)
                    helpers.start_soon(self._hang_up_media_on_stop, leg, media)
                    ended = await media.wait_ended()
                    helpers.cancel_scope.cancel()
                leg.final_stats = stats_view(media.statistics(), call_id=leg.call_id, peer=leg.peer)
        except trio.TooSlowError:
            detail = "the media stream did not " + (
                "open in time" if start.caller else "arrive in time"
            )
            ended = MediaEnded(reason=EndReason.BROKEN, detail=detail)
        except (AnonsipError, trio.BrokenResourceError, OSError) as exc:
            ended = MediaEnded(reason=EndReason.BROKEN, detail=f"the media stream failed: {exc}")
        finally:
            leg.media = None
            leg.gate = None
            if leg.token is not None:
                self._door.release(leg.token)
            leg.media_done.set()
        if ended is not None:
            await self._on_ended(leg, ended)

    async def _hang_up_media_on_stop(self, leg: CallLeg, media: MediaCall) -> None:
        await leg.stop_media.wait()
        await media.hang_up()

    async def _stats_loop(self, leg: CallLeg, media: MediaCall) -> None:
        while True:
            await trio.sleep(STATS_INTERVAL_S)
            self._publish(
                "call.stats", stats_view(media.statistics(), call_id=leg.call_id, peer=leg.peer)
            )
