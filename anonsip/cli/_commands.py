"""The control-API commands: ``status``, ``contacts``, ``send``, ``history``, requests,
``presence``, ``lookup`` and ``shutdown``.

Each asks the node running in ``--home`` through its socket, reads the
answer as the control schema's view, and prints a short line or table for
a person (``--json``: the node's answer as JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import segno

from anonsip.cli._client import call_node, emit
from anonsip.control import (
    ContactView,
    InviteView,
    LookupView,
    MessageDirection,
    MessageView,
    RequestView,
    SafetyNumberView,
    SeedView,
    StatusView,
)

__all__ = ["add_client_commands", "status_summary"]

_STATE_WORDS = {
    "queued": "queued: not sent yet",
    "request": "waiting for them to accept you",
    "sent": "sent",
    "in_mailbox": "in their mailbox",
    "delivered": "delivered",
    "failed": "not delivered",
}


def status_summary(status: StatusView) -> str:
    """A few lines a person reads at a glance."""
    lines = [f"{status.identity.nick or 'node'}: {status.phase.value}"]
    if status.tor.progress < 100:
        lines.append(f"  tor: {status.tor.progress}% ({status.tor.phase})")
    reg = status.registration
    lines.append(
        f"  reachable: {'yes' if reg.state == 'registered' else reg.state}"
        + (f" (stored on {reg.stored_at} nodes)" if reg.state == "registered" else "")
    )
    lines.append(f"  DHT: {status.dht.routing_table} nodes known")
    if status.dht.alone and status.dht.hint:
        lines.append(f"  {status.dht.hint}")
    lines.append(f"  presence: {status.presence.status.value}")
    if status.outbox:
        lines.append(f"  waiting to be sent: {status.outbox} message(s)")
    if status.mailbox.last_collected:
        when = time.strftime("%H:%M", time.localtime(status.mailbox.last_collected))
        lines.append(f"  mailboxes collected at {when}")
    lines.append(f"  address: {status.identity.address}")
    return "\n".join(lines)


def _contacts_table(rows: tuple[ContactView, ...]) -> str:
    if not rows:
        return "no contacts yet; add one with: anonsip contacts add ADDRESS_OR_INVITE --nick NAME"
    lines = []
    for c in rows:
        mark = "✓" if c.verified else " "
        extra = f" ({c.unread} unread)" if c.unread else ""
        extra += f" ({c.queued} waiting to be sent)" if c.queued else ""
        lines.append(
            f"{mark} {c.nick:<16} {c.state.value:<9} {c.presence.value:<9} {c.address}{extra}"
        )
    return "\n".join(lines)


def _history_text(rows: tuple[MessageView, ...]) -> str:
    lines = []
    for m in rows:
        when = time.strftime("%H:%M:%S", time.localtime(m.time))
        incoming = m.direction is MessageDirection.IN
        arrow = "<-" if incoming else "->"
        state = "" if incoming else f"  [{_STATE_WORDS.get(m.state.value, m.state.value)}]"
        lines.append(f"{when} {arrow} {m.text}{state}")
    return "\n".join(lines) or "no messages"


def _lookup_text(view: LookupView) -> str:
    if not view.found:
        return f"not reachable: {view.reason}"
    places = ", ".join(f"{c.onion}:{c.port}" for c in view.contacts)
    return f"reachable at {places} (period {view.period}, until {time.ctime(view.expires)})"


def cmd_verify(args: argparse.Namespace) -> int:
    number = SafetyNumberView.decode(call_node(args, "safety_number", peer=args.peer))
    print(f"safety number: {number.safety_number}")
    if args.yes:
        call_node(args, "contacts.verify", peer=args.peer, verified=True)
        print("marked verified")
    else:
        print("compare it with your contact in person, then run again with --yes")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    contacts = ContactView.decode_list(call_node(args, "contacts.list"))
    wanted = args.peer.casefold()
    match = [c for c in contacts if wanted in (c.nick.casefold(), c.address.casefold())]
    call_node(args, "contacts.remove", peer=args.peer)
    queued = match[0].queued if match else 0
    note = f"; {queued} message(s) still waiting for them were cancelled" if queued else ""
    print(f"removed{note}")
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    view = InviteView.decode(call_node(args, "invite", days=args.days))
    if args.json:
        print(json.dumps(view.encode()))
        return 0
    when = time.strftime("%Y-%m-%d", time.localtime(view.expires))
    print(
        f"Give this invite to someone you trust, by a channel you trust (valid until {when}; "
        f"it carries your address and {view.contacts} DHT contact(s) of your node):"
    )
    if args.qr:
        segno.make(view.invite, error="l", micro=False).terminal(out=sys.stdout, compact=True)
    print(view.invite)
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    if args.bootstrap_command == "list":
        seeds = SeedView.decode_list(call_node(args, "bootstrap.list"))
        if args.json:
            print(json.dumps([s.encode() for s in seeds]))
        else:
            print("\n".join(f"{s.source:<10} {s.contact}" for s in seeds) or "none yet")
        return 0
    op = "bootstrap.add" if args.bootstrap_command == "add" else "bootstrap.remove"
    call_node(args, op, contact=args.contact)
    print("added" if op == "bootstrap.add" else "removed")
    return 0


def cmd_presence(args: argparse.Namespace) -> int:
    call_node(args, "presence.set", status=args.status, note=args.note)
    print(f"you are {args.status}" + (f": {args.note}" if args.note else ""))
    return 0


def cmd_shutdown(args: argparse.Namespace) -> int:
    call_node(args, "shutdown")
    print("stopping")
    return 0


def _decision(op: str, done: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        call_node(args, op, address=args.address, nick=getattr(args, "nick", None))
        print(done)
        return 0

    return run


def add_client_commands(commands: Any) -> None:
    def sub(name: str, help_text: str, run: Callable[[argparse.Namespace], int]) -> Any:
        parser = commands.add_parser(name, help=help_text, description=help_text)
        parser.set_defaults(run=run)
        return parser

    p = sub(
        "status",
        "the running node's state (--json for everything)",
        lambda a: emit(a, StatusView.decode(call_node(a, "status")), status_summary),
    )
    p.add_argument("--json", action="store_true")

    contacts = commands.add_parser("contacts", help="your contacts")
    csub = contacts.add_subparsers(dest="contacts_command", metavar="ACTION", required=True)
    p = csub.add_parser("add", help="add a contact (or rename one) by address or invite")
    p.add_argument("address", metavar="ADDRESS_OR_INVITE")
    p.add_argument("--nick", required=True)
    p.set_defaults(
        run=lambda a: emit(
            a,
            ContactView.decode(call_node(a, "contacts.add", address=a.address, nick=a.nick)),
            lambda c: f"added {c.nick}",
        )
    )
    p = csub.add_parser("list", help="list contacts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(
        run=lambda a: emit(
            a, ContactView.decode_list(call_node(a, "contacts.list")), _contacts_table
        )
    )
    p = csub.add_parser("remove", help="forget a contact and cancel what waits for it")
    p.add_argument("peer")
    p.set_defaults(run=cmd_remove)
    p = csub.add_parser("verify", help="compare safety numbers and mark a contact verified")
    p.add_argument("peer")
    p.add_argument("--yes", action="store_true", help="mark verified (else just show the number)")
    p.set_defaults(run=cmd_verify)

    p = sub(
        "send",
        "send a message",
        lambda a: emit(
            a,
            MessageView.decode(call_node(a, "send", peer=a.peer, text=a.text)),
            lambda m: f"queued {m.message_id}",
        ),
    )
    p.add_argument("peer", metavar="NICK_OR_ADDRESS")
    p.add_argument("text")

    p = sub(
        "history",
        "a conversation",
        lambda a: emit(
            a,
            MessageView.decode_list(call_node(a, "history", peer=a.peer, limit=a.limit)),
            _history_text,
        ),
    )
    p.add_argument("peer", metavar="NICK_OR_ADDRESS")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")

    p = sub(
        "requests",
        "contact requests waiting for you",
        lambda a: emit(
            a,
            RequestView.decode_list(call_node(a, "requests")),
            lambda rows: "\n".join(f"{r.address}  {r.text!r}" for r in rows) or "no requests",
        ),
    )
    p.add_argument("--json", action="store_true")

    p = sub("accept", "accept a contact request", _decision("accept", "accepted"))
    p.add_argument("address")
    p.add_argument("--nick", help="the name to give the new contact")
    for op, done in (("decline", "declined"), ("block", "blocked"), ("unblock", "unblocked")):
        p = sub(op, f"{op} a contact request or address", _decision(op, done))
        p.add_argument("address")

    p = sub("presence", "set your presence: available, away or busy, with a note", cmd_presence)
    p.add_argument("status", choices=("available", "away", "busy"))
    p.add_argument("note", nargs="?", default=None)

    p = sub(
        "lookup",
        "find a pseudonym's registration in the DHT",
        lambda a: emit(
            a, LookupView.decode(call_node(a, "lookup", address=a.address)), _lookup_text
        ),
    )
    p.add_argument("address", metavar="NICK_OR_ADDRESS")
    p.add_argument("--json", action="store_true")

    p = sub("invite", "print an invite to share (your address and a way into the DHT)", cmd_invite)
    p.add_argument("--days", type=int, default=7, help="how long it stays valid (default 7)")
    p.add_argument("--qr", action="store_true", help="also draw it as a QR code")
    p.add_argument("--json", action="store_true")

    boot = commands.add_parser("bootstrap", help="where this node joins the DHT when it starts")
    bsub = boot.add_subparsers(dest="bootstrap_command", metavar="ACTION", required=True)
    for action, text in (
        ("add", "join the DHT through this contact too (ONION[:PORT] or an invite)"),
        ("remove", "forget a contact given to join through"),
    ):
        p = bsub.add_parser(action, help=text, description=text)
        p.add_argument("contact", metavar="CONTACT")
        p.set_defaults(run=cmd_bootstrap)
    p = bsub.add_parser("list", help="the contacts this node joins through, by source")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_bootstrap)

    sub("shutdown", "stop the running node cleanly (it unregisters first)", cmd_shutdown)
