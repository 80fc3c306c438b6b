"""A call's media paths: how they are found, keyed and run beside the call's SIP dialog.

Media runs on onion streams of its own, each on its own circuit (a new
rendezvous with its own SOCKS isolation): the call's *paths*. The caller
starts dialling them the moment its INVITE leaves, so they are usually open
before anyone answers; each path is named by a 16-byte token the caller
sends once it knows the callee's To tag (from the 180 or the 200), and the
callee, which expects the tokens from the moment it rings, attaches the
stream to the call and path the token names and closes a stream whose
token it does not know. Media flows from the answer: a path that opens
later carries what was said meanwhile.

Token and keys come from the secure session's exporter over the call's
*media context*: the Call-ID (the caller's choice) and the To tag of the
callee's answer (the callee's choice, fresh random per dialog), and the
path number. A caller that reuses a Call-ID therefore still gets new keys,
and no nonce counter restarts under an old key: a path that breaks is
replaced by one with a new number. Only the authenticated peer of that
session can compute either.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from anonsip._errors import AnonsipError, LocalError
from anonsip.call import StartMedia
from anonsip.control import View
from anonsip.media import JitterPolicy, MediaKeys, derive_media_keys
from anonsip.media.io import EndReason, GatedSink, MediaCall, MediaEnded, MediaParams, silent_audio
from anonsip.node._call_leg import CallLeg, stats_view
from anonsip.node._link import PeerLink

__all__ = [
    "MAX_PATH_NUMBERS",
    "CallMedia",
    "CallPaths",
    "MediaDoor",
    "media_context",
    "media_keys",
    "media_token",
]

log = logging.getLogger(__name__)

MEDIA_TOKEN_LABEL = b"anonsip-media-token"
MEDIA_KEY_LABEL = b"anonsip-media-key"
TOKEN_BYTES = 16
MAX_PATH_NUMBERS = 8  # paths a call may open over its life, replacements included
MEDIA_OPEN_TIMEOUT_S = 45.0  # caller: dial one path (a new rendezvous circuit)
MEDIA_TOKEN_READ_S = 15.0  # callee: a media stream must name its call this fast
REDIAL_PAUSE_S = 1.0  # caller: between a failed dial and the next
STATS_INTERVAL_S = 1.0
MAX_WAITING = 128  # tokens expected at once (calls x path numbers, bounded by the calls cap)


def media_context(call_id: str, callee_tag: str) -> str:
    return f"{call_id}\x00{callee_tag}"


class KeyExporter(Protocol):
    """A secure session's two ends (``Session``, ``SecureChannel``): keys only they derive."""

    def export_key(self, label: bytes) -> bytes: ...


def media_token(session: KeyExporter, context: str, path: int = 0) -> bytes:
    """The token that names path ``path`` of a call; only the session's two ends know it."""
    suffix = b"" if path == 0 else b"\x00path" + bytes([path])
    return session.export_key(MEDIA_TOKEN_LABEL + context.encode() + suffix)[:TOKEN_BYTES]


def media_keys(link: PeerLink, context: str, *, caller: bool, path: int = 0) -> MediaKeys:
    secret = link.session.export_key(MEDIA_KEY_LABEL)
    return derive_media_keys(secret, context, caller=caller, path=path)


Deliver = Callable[[trio.abc.Stream], bool]


class _Waiting:
    def __init__(self, deliver: Deliver) -> None:
        self.deliver = deliver
        self.arrived = False
        self.done = trio.Event()


