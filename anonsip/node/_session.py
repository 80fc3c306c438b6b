"""A secure session: the Noise channel of ``anonsip.identity`` over one stream.

This is the thin trio adapter for ``SecureChannel`` (the sans-IO core): it
owns the stream, feeds the core what it reads, writes what the core queues,
and on any failure marks itself broken and re-raises (h11's trio-server
pattern). One session carries SIP messages, one per channel message, in
both directions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from anonsip._errors import LocalError, RemoteProtocolError
from anonsip.identity import (
    NEED_DATA,
    ChannelState,
    CloseReceived,
    HandshakeComplete,
    Identity,
    Message,
    RandomSource,
    SecureChannel,
)

log = logging.getLogger(__name__)

_READ_SIZE = 65536


class SessionClosed(LocalError):
    """The session was closed by us, or ended cleanly by the peer."""


class SessionBroken(RemoteProtocolError):
    """The stream broke or the peer sent something the channel refused."""


class Session:
    """One authenticated, encrypted session with a peer pseudonym."""

    def __init__(self, stream: trio.abc.Stream, channel: SecureChannel) -> None:
        self._stream = stream
        self._channel = channel
        self._send_lock = trio.Lock()
        self._receive_lock = trio.Lock()
        self._pending: list[bytes] = []
        self._closed = False
        self._broken: BaseException | None = None
        self.remote_public_key: bytes = b""

    # -- establishing --------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        stream: trio.abc.Stream,
        identity: Identity,
        remote_public_key: bytes,
        *,
        rng: RandomSource,
        prologue: bytes = b"",
    ) -> Session:
        """Run the IK handshake as the caller; the peer is authenticated by key."""
        channel = SecureChannel.initiate(
            identity, rng=rng, remote_public_key=remote_public_key, prologue=prologue
        )
        session = cls(stream, channel)
        await session._finish_handshake()
        if session.remote_public_key != remote_public_key:
            raise SessionBroken("the peer answered with a different identity")
        return session

    @classmethod
    async def accept(
        cls,
        stream: trio.abc.Stream,
        identity: Identity,
        *,
        rng: RandomSource,
        prologue: bytes = b"",
        ik_only: bool = True,
    ) -> Session:
        """Run the handshake as the callee; learn who is calling.

        Only a caller that knows our key gets in (IK): an XX handshake would
        tell whoever connects which pseudonym answers here.
        """
        channel = SecureChannel.respond(identity, rng=rng, prologue=prologue, ik_only=ik_only)
        session = cls(stream, channel)
        await session._finish_handshake()
        return session

    async def _finish_handshake(self) -> None:
        try:
            await self._handshake_steps()
        except BaseException:
            # A failed handshake must not leave the peer waiting for a reply.
            await trio.aclose_forcefully(self._stream)
            raise

    async def _handshake_steps(self) -> None:
        await self._flush()
        while True:
            event = await self._next_event()
            if isinstance(event, HandshakeComplete):
                self.remote_public_key = event.remote_public_key
                await self._flush()
                return
            if isinstance(event, Message):
                # IK lets the initiator's first payload ride along; keep it.
                self._pending.append(event.data)
                continue
            raise SessionBroken("the peer closed the session during the handshake")

    # -- use -----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return not self._closed and self._broken is None

    def export_key(self, label: bytes) -> bytes:
        return self._channel.export_key(label)

    async def send(self, data: bytes) -> None:
        """Send one message; raises ``SessionBroken`` / ``SessionClosed``."""
        await self.send_many((data,))

    async def send_many(self, messages: Sequence[bytes]) -> None:
        """Send messages in order in one write (each is its own frame, as with ``send``)."""
        if not messages:
            return
        self._check_usable()
        async with self._send_lock:
            self._check_usable()
            try:
                for data in messages:
                    self._channel.send_message(data)
            except RemoteProtocolError as exc:
                raise self._mark_broken(exc) from exc
            await self._flush()

    async def receive(self) -> bytes:
        """The next message; raises ``SessionClosed`` when the peer ended cleanly."""
        async with self._receive_lock:
            if self._pending:
                return self._pending.pop(0)
            self._check_usable()
            event = await self._next_event()
            if isinstance(event, Message):
                return event.data
            if isinstance(event, CloseReceived):
                self._closed = True
                raise SessionClosed("the peer closed the session")
            raise self._mark_broken(SessionBroken(f"unexpected channel event {event!r}"))

    async def aclose(self) -> None:
        """Say goodbye (CLOSE frame) if we can, then close the stream."""
        if not self._closed and self._broken is None:
            self._closed = True
            with trio.move_on_after(2) as scope:
                scope.shield = True
                try:
                    async with self._send_lock:
                        if self._channel.state is ChannelState.OPEN:
                            self._channel.close()
                            await self._stream.send_all(self._channel.data_to_send())
                except (trio.BrokenResourceError, trio.ClosedResourceError, LocalError):
                    log.debug("session closed without goodbye")
        self._closed = True
        await trio.aclose_forcefully(self._stream)

    # -- internals -----------------------------------------------------------

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise SessionBroken(f"the session is broken: {self._broken}")
        if self._closed:
            raise SessionClosed("the session is closed")

    def _mark_broken(self, exc: BaseException) -> SessionBroken:
        self._broken = exc
        return exc if isinstance(exc, SessionBroken) else SessionBroken(str(exc))

    async def _flush(self) -> None:
        data = self._channel.data_to_send()
        if not data:
            return
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise self._mark_broken(SessionBroken("the stream broke while sending")) from exc
        except BaseException as exc:
            # Cancelled (or anything else) inside send_all: part of a frame may
            # be on the wire, so nothing more can follow it (h11's rule).
            self._mark_broken(SessionBroken(f"a send was interrupted: {type(exc).__name__}"))
            raise

    async def _next_event(self) -> object:
        eof = False
        while True:
            try:
                event = self._channel.next_event()
            except RemoteProtocolError as exc:
                raise self._mark_broken(exc) from exc
            if event is not NEED_DATA:
                # A REKEY or CLOSE may have queued a reply frame.
                await self._flush()
                return event
            if eof:
                raise self._mark_broken(SessionBroken("the stream ended"))
            try:
                data = await self._stream.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise self._mark_broken(SessionBroken("the stream broke")) from exc
            eof = not data
            try:
                self._channel.receive_data(data)
            except RemoteProtocolError as exc:
                raise self._mark_broken(exc) from exc
