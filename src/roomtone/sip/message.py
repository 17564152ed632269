"""SIP messages (RFC 3261 §7, §20, §25): a sans-IO parser and serializer.

Why our own: the pure-Python SIP libraries we tried either accept malformed messages silently or
raise arbitrary exceptions on hostile input. This parser is strict where RFC 3261 says MUST (a
request line, the five mandatory headers, a well-formed top Via, From/To/CSeq/Call-ID that parse,
a Content-Length that frames the body) and liberal where it allows (folding, compact names, any
header-name case, extra whitespace, unknown headers kept verbatim).

Entry points:

- :func:`parse` takes one datagram (or one framed message) and returns a :class:`Request`,
  a :class:`Response` or a :class:`ParseError`. It never raises.
- :class:`StreamParser` is fed TCP/TLS chunks and returns complete messages as they frame.
- :meth:`ParseError.response` builds the 400 (or 505/413) to send back for a bad request; its
  reason phrase says what was wrong. A bad *response* is only logged by the caller and dropped.
- :meth:`Request.to_bytes` / :meth:`Response.to_bytes` serialize, always with a correct
  Content-Length.

Headers are stored as their raw text (folded lines joined) under a case-insensitive canonical
name, compact forms expanded. Structured views (:class:`Via`, :class:`NameAddr`, :class:`SipURI`)
are parsed on demand and cached, so the hot path only parses what is used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from roomtone.numeric import is_ascii_decimal

log = logging.getLogger(__name__)

SIP_VERSION = "SIP/2.0"
MAX_MESSAGE_BYTES = 65535
"""Default size limit for one message (headers + body); UDP cannot carry more anyway."""
MAX_HEADER_LINES = 256

COMPACT_FORMS = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "u": "allow-events",
    "x": "session-expires",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "y": "identity",
    "n": "identity-info",
}

_CANONICAL_NAMES = {
    n.lower(): n
    for n in (
        "Via Max-Forwards Route Record-Route From To Call-ID CSeq Contact Expires Allow Supported "
        "Require Proxy-Require Unsupported Content-Type Content-Length Content-Encoding "
        "Content-Language Content-Disposition User-Agent Server Accept Accept-Encoding "
        "Accept-Language Allow-Events Event Subject Date Timestamp Warning Retry-After "
        "WWW-Authenticate Authorization Proxy-Authenticate Proxy-Authorization "
        "Authentication-Info Organization Priority Reason Refer-To Referred-By Session-Expires "
        "Min-Expires Min-SE Path Service-Route P-Asserted-Identity P-Preferred-Identity "
        "Privacy Alert-Info Call-Info Error-Info In-Reply-To Reply-To MIME-Version RSeq RAck "
        "Subscription-State Identity Identity-Info Accept-Contact Reject-Contact "
        "Request-Disposition Diversion Remote-Party-ID"
    ).split()
}

# Headers whose values are comma-separated lists (RFC 3261 §7.3.1). Auth headers are NOT: their
# parameters are comma-separated within one value.
LIST_HEADERS = frozenset(
    (
        "via route record-route contact allow supported require proxy-require unsupported accept "
        "accept-encoding accept-language allow-events content-encoding content-language "
        "in-reply-to alert-info call-info error-info warning path service-route "
        "p-asserted-identity p-preferred-identity reason"
    ).split()
)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_.]*\Z")
_IPV6_REF_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")


def _valid_host(host: str) -> bool:
    """hostname (labels of alnum/-/_, starting and ending alnum, optional final dot) or [IPv6].

    Written without nested regex quantifiers: the obvious one-regex form backtracks
    exponentially on long invalid input (found by the fast-path property test).
    """
    if host.startswith("["):
        return _IPV6_REF_RE.match(host) is not None
    if _HOSTNAME_RE.match(host) is None or ".." in host:
        return False
    labels = (host[:-1] if host.endswith(".") else host).split(".")
    return all(label[0].isalnum() and label[-1].isalnum() for label in labels)
_DIGITS_RE = re.compile(r"[0-9]{1,10}\Z")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_BAD_URI_CHARS = re.compile(r'[ \t\r\n<>"]')

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


class SipSyntaxError(ValueError):
    """Raised by the structured-header parsers (:func:`parse_uri`, :func:`parse_via`, ...).

    :func:`parse` catches it and turns it into a :class:`ParseError` value; only code that parses
    a header string directly sees it.
    """


def canonical_name(name: str) -> str:
    """The display form of a header name: compact forms expanded, well-known names canonical."""
    low = name.lower()
    low = COMPACT_FORMS.get(low, low)
    return _CANONICAL_NAMES.get(low, name)


_KEY_CACHE: dict[str, str] = {}


def _key(name: str) -> str:
    key = _KEY_CACHE.get(name)
    if key is None:
        low = name.lower()
        key = COMPACT_FORMS.get(low, low)
        if len(_KEY_CACHE) < 4096:
            _KEY_CACHE[name] = key
    return key


# ---------------------------------------------------------------------------------------------
# Low-level tokenizing helpers


def split_top(value: str, sep: str) -> list[str]:
    """Split ``value`` on ``sep`` outside quoted strings and ``<...>``; items are stripped.

    Used for comma lists (multi-value headers) and ``;`` parameter lists. A backslash escapes the
    next character inside a quoted string (RFC 3261 quoted-pair).
    """
    if sep not in value:
        return [value.strip()]
    if '"' not in value and "<" not in value:
        return [p.strip() for p in value.split(sep)]
    out: list[str] = []
    start = 0
    in_quote = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == sep and not in_angle:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    if in_quote:
        raise SipSyntaxError("unterminated quoted string")
    out.append(value[start:].strip())
    return out


def unquote(value: str) -> str:
    """``"a \\"b\\""`` -> ``a "b"``; unquoted input is returned stripped."""
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        if "\\" not in inner:
            return inner
        out = []
        i = 0
        while i < len(inner):
            if inner[i] == "\\" and i + 1 < len(inner):
                i += 1
            out.append(inner[i])
            i += 1
        return "".join(out)
    if value.startswith('"'):
        raise SipSyntaxError("unterminated quoted string")
    return value


def quote(value: str) -> str:
    """Quote a string for a display name or parameter, escaping ``"`` and ``\\``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(parts: Iterable[str]) -> dict[str, str | None]:
    """``["tag=abc", "lr"]`` -> ``{"tag": "abc", "lr": None}`` (names lower-cased)."""
    params: dict[str, str | None] = {}
    for part in parts:
        if not part:
            continue
        name, eq, val = part.partition("=")
        name = name.strip().lower()
        if not name or not _TOKEN_RE.match(name):
            raise SipSyntaxError(f"bad parameter {part[:40]!r}")
        params[name] = val.strip() if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def split_host_port(text: str) -> tuple[str, int | None]:
    """``"[::1]:5060"`` -> ``("[::1]", 5060)``; ``"example.com"`` -> ``("example.com", None)``.

    IPv6 references keep their brackets, as in SIP text (RFC 3261 §25.1, RFC 5118).
    """
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipSyntaxError(f"unterminated IPv6 reference in {text[:60]!r}")
        host = text[: end + 1]
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipSyntaxError(f"junk after IPv6 reference in {text[:60]!r}")
        port_text = rest[1:] if rest else ""
        if not _valid_host(host):
            raise SipSyntaxError(f"bad IPv6 reference {host[:60]!r}")
    else:
        host, colon, port_text = text.partition(":")
        if colon and not port_text:
            raise SipSyntaxError(f"empty port in {text[:60]!r}")
        if not host or not _valid_host(host):
            raise SipSyntaxError(f"bad host {host[:60]!r}")
    if not port_text:
        return host, None
    if not _DIGITS_RE.match(port_text) or int(port_text) > 65535:
        raise SipSyntaxError(f"bad port {port_text[:20]!r}")
    return host, int(port_text)