class MediaDoor:
    """The callee's side: media streams that reached our onion service, matched to paths."""

    def __init__(self) -> None:
        self._waiting: dict[bytes, _Waiting] = {}

    def expect(self, token: bytes, deliver: Deliver) -> None:
        """A stream naming ``token`` goes to ``deliver`` (which says whether it took it)."""
        if token in self._waiting:
            return
        if len(self._waiting) >= MAX_WAITING:
            raise LocalError("too many calls wait for their media streams")
        self._waiting[token] = _Waiting(deliver)

    def forget(self, token: bytes) -> None:
        """The call is over with this path: let ``serve`` return (and close its stream)."""
        waiting = self._waiting.pop(token, None)
        if waiting is not None:
            waiting.done.set()

    async def serve(self, stream: trio.abc.Stream) -> None:
        """A stream marked as media: read its token, hand it to its path, hold it open."""
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
        if waiting is None or waiting.arrived:
            log.info("refused a media stream that names no call")
            await trio.aclose_forcefully(stream)
            return
        waiting.arrived = True  # a token names one stream, once
        if not waiting.deliver(stream):
            await trio.aclose_forcefully(stream)
            return
        # The onion service closes the stream when this returns: hold it for the call.
        await waiting.done.wait()


class CallPaths:
    """One call's paths before and while its media runs: dialled or awaited, then attached.

    Streams that open before the media starts are held here; ``attach``
    hands them (and every later one) to the running ``MediaCall``.
    """

    def __init__(
        self, *, caller: bool, wanted: int, on_refused: Callable[[int], None] = lambda _n: None
    ) -> None:
        self.caller = caller
        self.wanted = wanted  # the paths agreed on (the SDP's lower count once answered)
        self._on_refused = on_refused
        self.context: str | None = None
        self.named = trio.Event()  # the context (the callee's To tag) is known
        self.tokens: list[bytes] = []
        self.media: MediaCall | None = None
        self.held: dict[int, trio.abc.Stream] = {}
        self.refused: dict[int, trio.abc.Stream] = {}  # held, then more than agreed on
        self.changed = trio.Event()
        self.next_number = 0
        self.dialling = 0
        self.failures: list[str] = []
        self.closed = False

    def name(self, context: str) -> bool:
        """The media context is known; False if it differs from the one already named."""
        if self.context is None:
            self.context = context
            self.named.set()
        return self.context == context

    def claim_number(self) -> int | None:
        if self.next_number >= MAX_PATH_NUMBERS:
            return None
        self.next_number += 1
        return self.next_number - 1

    def offer(self, number: int, stream: trio.abc.Stream) -> bool:
        """A named stream is ready: the media takes it, or it waits for the media."""
        if self.closed:
            return False
        if self.media is None:
            self.held[number] = stream
            return True
        if self.media.open_paths >= self.wanted:
            return False  # one more than agreed on: a late dial
        try:
            self.media.add_path(stream, path=number)
        except LocalError as exc:
            log.info("a media path came too late: %s", exc)
            return False
        self._wake()
        return True

    def attach(self, media: MediaCall) -> None:
        """The media runs: it takes the held paths, as many as were agreed on."""
        self.media = media
        held, self.held = self.held, {}
        for number, stream in sorted(held.items()):
            if media.open_paths < self.wanted:
                media.add_path(stream, path=number)
            else:
                self.refused[number] = stream
                self._on_refused(number)
        self._wake()

    def holds(self, number: int) -> bool:
        return number in self.held

    def _wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def close(self) -> None:
        self.closed = True
        self._wake()

    @property
    def live(self) -> int:
        """Paths open, held or on their way."""
        open_paths = self.media.open_paths if self.media is not None else 0
        return open_paths + len(self.held) + self.dialling


