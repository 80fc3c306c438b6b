"""Logs that name nobody: addresses and onions are redacted before anything is written.

The node's log (and its stderr) must not say who its user is or whom it
talks to, whatever an exception message happens to contain: a pseudonym's
address (``asip1…``, an invite), a v3 onion address (56 base32 letters,
with or without ``.onion``) and a ``sip:`` URI built from one become
``[address]`` / ``[onion]``. A filter on the handler, so every record is
covered, including those from libraries.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "redact"]

_ADDRESS = re.compile(r"\basip(?:inv)?1[02-9ac-hj-np-z]{20,}\b", re.IGNORECASE)
_ONION = re.compile(r"\b[a-z2-7]{56}(?:\.onion)?\b", re.IGNORECASE)


def redact(text: str) -> str:
    return _ONION.sub("[onion]", _ADDRESS.sub("[address]", text))


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with addresses and onions redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_text is None and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
