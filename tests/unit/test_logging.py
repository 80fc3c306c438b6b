"""The log filter names nobody: addresses, invites and onions are redacted, the rest kept."""

import logging
import random

from anonsip._logging import RedactingFilter, redact
from anonsip.identity import Identity
from anonsip.invite import Invite

ONION = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"
ME = Identity.generate("me", rng=random.Random(1).randbytes)


def test_addresses_onions_and_invites_are_redacted() -> None:
    invite = Invite(address=ME.address, seeds=(), expires=0).text
    text = f"dial {ONION}.onion for {ME.address.text} ({ME.address.sip_uri}) via {invite}"
    cleaned = redact(text)
    assert ONION not in cleaned
    assert ME.address.text not in cleaned
    assert invite not in cleaned
    assert cleaned.startswith("dial [onion] for [address]")


def test_the_filter_rewrites_messages_and_tracebacks() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to %s: %s", (ONION, "ok"), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "to [onion]: ok"
    try:
        raise ValueError(f"cannot reach {ONION}.onion")
    except ValueError:
        import sys

        info = sys.exc_info()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), info)
    RedactingFilter().filter(record)
    assert record.exc_text is not None
    assert ONION not in record.exc_text
    assert "[onion]" in record.exc_text