class CallMedia:
    """Runs each call's media: dials or awaits its paths, keys them, plays and records."""

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

    async def serve(self, stream: trio.abc.Stream) -> None:
        await self._door.serve(stream)

    # -- before the answer -------------------------------------------------------

    def prepare(self, leg: CallLeg) -> None:
        """The caller's INVITE leaves: start dialling the call's paths at once."""
        if leg.paths is not None or leg.nursery is None or leg.link is None:
            return
        leg.paths = paths = CallPaths(caller=True, wanted=leg.machine.preferences.paths)
        for _ in range(paths.wanted):
            self._dial_one(leg, paths)

    def name(self, leg: CallLeg, callee_tag: str) -> None:
        """The caller learnt the callee's To tag (a 180 or the 200): name the paths."""
        if leg.paths is None or not callee_tag:
            return
        if not leg.paths.name(media_context(leg.call_id, callee_tag)):
            log.info("the callee's tag changed between responses; its media paths are redialled")

    def expect(self, leg: CallLeg, callee_tag: str) -> None:
        """The callee is about to ring (or answer): take the caller's paths from now on."""
        if leg.paths is not None or leg.link is None:
            return
        context = media_context(leg.call_id, callee_tag)
        tokens: list[bytes] = []

        def refused(number: int) -> None:
            self._door.forget(tokens[number])  # the door closes a stream the call will not use

        leg.paths = paths = CallPaths(
            caller=False, wanted=leg.machine.preferences.paths, on_refused=refused
        )
        paths.tokens = tokens
        paths.name(context)
        for number in range(MAX_PATH_NUMBERS):
            token = media_token(leg.link.session, context, number)
            paths.tokens.append(token)

            def deliver(stream: trio.abc.Stream, number: int = number) -> bool:
                return paths.offer(number, stream)

            self._door.expect(token, deliver)

    def forget(self, leg: CallLeg) -> None:
        """The call is over: refuse its paths from now on and let held ones go."""
        if leg.paths is None:
            return
        leg.paths.close()
        for token in leg.paths.tokens:
            self._door.forget(token)

    # -- the caller's dials -----------------------------------------------------

    def _dial_one(self, leg: CallLeg, paths: CallPaths) -> None:
        number = paths.claim_number()
        if number is None or leg.nursery is None or leg.link is None or paths.closed:
            return
        paths.dialling += 1
        leg.nursery.start_soon(self._dial_path, leg, leg.link, paths, number)

    async def _dial_path(self, leg: CallLeg, link: PeerLink, paths: CallPaths, number: int) -> None:
        """Open path ``number``, name it once the tag is known, hold it until the media takes it."""
        stream: trio.abc.Stream | None = None
        try:
            with trio.fail_after(MEDIA_OPEN_TIMEOUT_S):
                stream = await self._open_media(leg.peer_key)
            await paths.named.wait()
            assert paths.context is not None
            await stream.send_all(media_token(link.session, paths.context, number))
        except (AnonsipError, OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            paths.dialling -= 1
            if stream is not None:
                await trio.aclose_forcefully(stream)
            why = str(exc) or "the media path did not open in time"
            paths.failures.append(why)
            log.info("a media path could not be opened: %s", why)
            if paths.live < paths.wanted and not paths.closed:
                await trio.sleep(REDIAL_PAUSE_S)
                self._dial_one(leg, paths)
            return
        except BaseException:
            paths.dialling -= 1
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise
        paths.dialling -= 1
        if not paths.offer(number, stream):
            await trio.aclose_forcefully(stream)
            return
        try:
            while paths.holds(number) and not paths.closed:
                await paths.changed.wait()
        finally:
            left = paths.held.pop(number, None) or paths.refused.pop(number, None)
            if left is not None:
                await trio.aclose_forcefully(left)  # the media never took it

    def _path_closed(self, leg: CallLeg, paths: CallPaths, number: int, why: str) -> None:
        media = paths.media
        if media is None or media.open_paths == 0:
            return  # that was the last path: the call ends
        log.info("a media path closed while the call goes on: %s", why)
        if paths.caller and paths.live < paths.wanted:
            self._dial_one(leg, paths)  # a replacement, under a new number and key

    # -- from the answer ----------------------------------------------------------

    def apply_direction(self, leg: CallLeg) -> None:
        if leg.media is not None:
            # Holding someone stops our microphone too: RFC 3264's sendonly
            # would play it to them, which is not what a user means by hold.
            m = leg.machine
            silent = m.muted or leg.pending_mute or m.local_hold
            leg.media.set_muted(silent or not leg.direction.sends)
        if leg.gate is not None:
            leg.gate.open = leg.direction.receives

    def start(self, leg: CallLeg, start: StartMedia, callee_tag: str) -> None:
        """Media begins (the callee's before its 200 OK leaves, the caller's on the 200)."""
        if leg.media_running or leg.nursery is None or leg.link is None:
            return
        context = media_context(leg.call_id, callee_tag)
        if start.caller:
            if leg.paths is None:
                self.prepare(leg)
            self.name(leg, callee_tag)
        else:
            self.expect(leg, callee_tag)
        paths = leg.paths
        assert paths is not None
        paths.wanted = start.paths
        leg.media_running = True
        leg.direction = start.direction
        leg.nursery.start_soon(self._run_media, leg, paths, start, context)

    async def _run_media(
        self, leg: CallLeg, paths: CallPaths, start: StartMedia, context: str
    ) -> None:
        ended: MediaEnded | None = None
        link = leg.link
        try:
            assert link is not None
            params = MediaParams(
                sample_rate=start.sample_rate,
                frame_ms=start.frame_ms,
                bitrate=start.bitrate,
                jitter=JitterPolicy.for_paths(start.paths, frame_ms=start.frame_ms),
            )

            def keys(number: int) -> MediaKeys:
                return media_keys(link, context, caller=start.caller, path=number)

            def path_closed(number: int, why: str) -> None:
                self._path_closed(leg, paths, number, why)

            audio = leg.audio or silent_audio("silence")
            leg.audio = audio
            gate = GatedSink(audio.sink)
            media = MediaCall(
                keys=keys,
                source=audio.source,
                sink=gate.gated(),
                params=params,
                on_path_closed=path_closed,
            )
            async with media:
                leg.media, leg.gate = media, gate
                paths.attach(media)
                self.apply_direction(leg)
                ended = await self._first_path(media, start.caller, paths)
                if ended is None:
                    async with trio.open_nursery() as helpers:
                        helpers.start_soon(self._stats_loop, leg, media)
                        helpers.start_soon(self._hang_up_media_on_stop, leg, media)
                        ended = await media.wait_ended()
                        helpers.cancel_scope.cancel()
                else:
                    await media.hang_up()
                leg.final_stats = stats_view(media.statistics(), call_id=leg.call_id, peer=leg.peer)
        except* (AnonsipError, trio.BrokenResourceError, OSError) as group:
            # The media pipeline runs in nurseries: its errors come out grouped (a sink
            # that cannot be written, a path that broke). They end this call, not the node.
            exc: BaseException = group
            while isinstance(exc, BaseExceptionGroup):
                exc = exc.exceptions[0]
            ended = MediaEnded(reason=EndReason.BROKEN, detail=f"the media stream failed: {exc}")
        finally:
            leg.media = None
            leg.gate = None
            self.forget(leg)
            leg.media_done.set()
        if ended is not None:
            await self._on_ended(leg, ended)

    async def _first_path(
        self, media: MediaCall, caller: bool, paths: CallPaths
    ) -> MediaEnded | None:
        """Wait (bounded) until a path carries the call; None once one does."""
        wait = MEDIA_OPEN_TIMEOUT_S if caller else self._media_wait_s
        with trio.move_on_after(wait):
            await media.wait_first_path()
            return None
        detail = "the media stream did not " + ("open in time" if caller else "arrive in time")
        if paths.failures:
            detail += f" ({paths.failures[-1]})"
        return MediaEnded(reason=EndReason.BROKEN, detail=detail)

    async def _hang_up_media_on_stop(self, leg: CallLeg, media: MediaCall) -> None:
        await leg.stop_media.wait()
        await media.hang_up(play_out=leg.play_out)

    async def _stats_loop(self, leg: CallLeg, media: MediaCall) -> None:
        while True:
            await trio.sleep(STATS_INTERVAL_S)
            self._publish(
                "call.stats", stats_view(media.statistics(), call_id=leg.call_id, peer=leg.peer)
            )
