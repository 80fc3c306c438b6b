"""A real terminal for end-to-end tests: a program in a detached tmux session.

Each ``TmuxScreen`` uses its own tmux server (``-L``), so tests never touch
a user's tmux and ``close()`` ends everything the session ran. Reading the
screen is polling by nature (a terminal has no "changed" signal), so
``wait_for`` captures the pane at a short interval under a deadline.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import trio

POLL = 0.2
EXIT_MARK = "anonsip-test-exit-status="


class TmuxScreen:
    def __init__(self, name: str) -> None:
        self.name = name
        self.server = f"anonsip-test-{os.getpid()}-{name}"
        self.last = ""

    async def _tmux(self, *args: str, check: bool = True) -> str:
        result = await trio.run_process(
            ["tmux", "-L", self.server, *args],
            capture_stdout=True,
            capture_stderr=True,
            check=check,
        )
        return result.stdout.decode("utf-8", errors="replace")

    async def start(
        self,
        command: Sequence[str],
        *,
        width: int = 100,
        height: int = 30,
        env: Mapping[str, str] | None = None,
    ) -> None:
        shell = shlex.join(command)
        if env:
            shell = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shell
        # The shell prints the exit status: tmux 3.3 sometimes leaves a dead pane
        # unreaped, with no #{pane_dead_status}.
        shell = f"{shell}; echo {EXIT_MARK}$?"
        # remain-on-exit before the session exists: the pane stays after the
        # program ends, however soon, so its last words can be read.
        await self._tmux(
            "start-server",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "new-session",
            "-d",
            "-s",
            self.name,
            "-x",
            str(width),
            "-y",
            str(height),
            shell,
        )

    async def own_pids(self) -> set[int]:
        """The tmux server and the pane's shell: they name the command but are not it."""
        out = await self._tmux("display-message", "-p", "-t", self.name, "#{pid} #{pane_pid}")
        return {int(pid) for pid in out.split()}

    async def screen(self) -> str:
        self.last = await self._tmux("capture-pane", "-p", "-t", self.name)
        return self.last

    async def send_keys(self, *keys: str) -> None:
        await self._tmux("send-keys", "-t", self.name, *keys)

    async def type_text(self, text: str) -> None:
        await self._tmux("send-keys", "-t", self.name, "-l", text)

    async def wait_for(self, found: Callable[[str], bool], timeout: float, what: str) -> str:
        """The screen once ``found(screen)`` holds; AssertionError with the screen if not."""
        try:
            with trio.fail_after(timeout):
                while not found(await self.screen()):
                    await trio.sleep(POLL)
        except trio.TooSlowError:
            raise AssertionError(
                f"after {timeout:.0f} s the screen does not show {what}:\n{self.last}"
            ) from None
        return self.last

    async def history(self) -> str:
        """Everything the normal screen showed, including what scrolled off it."""
        return await self._tmux("capture-pane", "-p", "-S", "-", "-t", self.name)

    async def exit_status(self) -> int | None:
        """The program's exit status once it ended, else None."""
        # The whole history: the line may scroll off when the UI leaves the alternate screen.
        for line in (await self.history()).splitlines():
            if line.startswith(EXIT_MARK):
                return int(line.removeprefix(EXIT_MARK))
        return None

    async def wait_exit(self, timeout: float) -> int:
        try:
            with trio.fail_after(timeout):
                while (status := await self.exit_status()) is None:
                    await trio.sleep(POLL)
        except trio.TooSlowError:
            raise AssertionError(
                f"the program still runs {timeout:.0f} s after quitting:\n{await self.screen()}"
            ) from None
        return status

    async def close(self) -> None:
        """End the tmux server, everything it ran, and its socket file."""
        with trio.CancelScope(shield=True):
            out = await self._tmux(
                "display-message", "-p", "-t", self.name, "#{socket_path}", check=False
            )
            await self._tmux("kill-server", check=False)
            if out.strip():
                Path(out.strip()).unlink(missing_ok=True)


async def open_first_conversation(screen: TmuxScreen, nick: str, timeout: float) -> str:
    """ctrl-n in the anonsip UI until the conversation with ``nick`` is open.

    A key pressed as the first contact appears can land before the UI has
    highlighted it (a presence event may draw the contact before
    ``contacts.list`` selects it), so the key is repeated.
    """

    def is_open(text: str) -> bool:
        lines = text.splitlines()
        return len(lines) > 1 and lines[1].partition("│")[2].strip().startswith(nick)

    with trio.move_on_after(timeout):
        while True:
            await screen.send_keys("C-n")
            with trio.move_on_after(2.0):
                while not is_open(await screen.screen()):
                    await trio.sleep(POLL)
                return screen.last
    raise AssertionError(f"ctrl-n did not open the conversation with {nick}:\n{screen.last}")


def in_contacts(text: str, nick: str) -> bool:
    """``nick`` in the anonsip UI's contacts pane (left of the rule, under the status bar)."""
    lines = text.splitlines()
    return any("│" in line and nick in line.partition("│")[0] for line in lines[1:])


def in_conversation(text: str, phrase: str) -> bool:
    """``phrase`` in the anonsip UI's conversation pane, however the UI wrapped it."""
    rows = [line.partition("│")[2].strip() for line in text.splitlines()[3:] if "│" in line]
    return phrase in " ".join(rows)
