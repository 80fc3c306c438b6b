"""The call commands: ``call``, ``answer``, ``hangup`` and ``calls``.

They talk to the node running in ``--home`` through its control socket
(docs/control-api.md). ``call`` stays attached: it prints each state the
call goes through, hangs up after ``--seconds`` (or on Ctrl-C) and ends with
one line of call statistics; it exits 0 only if the call was answered.
WAV paths are made absolute here, since the node runs in its own directory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import trio

from anonsip.control import TrioControlClient

__all__ = ["add_call_commands", "stats_line"]


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().absolute())


def _control_path(args: argparse.Namespace) -> Path:
    from anonsip.node._cli import home_of  # the node CLI imports this module

    return home_of(args).control_path


def _call_node(args: argparse.Namespace, op: str, **op_args: Any) -> Any:
    from anonsip.node._cli import call_node

    return call_node(args, op, **{k: v for k, v in op_args.items() if v is not None})


def _fmt(value: Any, unit: str, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def stats_line(stats: dict[str, Any]) -> str:
    """One line a user can read: delay, jitter, buffer, losses and the E-model MOS."""
    return (
        f"round trip {_fmt(stats.get('round_trip_ms'), ' ms')}, "
        f"jitter {_fmt(stats.get('jitter_ms'), ' ms', 1)}, "
        f"playout delay {_fmt(stats.get('playout_delay_ms'), ' ms')}, "
        f"concealed {stats.get('concealed_frames', 0)} of "
        f"{(stats.get('played_frames') or 0) + (stats.get('concealed_frames') or 0)} frames, "
        f"{_fmt((stats.get('bitrate') or 0) / 1000, ' kbit/s')}, "
        f"MOS {_fmt(stats.get('mos'), '', 2)}"
    )


async def _follow_call(args: argparse.Namespace, call_id_box: list[str]) -> int:
    answered = False
    async with TrioControlClient.connect(_control_path(args)) as client:
        await client.subscribe()
        op_args = {
            "peer": args.peer,
            "play": _absolute(args.play),
            "record": _absolute(args.record),
            "seconds": args.seconds,
        }
        result = await client.call("call", **{k: v for k, v in op_args.items() if v is not None})
        call_id = result["call_id"]
        call_id_box.append(call_id)
        last_state = ""
        async for event in client.events():
            data = dict(event.data)
            if data.get("call_id") != call_id:
                continue
            if event.event == "call.stats":
                if args.verbose_stats:
                    print(f"  {stats_line(data)}", flush=True)
                continue
            if event.event != "call":
                continue
            state = data.get("state", "")
            answered = answered or state in ("active", "held")
            if state == "ended":
                if args.json:
                    print(json.dumps(data))
                else:
                    detail = f" ({data['detail']})" if data.get("detail") else ""
                    print(f"ended: {data.get('reason', 'ended')}{detail}")
                    if data.get("stats"):
                        print(f"stats: {stats_line(data['stats'])}")
                return 0 if answered else 1
            if state != last_state and not args.json:
                print(state, flush=True)
            last_state = state
    print("the node closed the control connection")
    return 1


def cmd_call(args: argparse.Namespace) -> int:
    call_id_box: list[str] = []
    try:
        return trio.run(_follow_call, args, call_id_box)
    except KeyboardInterrupt:
        if call_id_box:
            _call_node(args, "hangup", call_id=call_id_box[0])
            print("hung up")
        return 130
    except BaseExceptionGroup as group:
        from anonsip.node._cli import _leaves  # one error inside the client's nursery

        leaves = list(_leaves(group))
        if len(leaves) == 1 and isinstance(leaves[0], Exception):
            raise leaves[0] from None
        raise


def cmd_answer(args: argparse.Namespace) -> int:
    _call_node(
        args,
        "answer",
        call_id=args.call_id,
        play=_absolute(args.play),
        record=_absolute(args.record),
    )
    print("answered")
    return 0


def cmd_hangup(args: argparse.Namespace) -> int:
    _call_node(args, "hangup", call_id=args.call_id)
    print("hung up")
    return 0


def _calls_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no calls"
    lines = []
    for c in rows:
        peer = c["peer"]
        short = peer if len(peer) <= 20 else f"{peer[:14]}…{peer[-4:]}"
        flags = " muted" if c.get("muted") else ""
        lines.append(f"{c['call_id'][:8]}  {c['direction']:<3} {c['state']:<8} {short}{flags}")
        if c.get("stats"):
            lines.append(f"          {stats_line(c['stats'])}")
    return "\n".join(lines)


def cmd_calls(args: argparse.Namespace) -> int:
    rows = _call_node(args, "calls")
    print(json.dumps(rows) if args.json else _calls_table(rows))
    return 0


def add_call_commands(commands: Any) -> None:
    def sub(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, description=help_text
        )
        parser.set_defaults(run=run)
        return parser

    p = sub("call", "call a contact and stay on the line until the call ends", cmd_call)
    p.add_argument("peer", metavar="NICK_OR_ADDRESS")
    p.add_argument("--play", metavar="IN.wav", help="send this 16 kHz mono WAV (then silence)")
    p.add_argument("--record", metavar="OUT.wav", help="record what the peer says")
    p.add_argument("--seconds", type=float, help="hang up this long after the answer")
    p.add_argument("--stats", dest="verbose_stats", action="store_true", help="print live stats")
    p.add_argument("--json", action="store_true", help="print the final call event as JSON")

    p = sub("answer", "answer the ringing call", cmd_answer)
    p.add_argument("--call-id", help="which call (default: the one ringing)")
    p.add_argument("--play", metavar="IN.wav", help="send this WAV instead of the microphone")
    p.add_argument("--record", metavar="OUT.wav", help="record the call instead of playing it")

    p = sub("hangup", "end a call (or give up calling)", cmd_hangup)
    p.add_argument("--call-id", help="which call (default: the current one)")

    p = sub("calls", "the node's calls with live statistics", cmd_calls)
    p.add_argument("--json", action="store_true")