def host_for_socket(host: str) -> str:
    """Strip IPv6 brackets for use with socket APIs."""
    return host[1:-1] if host.startswith("[") else host


def host_for_sip(host: str) -> str:
    """Add IPv6 brackets for use in SIP text."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# ---------------------------------------------------------------------------------------------
# URIs and addresses


@dataclass
class SipURI:
    """A ``sip:``/``sips:`` URI (RFC 3261 §19.1), or any other absolute URI kept opaque.

    For non-SIP schemes (``tel:``, ``urn:``...) only ``scheme`` and ``opaque`` are set.
    """

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    opaque: str | None = None

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(out)

    @property
    def is_sip(self) -> bool:
        return self.opaque is None

    @property
    def transport(self) -> str:
        """The transport this URI asks for: ``transport`` param, else TLS for sips, else UDP."""
        t = self.params.get("transport")
        if t:
            return t.upper()
        return "TLS" if self.scheme == "sips" else "UDP"

    def copy(self) -> SipURI:
        return SipURI(
            self.scheme, self.user, self.password, self.host, self.port,
            dict(self.params), dict(self.headers), self.opaque,
        )  # fmt: skip


_SIP_URI_RE = re.compile(
    r"(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,%]+)(?::([A-Za-z0-9\-_.!~*'()&=+$,%]*))?@)?"
    r"([A-Za-z0-9][A-Za-z0-9\-_.]*|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9\-_.!~*'%+]+(?:=[A-Za-z0-9\-_.!~*'%+:\[\]]*)?)*)\Z"
)


def parse_uri(text: str) -> SipURI:
    """Parse a URI; raise :class:`SipSyntaxError` if it is not one."""
    m = _SIP_URI_RE.match(text)
    if m is not None:
        # fast path: the common sip:user@host:port;params form, validated by the regex
        scheme, user, password, host, port, params = m.groups()
        p = int(port) if port else None
        if (p is None or p <= 65535) and _valid_host(host):
            return SipURI(scheme, user, password, host, p, parse_params(params[1:].split(";")) if params else {})
    return _parse_uri_general(text)


def _parse_uri_general(text: str) -> SipURI:
    """The general URI parser; ``parse_uri``'s regex fast path must agree with it."""
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or not rest:
        raise SipSyntaxError(f"not a URI: {text[:60]!r}")
    low = scheme.lower()
    if not _SCHEME_RE.match(scheme):
        raise SipSyntaxError(f"bad URI scheme in {text[:60]!r}")
    if _BAD_URI_CHARS.search(rest):
        raise SipSyntaxError(f"bad character in URI {text[:60]!r}")
    if low not in ("sip", "sips"):
        return SipURI(scheme=low, opaque=rest)
    uri = SipURI(scheme=low)
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, pc, password = userinfo.partition(":")
        if not user:
            raise SipSyntaxError(f"empty user part in {text[:60]!r}")
        uri.user = user
        uri.password = password if pc else None
    hostport, qm, headers = rest.partition("?")
    parts = hostport.split(";")
    uri.host, uri.port = split_host_port(parts[0])
    if len(parts) > 1:
        uri.params = parse_params(parts[1:])
    if qm:
        for h in headers.split("&"):
            k, eq, v = h.partition("=")
            if not k:
                raise SipSyntaxError(f"bad URI header in {text[:60]!r}")
            uri.headers[k] = v
    return uri


