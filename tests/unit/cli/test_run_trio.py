"""``run_trio``: the CLI's ``trio.run``, which hands back the error a user should see."""

from __future__ import annotations

import signal

import pytest
import trio

from anonsip._errors import LocalError
from anonsip.cli._client import run_trio


async def _ctrl_c_while_following() -> None:
    """As ``anonsip call`` follows a call: inside the control client's nursery."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep_forever)
        signal.raise_signal(signal.SIGINT)  # the user presses Ctrl-C
        await trio.sleep_forever()


def test_ctrl_c_inside_a_nursery_comes_out_as_keyboard_interrupt() -> None:
    with pytest.raises(BaseExceptionGroup):  # what plain trio.run gives: no except matches
        trio.run(_ctrl_c_while_following)
    with pytest.raises(KeyboardInterrupt):
        run_trio(_ctrl_c_while_following)


def test_a_lone_error_in_a_nursery_comes_out_as_itself() -> None:
    async def fails() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            raise LocalError("no such call")

    with pytest.raises(LocalError, match="no such call"):
        run_trio(fails)


def test_a_result_comes_back() -> None:
    async def answer(x: int) -> int:
        await trio.lowlevel.checkpoint()
        return x + 1

    assert run_trio(answer, 41) == 42
