"""A minimal, strict PIDF presence document (RFC 3863) with one anonsip extension.

What travels in a NOTIFY (RFC 3856) body is::

    <?xml version="1.0" encoding="UTF-8"?>
    <presence xmlns="urn:ietf:params:xml:ns:pidf"
              xmlns:as="urn:anonsip:params:xml:ns:status" entity="sip:...">
      <tuple id="t1">
        <status><basic>open</basic><as:availability>away</as:availability></status>
      </tuple>
      <note>back at five</note>
    </presence>

Parsing choice: ``xml.etree`` from the standard library, but only after the
raw bytes are bounded (``MAX_PIDF_SIZE``) and every ``<!`` construct is
refused, so no DOCTYPE, no ENTITY (no "billion laughs", no external
entities), no comments, no CDATA; the only processing instruction allowed is
the XML declaration. The tree is then read strictly: unknown children of
our elements are ignored as RFC 3863 4.1.7 asks of extensions, but required
ones missing or holding junk are a ``SipParseError``.
"""

from __future__ import annotations

import enum
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from anonsip.sip._errors import SipParseError, SipUsageError
from anonsip.sip._headers import Uri

PIDF_NS = "urn:ietf:params:xml:ns:pidf"
ANONSIP_NS = "urn:anonsip:params:xml:ns:status"
PIDF_CONTENT_TYPE = "application/pidf+xml"
MAX_PIDF_SIZE = 8192
MAX_NOTE_LENGTH = 256
_XML_DECL = re.compile(
    r"""\A<\?xml\s+version\s*=\s*["']1\.[0-9]["']"""
    r"""(\s+encoding\s*=\s*["'](?i:utf-8)["'])?"""
    r"""(\s+standalone\s*=\s*["'](yes|no)["'])?\s*\?>"""
)


class Availability(enum.Enum):
    """anonsip's presence states; ``basic`` is open for all but OFFLINE."""

    AVAILABLE = "available"
    AWAY = "away"
    BUSY = "busy"
    OFFLINE = "offline"


@dataclass(frozen=True, kw_only=True)
class Presence:
    entity: Uri
    availability: Availability
    note: str | None = None

    @property
    def basic(self) -> str:
        return "closed" if self.availability is Availability.OFFLINE else "open"


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _clean_note(note: str) -> None:
    if len(note) > MAX_NOTE_LENGTH:
        raise SipUsageError(f"a presence note is at most {MAX_NOTE_LENGTH} characters")
    if any(ord(c) < 0x20 and c not in "\t\n" for c in note):
        raise SipUsageError("a presence note cannot hold control characters")


def encode_pidf(presence: Presence) -> bytes:
    """The PIDF document for ``presence`` (RFC 3863 section 4)."""
    note = presence.note
    note_xml = ""
    if note is not None:
        _clean_note(note)
        note_xml = f"<note>{_escape(note)}</note>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<presence xmlns="{PIDF_NS}" xmlns:as="{ANONSIP_NS}"'
        f' entity="{_escape(str(presence.entity))}">'
        f'<tuple id="t1"><status><basic>{presence.basic}</basic>'
        f"<as:availability>{presence.availability.value}</as:availability>"
        f"</status></tuple>{note_xml}</presence>"
    ).encode()


def parse_pidf(data: bytes) -> Presence:
    """Read a PIDF body from a peer; ``SipParseError`` for anything else."""
    if len(data) > MAX_PIDF_SIZE:
        raise SipParseError("presence document too large", status_code=413)
    try:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("presence document is not UTF-8") from exc
    # The declaration, if any, must say UTF-8: it is checked and dropped so
    # the XML parser never picks an encoding of its own.
    decl = _XML_DECL.match(text)
    rest = text[decl.end() :] if decl else text
    if "<!" in rest or "<?" in rest:
        raise SipParseError("presence document with DTD, entity, comment or PI refused")
    try:
        root = ET.fromstring(rest)  # noqa: S314 - no DTD can reach here (checked above)
    except ET.ParseError as exc:
        raise SipParseError(f"presence document is not XML: {exc}") from exc
    p = f"{{{PIDF_NS}}}"
    if root.tag != p + "presence":
        raise SipParseError("not a PIDF presence document")
    try:
        entity = Uri.parse(root.get("entity", ""))
    except SipUsageError as exc:  # pragma: no cover - parse validates first
        raise SipParseError(str(exc)) from exc
    basic: str | None = None
    availability: Availability | None = None
    for tup in root.findall(p + "tuple"):
        status = tup.find(p + "status")
        if status is None:
            raise SipParseError("PIDF tuple without status")
        basic_el = status.find(p + "basic")
        if basic_el is not None:
            basic = (basic_el.text or "").strip()
        avail_el = status.find(f"{{{ANONSIP_NS}}}availability")
        if avail_el is not None:
            try:
                availability = Availability((avail_el.text or "").strip())
            except ValueError as exc:
                raise SipParseError("unknown anonsip availability") from exc
        break  # one tuple is all anonsip publishes; others are ignored
    if basic not in ("open", "closed"):
        raise SipParseError("PIDF basic status must be open or closed")
    if availability is None:
        availability = Availability.AVAILABLE if basic == "open" else Availability.OFFLINE
    elif (availability is Availability.OFFLINE) != (basic == "closed"):
        raise SipParseError("PIDF basic status contradicts the anonsip availability")
    note_el = root.find(p + "note")
    note = None if note_el is None else (note_el.text or "")
    if note is not None and (
        len(note) > MAX_NOTE_LENGTH or any(ord(c) < 0x20 and c not in "\t\n" for c in note)
    ):
        raise SipParseError("presence note too long or holding control characters")
    return Presence(entity=entity, availability=availability, note=note)