@dataclass
class NameAddr:
    """A From/To/Contact/Route value: optional display name, a URI, header parameters."""

    uri: SipURI
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        disp = quote(self.display) + " " if self.display else ""
        return f"{disp}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``"Alice" <sip:a@h;lr>;tag=1``, ``Alice <sip:a@h>``, or ``sip:a@h;tag=1``.

    In the addr-spec form (no angle brackets) parameters after the URI are header parameters
    (RFC 3261 §20.10), so they are not part of the URI.
    """
    text = text.strip()
    lt = -1
    display: str | None = None
    if text.startswith('"'):
        # find closing quote honoring escapes
        i = 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                break
            i += 1
        else:
            raise SipSyntaxError("unterminated quoted display name")
        display = unquote(text[: i + 1])
        rest = text[i + 1 :].lstrip()
        if not rest.startswith("<"):
            raise SipSyntaxError("display name not followed by <URI>")
        lt = len(text) - len(rest)
    else:
        lt = text.find("<")
        if lt > 0:
            display = text[:lt].strip() or None
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise SipSyntaxError(f"missing '>' in {text[:60]!r}")
        uri = parse_uri(text[lt + 1 : gt])
        tail = text[gt + 1 :].strip()
        if tail and not tail.startswith(";"):
            raise SipSyntaxError(f"junk after URI in {text[:60]!r}")
        params = parse_params(split_top(tail[1:], ";")) if tail else {}
        return NameAddr(uri, display, params)
    if text == "*":
        return NameAddr(SipURI(scheme="*", opaque=""), None, {})
    parts = split_top(text, ";")
    return NameAddr(parse_uri(parts[0]), None, parse_params(parts[1:]))


@dataclass
class Via:
    """One Via value (RFC 3261 §20.42, RFC 3581 rport)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


