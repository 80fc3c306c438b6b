"""Delivery notifications (RFC 5438, IMDN): "I have your message", as a MESSAGE body.

A node that received a message by another way than a MESSAGE answered
200 (from its mailbox) tells the sender with a MESSAGE whose body is an
IMDN delivery notification, ``Content-Type: message/imdn+xml``::

    <?xml version="1.0" encoding="UTF-8"?>
    <imdn xmlns="urn:ietf:params:xml:ns:imdn">
    <message-id>ID</message-id>
    <datetime>2026-11-25T18:00:00Z</datetime>
    <delivery-notification><status><delivered/></status></delivery-notification>
    </imdn>

We write exactly this and read it strictly, without an XML parser (no
entities, no DTDs, nothing to expand): the message id is 1 to 64 of
``[A-Za-z0-9._-]``, the status must be ``delivered``, the body at most
1 KiB. Anything else is a ``SipParseError`` (400).
"""

from __future__ import annotations

import re
import time

from anonsip.sip._errors import SipParseError

__all__ = ["IMDN_CONTENT_TYPE", "imdn_body", "parse_imdn"]

IMDN_CONTENT_TYPE = "message/imdn+xml"
MAX_IMDN = 1024
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SHAPE = re.compile(
    r'<\?xml version="1\.0" encoding="UTF-8"\?>\s*'
    r'<imdn xmlns="urn:ietf:params:xml:ns:imdn">\s*'
    r"<message-id>([A-Za-z0-9._-]{1,64})</message-id>\s*"
    r"<datetime>[0-9T:Z-]{1,32}</datetime>\s*"
    r"<delivery-notification>\s*<status>\s*<delivered/>\s*</status>\s*</delivery-notification>\s*"
    r"</imdn>\s*"
)


def imdn_body(message_id: str, when: float) -> bytes:
    if not _ID.fullmatch(message_id):
        raise ValueError("a message id for a notification is 1-64 of [A-Za-z0-9._-]")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<imdn xmlns="urn:ietf:params:xml:ns:imdn">\n'
        f"<message-id>{message_id}</message-id>\n"
        f"<datetime>{stamp}</datetime>\n"
        "<delivery-notification><status><delivered/></status></delivery-notification>\n"
        "</imdn>\n"
    ).encode()


def parse_imdn(body: bytes) -> str:
    """The id of the message a delivery notification is about."""
    if len(body) > MAX_IMDN:
        raise SipParseError("a delivery notification too long", status_code=413)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("a delivery notification that is not UTF-8", status_code=400) from None
    match = _SHAPE.fullmatch(text)
    if match is None:
        raise SipParseError("not a delivery notification we understand", status_code=400)
    return match.group(1)
