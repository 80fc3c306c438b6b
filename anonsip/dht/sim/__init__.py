"""A simulator that runs the real DHT cores over an event-driven in-memory network: lookups
(``Simulation``) and mailboxes over hours of churn (``MailboxSimulation``)."""

from anonsip.dht.sim._mailbox import Checkpoint, MailboxConfig, MailboxReport, MailboxSimulation
from anonsip.dht.sim._simulation import LookupStats, SimConfig, Simulation, summarize

__all__ = [
    "Checkpoint",
    "LookupStats",
    "MailboxConfig",
    "MailboxReport",
    "MailboxSimulation",
    "SimConfig",
    "Simulation",
    "summarize",
]