_VIA_PROTO_RE = re.compile(r"[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+", re.I)
_SENT_BY_COLON_RE = re.compile(r"[ \t]*:[ \t]*")


def parse_via(text: str) -> Via:
    """One Via value; LWS is allowed around ``/``, ``:``, ``;`` and ``=`` (RFC 3261 §25.1)."""
    m = _VIA_PROTO_RE.match(text)
    if m is None:
        raise SipSyntaxError(f"bad Via protocol {text.strip()[:40]!r}")
    transport = m.group(1).upper()
    parts = split_top(text[m.end():], ";")
    if not parts[0]:
        raise SipSyntaxError("Via without sent-by")
    sent_by = parts[0]
    if " " in sent_by or "\t" in sent_by:
        sent_by = _SENT_BY_COLON_RE.sub(":", sent_by)
    host, port = split_host_port(sent_by)
    return Via(transport, host, port, parse_params(parts[1:]))


def parse_cseq(text: str) -> tuple[int, str]:
    num, _, method = text.strip().partition(" ")
    method = method.strip()
    if not _DIGITS_RE.match(num) or int(num) >= 2**31 or not method or not _TOKEN_RE.match(method):
        raise SipSyntaxError(f"bad CSeq {text[:40]!r}")
    return int(num), method


# ---------------------------------------------------------------------------------------------
# Messages


