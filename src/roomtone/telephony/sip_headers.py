"""SIP headers <-> participant attributes, as LiveKit maps them; pure functions.

The facts (livekit/protocol ``protobufs/livekit_sip.proto``, ``livekit/sip_validation.go``,
``rpc/sip.go``; livekit/sip ``pkg/sip/types.go`` ``HeadersToAttrs``/``AttrsToHeaders``,
``pkg/sip/participant.go``, ``inbound.go``, ``outbound.go``):

* ``include_headers`` (``SIPHeaderOptions``): ``SIP_NO_HEADERS`` maps nothing automatically,
  ``SIP_X_HEADERS`` every header whose name starts with ``X-``, ``SIP_ALL_HEADERS`` every header.
  The attribute is ``sip.h.`` + the header name in lowercase (``X-Customer-Id`` ->
  ``sip.h.x-customer-id``). Inbound it reads the INVITE, outbound the callee's 200 OK.
* ``headers_to_attributes`` maps named headers (any case) to attribute names; it is applied after
  ``include_headers``, so an explicit mapping wins. A few well-known provider headers are always
  mapped (``X-Twilio-CallSid`` -> ``sip.twilio.callSid`` ...: :data:`KNOWN_HEADER_ATTRIBUTES`).
* ``headers``: an inbound trunk's go on our 200 OK; an outbound trunk's, then the
  CreateSIPParticipant request's (the request wins on the same name), on the INVITE.
* ``attributes_to_headers`` maps attribute names to header names; LiveKit puts them on the BYE,
  CANCEL and REFER it sends (current attribute values), and inbound also on the 200 OK.
* Header names must be RFC 3261 tokens; those the UA itself writes (From, Contact, Call-ID ...)
  cannot be set. Values are at most 1024 characters of printable text (UTF-8 allowed), no control
  characters: a CR or LF would let a caller inject headers or a body.

Different on purpose: a header that appears several times becomes one attribute with the values
joined by ``", "`` (RFC 3261 §7.3.1; LiveKit keeps the last one); ``SIP_ALL_HEADERS`` leaves out
``Authorization`` and ``Proxy-Authorization`` (a digest response is no business of the room);
To, Via and Route are refused in ``headers`` (LiveKit only warns, and a second To breaks the
INVITE); ``User-Agent`` (INVITE) and ``Server`` (200 OK) given as headers replace roomtone's own
rather than adding a second line; a participant attribute whose value is not a valid header value is left off the SIP
request with a log line rather than sent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from roomtone.sip.message import SipMessage

log = logging.getLogger(__name__)

ATTR_HEADER_PREFIX = "sip.h."

#: livekit.SIPHeaderOptions
SIP_NO_HEADERS, SIP_X_HEADERS, SIP_ALL_HEADERS = 0, 1, 2

MAX_NAME = 255
MAX_VALUE = 1024

_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")

#: headers our UA writes itself (and their compact forms): setting them would duplicate or break them
RESERVED_HEADERS = frozenset({
    "accept", "accept-encoding", "accept-language", "allow", "allow-events", "authorization", "call-id",
    "contact", "content-encoding", "content-length", "content-type", "cseq", "event", "expires", "from",
    "max-forwards", "proxy-authorization", "record-route", "refer-to", "reply-to", "route", "to", "via",
    "www-authenticate", "proxy-authenticate",
    "i", "e", "k", "l", "m", "o", "r", "t", "u", "v", "f", "c",
})

#: never copied into attributes by SIP_ALL_HEADERS
_PRIVATE_HEADERS = frozenset({"authorization", "proxy-authorization"})

#: livekit/sip ``headerToAttr``: always mapped when present
KNOWN_HEADER_ATTRIBUTES = {
    "X-Twilio-AccountSid": "sip.twilio.accountSid",
    "X-Twilio-CallSid": "sip.twilio.callSid",
    "X-call_leg_id": "sip.telnyx.callLegID",
    "X-call_session_id": "sip.telnyx.callSessionID",
    "X-Amzn-ConnectContactId": "sip.amazon.contactId",
    "X-Amzn-ConnectInitialContactId": "sip.amazon.initialContactId",
    "X-Amzn-SourceAccount": "sip.amazon.sourceAccount",
    "X-Amzn-SourceArn": "sip.amazon.sourceArn",
    "X-Amzn-TargetArn": "sip.amazon.targetArn",
}


class HeaderError(ValueError):
    """A header name or value that must not go on the wire; the message names it and says why."""


def check_name(name: str, *, settable: bool = True) -> None:
    """Raise HeaderError unless ``name`` is a header name we may send (``settable``) or read."""
    if not name:
        raise HeaderError("header name cannot be empty")
    if len(name) > MAX_NAME:
        raise HeaderError(f"header name {name[:40]!r}... is too long (max {MAX_NAME} characters)")
    bad = next((c for c in name if c not in _TOKEN), None)
    if bad is not None:
        raise HeaderError(f"header name {name!r} contains {bad!r}: only RFC 3261 token characters are allowed")
    if settable and name.lower() in RESERVED_HEADERS:
        raise HeaderError(f"header {name!r} is set by roomtone itself and cannot be given")


def check_value(name: str, value: str) -> None:
    """Raise HeaderError unless ``value`` is safe as the value of header ``name`` (no CR/LF)."""
    if len(value) > MAX_VALUE:
        raise HeaderError(f"header {name}: value too long (max {MAX_VALUE} characters)")
    for c in value:
        o = ord(c)
        if (o < 0x20 and c != "\t") or o == 0x7F:
            what = {"\r": "CR", "\n": "LF", "\0": "NUL"}.get(c, f"control character 0x{o:02x}")
            raise HeaderError(f"header {name}: value contains {what}, which is not allowed in a SIP header")


def check_headers(headers: Mapping[str, str], field: str = "headers") -> None:
    """Validate a name -> value map the user wants sent; HeaderError names ``field`` and the header."""
    for name, value in headers.items():
        try:
            check_name(name)
            check_value(name, value)
        except HeaderError as exc:
            raise HeaderError(f"{field}: {exc}") from None


def check_header_names(names: Iterable[str], field: str, *, settable: bool) -> None:
    for name in names:
        try:
            check_name(name, settable=settable)
        except HeaderError as exc:
            raise HeaderError(f"{field}: {exc}") from None


def check_include(value: int, field: str = "include_headers") -> None:
    if value not in (SIP_NO_HEADERS, SIP_X_HEADERS, SIP_ALL_HEADERS):
        raise HeaderError(f"{field}: {value} is not a SIPHeaderOptions value (0, 1 or 2)")


def headers_to_attributes(message: SipMessage, mapping: Mapping[str, str], include: int) -> dict[str, str]:
    """The attributes ``message`` (an INVITE or a 200 OK) gives a participant (module docstring)."""
    attrs: dict[str, str] = {}
    if include in (SIP_X_HEADERS, SIP_ALL_HEADERS):
        seen: dict[str, list[str]] = {}
        for name, value in message.items():
            low = name.lower()
            if include == SIP_X_HEADERS and not low.startswith("x-"):
                continue
            if low in _PRIVATE_HEADERS:
                continue
            seen.setdefault(low, []).append(value)
        for low, values in seen.items():
            attrs[ATTR_HEADER_PREFIX + low] = ", ".join(values)
    for table in (KNOWN_HEADER_ATTRIBUTES, mapping):
        for header, attribute in table.items():
            values = message.raw(header) if header else []
            if values and attribute:
                attrs[attribute] = ", ".join(values)
    return attrs


def attributes_to_headers(attributes: Mapping[str, str], mapping: Mapping[str, str], *,
                          call: str = "") -> list[tuple[str, str]]:
    """Headers for a SIP request from participant attributes (``attribute -> header`` mapping).

    Attributes may be set by room participants, so a value that is not a safe header value is
    skipped with a log line (never sent).
    """
    out: list[tuple[str, str]] = []
    for attribute, header in mapping.items():
        value = attributes.get(attribute)
        if value is None or not header:
            continue
        try:
            check_name(header)
            check_value(header, value)
        except HeaderError as exc:
            log.warning("call %s: attribute %s not sent as a SIP header: %s", call, attribute, exc)
            continue
        out.append((header, value))
    return out


def merge(*header_lists: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Later lists override earlier ones on the same (case-insensitive) name; first spelling kept."""
    names: dict[str, str] = {}
    merged: dict[str, str] = {}
    for headers in header_lists:
        for name, value in headers:
            key = names.setdefault(name.lower(), name)
            merged[key] = value
    return merged
