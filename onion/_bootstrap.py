"""Bootstrap progress as tor reports it (control-spec 4.1.10, "BOOTSTRAP" status).

``GETINFO status/bootstrap-phase`` and ``STATUS_CLIENT ... BOOTSTRAP`` events
both carry ``SEVERITY BOOTSTRAP PROGRESS=n TAG=t SUMMARY="..."`` and, when
something goes wrong, ``WARNING=... REASON=...``. Pure parsing, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from onion._control_proto import parse_args
from onion._errors import ControlProtocolError

__all__ = ["CONNECTED_PROGRESS", "BootstrapStatus", "parse_bootstrap", "through"]

# tor's phases up to "handshake_done" (15 %) are reaching a first relay or bridge at all;
# from "onehop_create" (20 %) on it talks to one. Stuck below: the network is not reached.
CONNECTED_PROGRESS = 20


@dataclass(frozen=True, kw_only=True)
class BootstrapStatus:
    """One step of tor's bootstrap: percent done, phase tag and its summary."""

    progress: int
    tag: str
    summary: str
    warning: str | None = None

    @property
    def done(self) -> bool:
        return self.progress >= 100

    def __str__(self) -> str:
        text = f"{self.progress}% ({self.tag}): {self.summary}"
        return f"{text} [warning: {self.warning}]" if self.warning else text


def parse_bootstrap(text: str) -> BootstrapStatus | None:
    """Parse ``NOTICE BOOTSTRAP PROGRESS=...``; None if it is another status kind."""
    words, keywords = parse_args(text)
    if len(words) < 2 or words[1] != "BOOTSTRAP":
        return None
    try:
        progress = int(keywords["PROGRESS"])
    except (KeyError, ValueError) as exc:
        raise ControlProtocolError(f"bootstrap status without PROGRESS: {text[:120]!r}") from exc
    if not 0 <= progress <= 100:
        raise ControlProtocolError(f"bootstrap progress {progress} is not a percentage")
    return BootstrapStatus(
        progress=progress,
        tag=keywords.get("TAG", ""),
        summary=keywords.get("SUMMARY", ""),
        warning=keywords.get("WARNING") if words[0] == "WARN" else None,
    )


def through(status: BootstrapStatus, entry: str) -> BootstrapStatus:
    """``status`` with where tor enters the network said in its summary (until done).

    tor's own words name the phase ("Connecting to pluggable transport");
    ``entry`` ("an obfs4 bridge") says through what, so a person watching
    progress sees the bridge phase as such.
    """
    if status.done or not entry:
        return status
    return replace(status, summary=f"{status.summary} (via {entry})")