class SipMessage:
    """Headers and body common to requests and responses.

    Header access is case-insensitive and accepts compact names. ``get``/``get_all`` split list
    headers (Via, Contact, Route...) at top-level commas, so ``get_all("Via")`` is one entry per
    hop whether they came on one line or several.
    """

    __slots__ = ("_headers", "_names", "body", "_cache")

    def __init__(self, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        self._headers: dict[str, list[str]] = {}
        self._names: dict[str, str] = {}
        self._cache: dict[str, object] = {}
        self.body = body
        for name, value in headers:
            self.add(name, value)

    # -- raw header access
    def add(self, name: str, value: str) -> None:
        """Append a header line (after any existing ones of the same name)."""
        key = _key(name)
        lst = self._headers.get(key)
        if lst is None:
            self._headers[key] = [value]
            self._names[key] = _CANONICAL_NAMES.get(key, name)
        else:
            lst.append(value)
        self._cache.clear()

    def prepend(self, name: str, value: str) -> None:
        """Insert a header value first (a new top Via, a Route)."""
        key = _key(name)
        lst = self._headers.get(key)
        if lst is None:
            # first of its kind: put it at the top (a Via belongs first on the wire)
            self._headers = {key: [value], **self._headers}
            self._names[key] = _CANONICAL_NAMES.get(key, name)
        else:
            lst.insert(0, value)
        self._cache.clear()

    def set(self, name: str, value: str | None) -> None:
        """Replace all values of a header (``None`` removes it)."""
        key = _key(name)
        self._headers.pop(key, None)
        self._cache.clear()
        if value is not None:
            self.add(name, value)

    def remove(self, name: str) -> None:
        self.set(name, None)

    def __contains__(self, name: str) -> bool:
        return _key(name) in self._headers

    def raw(self, name: str) -> list[str]:
        """The header lines as received (not split at commas)."""
        return list(self._headers.get(_key(name), ()))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header (first list element for list headers)."""
        key = _key(name)
        lst = self._headers.get(key)
        if not lst:
            return default
        if key in LIST_HEADERS:
            return split_top(lst[0], ",")[0]
        return lst[0]

    def get_all(self, name: str) -> list[str]:
        key = _key(name)
        lst = self._headers.get(key)
        if not lst:
            return []
        if key in LIST_HEADERS:
            out: list[str] = []
            for line in lst:
                out.extend(v for v in split_top(line, ",") if v)
            return out
        return list(lst)

    def items(self) -> Iterator[tuple[str, str]]:
        for key, values in self._headers.items():
            name = self._names[key]
            for v in values:
                yield name, v

    # -- structured views (cached)
    @property
    def call_id(self) -> str:
        lst = self._headers.get("call-id")
        return lst[0].strip() if lst else ""

    @property
    def cseq(self) -> tuple[int, str]:
        c = self._cache.get("cseq")
        if c is None:
            c = self._cache["cseq"] = parse_cseq(self.get("cseq") or "")
        return c  # type: ignore[return-value]

    @property
    def vias(self) -> list[Via]:
        c = self._cache.get("vias")
        if c is None:
            c = self._cache["vias"] = [parse_via(v) for v in self.get_all("via")]
        return c  # type: ignore[return-value]

    @property
    def top_via(self) -> Via:
        c = self._cache.get("top_via")
        if c is None:
            v = self.get("via")
            if v is None:
                raise SipSyntaxError("no Via")
            c = self._cache["top_via"] = parse_via(v)
        return c  # type: ignore[return-value]

    def _addr(self, name: str) -> NameAddr:
        c = self._cache.get(name)
        if c is None:
            v = self.get(name)
            if v is None:
                raise SipSyntaxError(f"no {name} header")
            c = self._cache[name] = parse_name_addr(v)
        return c  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        return self._addr("from")

    @property
    def to(self) -> NameAddr:
        return self._addr("to")

    @property
    def contact(self) -> NameAddr | None:
        return self._addr("contact") if "contact" in self._headers else None

    @property
    def content_type(self) -> str | None:
        ct = self.get("content-type")
        return ct.split(";")[0].strip().lower() if ct else None

    def address_list(self, name: str) -> list[NameAddr]:
        """Route/Record-Route/Contact as parsed name-addrs."""
        return [parse_name_addr(v) for v in self.get_all(name)]

    # -- serializing
    def _header_bytes(self, out: list[str]) -> bytes:
        for key, values in self._headers.items():
            if key == "content-length":
                continue
            name = self._names[key]
            for v in values:
                out.append(f"{name}: {v}\r\n")
        out.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "".join(out).encode("utf-8", "surrogateescape") + self.body


class Request(SipMessage):
    """A SIP request. ``uri`` is the Request-URI as text; ``request_uri`` parses it."""

    __slots__ = ("method", "uri")

    def __init__(
        self, method: str, uri: str | SipURI, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = str(uri)

    @property
    def request_uri(self) -> SipURI:
        c = self._cache.get("ruri")
        if c is None:
            c = self._cache["ruri"] = parse_uri(self.uri)
        return c  # type: ignore[return-value]

    def to_bytes(self) -> bytes:
        return self._header_bytes([f"{self.method} {self.uri} {SIP_VERSION}\r\n"])

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id!r}>"


class Response(SipMessage):
    __slots__ = ("status", "reason")

    def __init__(
        self, status: int, reason: str | None = None, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason if reason is not None else REASON_PHRASES.get(status, "Unknown")

    def to_bytes(self) -> bytes:
        return self._header_bytes([f"{SIP_VERSION} {self.status} {self.reason}\r\n"])

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id!r}>"

    @classmethod
    def for_request(
        cls,
        request: Request | SipMessage,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Build a response per RFC 3261 §8.2.6: Via, From, To, Call-ID, CSeq copied.

        ``to_tag`` is added to To if To has none yet (every final response to a request outside
        a dialog should carry one; 100 Trying must not get one from us).
        Record-Route is copied for 1xx/2xx, as dialog-creating responses need it (§12.1.1).
        """
        resp = cls(status, reason)
        for name in ("via", "from", "to", "call-id", "cseq"):
            for v in request._headers.get(name, ()):
                if name == "to" and to_tag is not None and status != 100:
                    try:
                        has_tag = request.to.tag is not None  # cached parse
                    except SipSyntaxError:
                        has_tag = True
                    if not has_tag:
                        v = f"{v};tag={to_tag}"
                resp.add(name, v)
        if 100 < status < 300:
            for v in request._headers.get("record-route", ()):
                resp.add("record-route", v)
        for n, v in headers:
            resp.add(n, v)
        resp.body = body
        return resp


Message = Request | Response


@dataclass
class ParseError:
    """Why a message could not be accepted; a value, never raised.

    ``is_request`` is True/False when the start line said which it was, None if unknown.
    ``headers`` holds whatever header lines parsed, so a 400 can still be routed back.
    """

    reason: str
    status: int = 400
    is_request: bool | None = None
    method: str | None = None
    headers: SipMessage | None = None
    fatal: bool = False
    """On a stream: framing was lost and the connection must be closed."""

    def response(self) -> Response | None:
        """The response to send for a malformed request (None for responses/unknown).

        The reason phrase names the defect, e.g. ``Bad Request (malformed CSeq: 'x INVITE')``.
        """
        if not self.is_request or self.method == "ACK":
            return None
        base = REASON_PHRASES.get(self.status, "Bad Request")
        text = "".join(c if " " <= c <= "~" else "?" for c in self.reason)[:200]
        src = self.headers if self.headers is not None else SipMessage()
        return Response.for_request(src, self.status, f"{base} ({text})")

    def __str__(self) -> str:
        kind = {True: "request", False: "response", None: "message"}[self.is_request]
        return f"malformed {kind}: {self.reason}"


_STATUS_RE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9])(?: (.*))?\Z", re.S)


