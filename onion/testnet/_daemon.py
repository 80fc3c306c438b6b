"""Processes of a private network that outlive the command that starts them.

``testnet up``, ``join --relay`` and ``join --bridge`` start tors meant to
keep running after they return (``down`` stops them later, by pid). Such a
process is spawned with ``os.posix_spawn`` in its own session, and nothing
in this process keeps an operating-system handle on it once we stop
watching: a pidfd is opened only while we wait for its exit, and the pipe
of its output only while we read its first lines. (A ``trio.Process``
would hold a pidfd for as long as the object lives, and report it as a
resource leak when dropped while the tor runs on, as it is meant to.)
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Sequence

import trio

__all__ = ["Daemon"]


class Daemon:
    """A child process in its own session: its pid, its output (if asked for), its exit."""

    def __init__(self, pid: int, output: trio.lowlevel.FdStream | None) -> None:
        self.pid = pid
        self.output = output
        self.returncode: int | None = None

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        capture_output: bool = False,
        output_file: str | None = None,
    ) -> Daemon:
        """Start ``argv`` (``argv[0]`` an absolute path) with stdin from /dev/null and
        stdout and stderr to a pipe we read (``capture_output``), to ``output_file``
        (created or emptied, readable by us alone) or to /dev/null."""
        actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)
        ]
        read_end = write_end = -1
        if capture_output:
            read_end, write_end = os.pipe()  # both close-on-exec; dup2 makes 1 and 2 inherited
            actions += [
                (os.POSIX_SPAWN_DUP2, write_end, 1),
                (os.POSIX_SPAWN_DUP2, write_end, 2),
            ]
        else:
            target, flags = os.devnull, os.O_WRONLY
            if output_file is not None:
                target, flags = output_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            actions += [
                (os.POSIX_SPAWN_OPEN, 1, target, flags, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ]
        try:
            pid = os.posix_spawn(argv[0], list(argv), env, file_actions=actions, setsid=True)
        except BaseException:
            if capture_output:
                os.close(read_end)
            raise
        finally:
            if capture_output:
                os.close(write_end)
        return cls(pid, trio.lowlevel.FdStream(read_end) if capture_output else None)

    async def wait(self) -> int:
        """Wait for the process to exit (its pidfd, no polling), reap it; its exit code."""
        if self.returncode is not None:
            return self.returncode
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            fd = -1  # reaped already (by someone else): nothing to wait for
        if fd >= 0:
            try:
                await trio.lowlevel.wait_readable(fd)
            finally:
                os.close(fd)
        try:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            self.returncode = -1
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def close_output(self) -> None:
        if self.output is not None:
            await self.output.aclose()
