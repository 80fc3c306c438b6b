"""SIP for anonsip: messages, parser, transactions, dialogs and an endpoint (RFC 3261).

Pure sans-IO code (no trio, no clock or RNG it was not handed). A thin
trio adapter elsewhere owns the secure channel, feeds
``SipEndpoint.receive_data`` with each received frame and sends every
``frames_to_send()`` entry as one frame.
"""

from anonsip.sip._dialog import Dialog, DialogId, DialogState
from anonsip.sip._endpoint import DEFAULT_METHODS, SipEndpoint
from anonsip.sip._errors import SipParseError, SipUsageError
from anonsip.sip._events import (
    AckReceived,
    InviteCancelled,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    TransactionTimedOut,
    TransportFailed,
)
from anonsip.sip._headers import (
    BRANCH_COOKIE,
    CSeq,
    MediaType,
    NameAddr,
    TokenWithParams,
    Uri,
    Via,
)
from anonsip.sip._imdn import IMDN_CONTENT_TYPE, imdn_body, parse_imdn
from anonsip.sip._message import (
    COMPACT_FORMS,
    REASON_PHRASES,
    Message,
    PartialRequest,
    Request,
    Response,
    canonical_name,
    make_error_response,
    make_response,
)
from anonsip.sip._methods import (
    MAX_MESSAGE_TEXT,
    bye_request,
    invite_request,
    message_request,
    message_text,
    notify_request,
    options_request,
    refer_request,
    reinvite_request,
    subscribe_request,
)
from anonsip.sip._parser import MessageParser, ParserLimits
from anonsip.sip._pidf import (
    ANONSIP_NS,
    MAX_PIDF_SIZE,
    PIDF_CONTENT_TYPE,
    PIDF_NS,
    Availability,
    Presence,
    encode_pidf,
    parse_pidf,
)
from anonsip.sip._transaction import Kind as TransactionKind
from anonsip.sip._transaction import State as TransactionState
from anonsip.sip._transaction import Transaction

__all__ = [
    "ANONSIP_NS",
    "BRANCH_COOKIE",
    "COMPACT_FORMS",
    "DEFAULT_METHODS",
    "IMDN_CONTENT_TYPE",
    "MAX_MESSAGE_TEXT",
    "MAX_PIDF_SIZE",
    "PIDF_CONTENT_TYPE",
    "PIDF_NS",
    "REASON_PHRASES",
    "AckReceived",
    "Availability",
    "CSeq",
    "Dialog",
    "DialogId",
    "DialogState",
    "InviteCancelled",
    "MediaType",
    "Message",
    "MessageParser",
    "MessageRejected",
    "NameAddr",
    "ParserLimits",
    "PartialRequest",
    "Presence",
    "Request",
    "RequestReceived",
    "Response",
    "ResponseReceived",
    "SipEndpoint",
    "SipEvent",
    "SipParseError",
    "SipUsageError",
    "TokenWithParams",
    "Transaction",
    "TransactionKind",
    "TransactionState",
    "TransactionTimedOut",
    "TransportFailed",
    "Uri",
    "Via",
    "bye_request",
    "canonical_name",
    "encode_pidf",
    "imdn_body",
    "invite_request",
    "make_error_response",
    "make_response",
    "message_request",
    "message_text",
    "notify_request",
    "options_request",
    "parse_imdn",
    "parse_pidf",
    "refer_request",
    "reinvite_request",
    "subscribe_request",
]
