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

from anonsip.cli._client import call_node, home_of, run_trio
from anonsip.control import CallState, CallStatsView, CallView, TrioControlClient
from anonsip.media.io import list_audio_devices

__all__ = ["add_call_commands", "stats_line"]


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().absolute())


def _call_node(args: argparse.Namespace, op: str, **op_args: Any) -> Any:
    return call_node(args, op, **op_args)


def _fmt(value: Any, unit: str, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def stats_line(stats: CallStatsView) -> str:
    """One line a user can read: delay, jitter, buffer, losses and the E-model MOS."""
    return (
        f"round trip {_fmt(stats.round_trip_ms, ' ms')}, "
        f"jitter {_fmt(stats.jitter_ms, ' ms', 1)}, "
        f"playout delay {_fmt(stats.playout_delay_ms, ' ms')}, "
        f"concealed {stats.concealed_frames} of "
        f"{stats.played_frames + stats.concealed_frames} frames, "
        f"{_fmt(stats.bitrate / 1000, ' kbit/s')}, "
        f"MOS {_fmt(stats.mos, '', 2)}"
    )


def _audio_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "play": _absolute(args.play),
        "record": _absolute(args.record),
        "record_rate": args.record_rate,
        "input_device": args.input_device,
        "output_device": args.output_device,
    }


async def _follow_call(args: argparse.Namespace, call_id_box: list[str]) -> int:
    answered = False
    async with TrioControlClient.connect(home_of(args).control_path) as client:
        await client.subscribe()
        op_args = {"peer": args.peer, "seconds": args.seconds, **_audio_args(args)}
        result = await client.call("call", **{k: v for k, v in op_args.items() if v is not None})
        call_id = CallView.decode(result).call_id
        call_id_box.append(call_id)
        last_state: CallState | None = None
        async for event in client.events():
            if event.data.get("call_id") != call_id:
                continue
            if event.event == "call.stats":
                if args.verbose_stats:
                    print(f"  {stats_line(CallStatsView.decode(event.data))}", flush=True)
                continue
            if event.event != "call":
                continue
            view = CallView.decode(event.data)
            answered = answered or view.state in (CallState.ACTIVE, CallState.HELD)
            if view.transfer_to:
                print(
                    f"the peer asks you to call {view.transfer_to}; allow it with: "
                    "anonsip transfer-answer --yes (or --no)",
                    flush=True,
                )
            if view.state is CallState.ENDED:
                if args.json:
                    print(json.dumps(view.encode()))
                else:
                    detail = f" ({view.detail})" if view.detail else ""
                    print(f"ended: {view.reason or 'ended'}{detail}")
                    if view.stats is not None:
                        print(f"stats: {stats_line(view.stats)}")
                return 0 if answered else 1
            if view.state != last_state and not args.json:
                print(view.state.value, flush=True)
            last_state = view.state
    print("the node closed the control connection")
    return 1


def cmd_call(args: argparse.Namespace) -> int:
    call_id_box: list[str] = []
    try:
        return run_trio(_follow_call, args, call_id_box)
    except KeyboardInterrupt:  # Ctrl-C: hang the call up, not only the command
        if call_id_box:
            _call_node(args, "hangup", call_id=call_id_box[0])
            print("hung up")
        return 130


def cmd_answer(args: argparse.Namespace) -> int:
    _call_node(args, "answer", call_id=args.call_id, **_audio_args(args))
    print("answered")
    return 0


def cmd_transfer_answer(args: argparse.Namespace) -> int:
    _call_node(args, "call.transfer_answer", call_id=args.call_id, accept=args.yes)
    print("transfer allowed" if args.yes else "transfer refused")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    devices = list_audio_devices()
    print("\n".join(devices) if devices else "no sound devices (use --play/--record WAV files)")
    return 0


def cmd_hangup(args: argparse.Namespace) -> int:
    _call_node(args, "hangup", call_id=args.call_id)
    print("hung up")
    return 0


def _calls_table(rows: tuple[CallView, ...]) -> str:
    if not rows:
        return "no calls"
    lines = []
    for c in rows:
        short = c.peer if len(c.peer) <= 20 else f"{c.peer[:14]}…{c.peer[-4:]}"
        flags = " muted" if c.muted else ""
        lines.append(f"{c.call_id[:8]}  {c.direction.value:<3} {c.state.value:<8} {short}{flags}")
        if c.stats is not None:
            lines.append(f"          {stats_line(c.stats)}")
    return "\n".join(lines)


def cmd_calls(args: argparse.Namespace) -> int:
    rows = _call_node(args, "calls")
    print(json.dumps(rows) if args.json else _calls_table(CallView.decode_list(rows)))
    return 0


def add_call_commands(commands: Any) -> None:
    def sub(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, description=help_text
        )
        parser.set_defaults(run=run)
        return parser

    def audio_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--play", metavar="IN.wav", help="send this WAV (any rate; then silence)")
        p.add_argument("--record", metavar="OUT.wav", help="record what the peer says")
        p.add_argument("--record-rate", type=int, metavar="HZ", help="the recording's rate")
        p.add_argument("--input", dest="input_device", metavar="NAME", help="microphone by name")
        p.add_argument("--output", dest="output_device", metavar="NAME", help="speaker by name")

    p = sub("call", "call a contact and stay on the line until the call ends", cmd_call)
    p.add_argument("peer", metavar="NICK_OR_ADDRESS")
    audio_options(p)
    p.add_argument("--seconds", type=float, help="hang up this long after the answer")
    p.add_argument("--stats", dest="verbose_stats", action="store_true", help="print live stats")
    p.add_argument("--json", action="store_true", help="print the final call event as JSON")

    p = sub("answer", "answer the ringing call", cmd_answer)
    p.add_argument("--call-id", help="which call (default: the one ringing)")
    audio_options(p)

    p = sub("hangup", "end a call (or give up calling)", cmd_hangup)
    p.add_argument("--call-id", help="which call (default: the current one)")

    p = sub(
        "transfer-answer",
        "allow (--yes) or refuse (--no) the transfer the peer asked for",
        cmd_transfer_answer,
    )
    p.add_argument("--call-id", help="which call (default: the one asking)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--yes", action="store_true")
    group.add_argument("--no", dest="yes", action="store_false")

    p = sub("calls", "the node's calls with live statistics", cmd_calls)
    p.add_argument("--json", action="store_true")

    sub("devices", "the sound devices calls can use (--input / --output NAME)", cmd_devices)