def _parse_head(head: bytes, body: bytes, stream: bool) -> Request | Response | ParseError:
    """Parse a header block (without the blank line) plus its (already framed) body."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("utf-8", "surrogateescape")
        return _classify_error(text, "header block is not valid UTF-8")
    lines = text.split("\r\n")
    if len(lines) == 1 and "\n" in text:
        lines = text.replace("\r", "").split("\n")  # liberal: bare-LF line endings
    start = lines[0]
    msg: SipMessage
    is_request: bool
    method: str | None = None
    if start.startswith("SIP/"):
        is_request = False
        m = _STATUS_RE.match(start)
        if not m:
            if not start.startswith("SIP/2.0 "):
                return ParseError("unsupported SIP version", is_request=False)
            return ParseError(f"malformed status line {start[:60]!r}", is_request=False)
        reason = m.group(2) or ""
        msg = Response(int(m.group(1)), reason)
    else:
        is_request = True
        parts = start.split(" ")
        if len(parts) != 3:
            return ParseError(f"malformed request line {start[:60]!r}", is_request=True)
        method, uri, version = parts
        if not _TOKEN_RE.match(method):
            return ParseError(f"bad method {method[:30]!r}", is_request=True)
        if version != SIP_VERSION:
            if version.upper().startswith("SIP/"):
                status = 400 if version.upper() == SIP_VERSION else 505
                return _with_headers(lines, ParseError(f"unsupported version {version[:20]!r}", status, True, method))
            return ParseError(f"malformed request line {start[:60]!r}", is_request=True, method=method)
        msg = Request(method, uri)
    # header lines, unfolding continuation lines
    headers = msg._headers
    names = msg._names
    err: str | None = None
    cur_key: str | None = None
    if len(lines) > MAX_HEADER_LINES:
        return _with_headers(lines[:MAX_HEADER_LINES], ParseError("too many header lines", 400, is_request, method))
    for line in lines[1:]:
        if not line:
            continue
        c0 = line[0]
        if c0 == " " or c0 == "\t":
            if cur_key is None:
                err = err or "continuation line before any header"
                continue
            prev = headers[cur_key]
            prev[-1] = prev[-1] + " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        key = _NAME_KEYS.get(name)
        if key is None:
            name = name.rstrip(" \t")
            if not colon or not name or not _TOKEN_RE.match(name):
                err = err or f"malformed header line {line[:40]!r}"
                cur_key = None
                continue
            low = name.lower()
            key = COMPACT_FORMS.get(low, low)
            if len(_NAME_KEYS) < 4096:
                _NAME_KEYS[name] = key
        value = value.strip()
        lst = headers.get(key)
        if lst is None:
            headers[key] = [value]
            names[key] = _CANONICAL_NAMES.get(key, name)
        else:
            lst.append(value)
        cur_key = key
    msg.body = body
    if err is None:
        err = _validate(msg, is_request, method)
    if err is not None:
        status = 416 if err.startswith("unsupported URI scheme") else 400
        if is_request:
            log.info("rejecting malformed %s request: %s", method, err)
        return ParseError(err, status, is_request, method, msg)
    return msg  # type: ignore[return-value]


_NAME_KEYS: dict[str, str] = {}
"""Header names seen (as spelled on the wire, already validated) -> storage key."""


def _with_headers(lines: list[str], error: ParseError) -> ParseError:
    """Attach whatever header lines parse cleanly, so the error response can be routed."""
    holder = SipMessage()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon and name and _TOKEN_RE.match(name.strip()):
            holder.add(name.strip(), value.strip())
    error.headers = holder
    return error


def _classify_error(text: str, reason: str) -> ParseError:
    first = text.split("\n", 1)[0]
    if first.startswith("SIP/"):
        return ParseError(reason, is_request=False)
    method = first.split(" ", 1)[0]
    return _with_headers(text.replace("\r", "").split("\n"), ParseError(reason, 400, True, method))


def _validate(msg: SipMessage, is_request: bool, method: str | None) -> str | None:
    h = msg._headers
    for name in ("via", "from", "to", "call-id", "cseq"):
        if not h.get(name):
            return f"missing {_CANONICAL_NAMES[name]} header"
    if len(h["cseq"]) > 1:
        return "more than one CSeq header"
    for name in ("call-id", "from", "to"):
        if len(h[name]) > 1:
            return f"more than one {_CANONICAL_NAMES[name]} header"
    try:
        num, cmethod = msg.cseq
    except SipSyntaxError:
        return f"malformed CSeq: {h['cseq'][0][:40]!r}"
    if is_request and cmethod != method:
        return f"CSeq method {cmethod[:20]!r} does not match request method"
    if not msg.call_id or any(c in msg.call_id for c in " \t"):
        return "malformed Call-ID"
    try:
        via = msg.top_via
    except SipSyntaxError as exc:
        return f"malformed Via: {exc}"
    del via  # a missing branch (RFC 2543 peer) is tolerated; transactions match by other keys
    for name in ("from", "to"):
        try:
            msg._addr(name)
        except SipSyntaxError as exc:
            return f"malformed {_CANONICAL_NAMES[name]}: {exc}"
    if is_request:
        try:
            ruri = msg.request_uri  # type: ignore[attr-defined]
        except SipSyntaxError as exc:
            return f"malformed Request-URI: {exc}"
        if ruri.scheme not in ("sip", "sips", "tel") and method != "ACK":
            return f"unsupported URI scheme {ruri.scheme[:20]!r}"
        if ruri.headers:
            return "Request-URI must not carry URI headers"  # RFC 3261 §19.1.1 table
        mf = msg.get("max-forwards")
        if mf is not None and (not _DIGITS_RE.match(mf.strip()) or int(mf) > 255):
            return f"malformed Max-Forwards {mf[:20]!r}"  # 0-255, §20.22
    if "contact" in h and msg.get("contact") != "*":
        try:
            msg.address_list("contact")
        except SipSyntaxError as exc:
            return f"malformed Contact: {exc}"
    return None


_CL_RE = re.compile(rb"\n[ \t]*(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.I)


def _content_length(head: bytes) -> int | None | str:
    """Content-Length from a raw header block: int, None if absent, or an error string."""
    found: int | None = None
    for raw in _CL_RE.findall(head):
        v = raw.strip()
        if not is_ascii_decimal(v) or len(v) > 9:
            return f"malformed Content-Length {v[:20]!r}"
        if found is not None and found != int(v):
            return "conflicting Content-Length headers"
        found = int(v)
    return found


def parse(data: bytes, *, max_size: int = MAX_MESSAGE_BYTES) -> Request | Response | ParseError:
    """Parse one datagram. Never raises.

    Over UDP the body is what Content-Length says (extra bytes are discarded, RFC 3261 §18.3) or,
    without Content-Length, the rest of the datagram.
    """
    try:
        if len(data) > max_size:
            return _oversize(data)
        data = data.lstrip(b"\r\n")
        sep = data.find(b"\r\n\r\n")
        if sep < 0:
            alt = data.find(b"\n\n")
            if alt >= 0:
                head, rest = data[:alt], data[alt + 2 :]
            else:
                head, rest = data.rstrip(b"\r\n"), b""
        else:
            head, rest = data[:sep], data[sep + 4 :]
        if not head:
            return ParseError("empty message")
        cl = _content_length(head)
        if isinstance(cl, str):
            return _parse_error_with(head, cl)
        if cl is not None:
            if cl > len(rest):
                return _parse_error_with(head, f"Content-Length {cl} exceeds the {len(rest)} body bytes received")
            rest = rest[:cl]
        return _parse_head(head, rest, False)
    except Exception as exc:  # noqa: BLE001 - contract: the parser never raises
        log.exception("parser bug on %d bytes", len(data))
        return ParseError(f"unparseable message ({type(exc).__name__})")


def _oversize(data: bytes) -> ParseError:
    head = data[:4096]
    err = _classify_error(head.decode("utf-8", "replace"), "message too large")
    err.status = 513
    return err


def _parse_error_with(head: bytes, reason: str) -> ParseError:
    res = _parse_head(head, b"", False)
    if isinstance(res, ParseError):
        if res.is_request is None:
            res.reason = reason
        return res
    return ParseError(reason, 400, isinstance(res, Request), getattr(res, "method", None), res)


class StreamParser:
    """Frames messages on a byte stream (TCP/TLS) by Content-Length (RFC 3261 §18.3).

    ``feed(chunk)`` returns the messages (or :class:`ParseError` values) completed by that
    chunk. CRLF keep-alives between messages (RFC 5626 §3.5.1) are skipped and counted in
    ``keepalives`` so the transport can answer a double-CRLF ping with a CRLF pong. After a
    ``fatal`` error (framing lost: bad Content-Length, oversize) the parser stops; the
    transport should send the error response and close the connection.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_BYTES) -> None:
        self._buf = bytearray()
        self.max_size = max_size
        self.broken = False
        self.keepalives = 0
        self._scanned = 0
        self._crlf_run = 0

    def feed(self, data: bytes) -> list[Request | Response | ParseError]:
        out: list[Request | Response | ParseError] = []
        if self.broken:
            return out
        self._buf += data
        try:
            while True:
                buf = self._buf
                i = 0
                while i < len(buf) and buf[i] in (13, 10):
                    i += 1
                if i:
                    # a double CRLF between messages is a keep-alive ping, even split over chunks
                    self._crlf_run += i
                    while self._crlf_run >= 4:
                        self.keepalives += 1
                        self._crlf_run -= 4
                    del buf[:i]
                    self._scanned = 0
                if not buf:
                    break
                self._crlf_run = 0
                # resume the search where the last chunk's search ended: a header arriving a
                # byte at a time must not cost a rescan per byte (quadratic)
                sep = buf.find(b"\r\n\r\n", self._scanned)
                if sep < 0:
                    self._scanned = max(0, len(buf) - 3)
                    if len(buf) > self.max_size:
                        out.append(self._fail(bytes(buf), "message too large", 513))
                    break
                head = bytes(buf[:sep])
                cl = _content_length(head)
                if isinstance(cl, str):
                    out.append(self._fail(head, cl, 400))
                    break
                cl = cl or 0
                total = sep + 4 + cl
                if total > self.max_size:
                    out.append(self._fail(head, "message too large", 513))
                    break
                if len(buf) < total:
                    break
                body = bytes(buf[sep + 4 : total])
                del buf[:total]
                self._scanned = 0
                out.append(_parse_head(head, body, True))
        except Exception as exc:  # noqa: BLE001 - contract: the parser never raises
            log.exception("stream parser bug")
            out.append(self._fail(b"", f"unparseable message ({type(exc).__name__})", 400))
        return out

    def _fail(self, head: bytes, reason: str, status: int) -> ParseError:
        self.broken = True
        self._buf.clear()
        err = _parse_error_with(head, reason) if head else ParseError(reason)
        err.reason = reason
        err.status = status
        err.fatal = True
        return err
