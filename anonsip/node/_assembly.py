"""Where a node is built: every service made in one place and wired to the others.

As magic-wormhole's ``_boss`` builds its machines, ``build_node`` makes the
node's context and each service, hands each the interfaces of the others
it needs (contacts read presence; messaging tells presence and the echo
bot who wrote; the registration advertises messaging's effort), and
gives the list to the ``Node``. Adding a service is one class and one
line here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from anonsip.node._calls import CallService, CallSettings
from anonsip.node._contacts import ContactsService
from anonsip.node._context import NodeContext
from anonsip.node._echo import EchoBot
from anonsip.node._home import Home, Unlocked
from anonsip.node._mailbox import MailboxService
from anonsip.node._messaging import MessagingService
from anonsip.node._node import Node, NodeConfig
from anonsip.node._presence import PresenceService
from anonsip.node._service import NodeService
from anonsip.store import MessageStore

__all__ = ["build_node"]


def build_node(
    home: Home,
    keys: Unlocked,
    config: NodeConfig,
    *,
    clock: Callable[[], float] = time.time,
) -> Node:
    store = MessageStore.open(home.store_path, keys.store_key)
    context = NodeContext(identity=keys.identity, store=store, clock=clock)
    presence = PresenceService(context)
    contacts = ContactsService(context, presence=presence)
    messaging: MessagingService  # the mailbox's direct receipts go through it
    mailbox = MailboxService(
        context,
        direct_receipts=lambda peer, ids: messaging.send_receipts(peer, ids),
        periods=config.periods,  # the registrations' periods: one clock for both
    )
    messaging = MessagingService(
        context,
        pow_difficulty=config.pow_difficulty,
        on_received=[presence.heard_from],
        on_queue_change=contacts.publish,
        mailbox=mailbox,
    )
    calls = CallService(
        context,
        settings=CallSettings(
            auto_answer=config.auto_answer, play=config.play, record=config.record
        ),
    )
    services: list[NodeService] = [contacts, messaging, presence, calls, mailbox]
    if config.echo_bot:
        services.append(EchoBot(messaging))
    return Node(
        home,
        keys,
        config,
        context=context,
        services=services,
        presence=presence,
        mailbox=mailbox,
        effort=messaging.effort,
        clock=clock,
    )
