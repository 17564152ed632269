"""SIP INFO DTMF bodies: ``application/dtmf-relay`` and ``application/dtmf`` (parse and format).

``application/dtmf-relay`` (Cisco's format, used by most PBXes)::

    Signal=5
    Duration=160

Keys are case-insensitive, lines end in CRLF or LF, whitespace around keys and values is ignored,
unknown keys are ignored. ``Signal`` is a digit (``0-9 * # A-D``, lowercase ``a-d`` accepted), or an
event code ``0``-``16``; flash is ``16`` or ``!`` (``R`` is accepted too). ``Duration`` is optional,
in milliseconds. ``application/dtmf`` carries the digit or the event code alone.

Parsing never raises: a malformed body returns :class:`InfoError`, whose ``status`` is what the SIP
layer answers (400 for a bad body, 415 for a content type we do not read) and whose ``reason`` goes
into the reason phrase / a Warning header and the log.

We format flash as ``Signal=16``: a number is unambiguous, while ``!`` and ``R`` are conventions
some receivers do not know.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from roomtone.dtmf.digits import CANONICAL, FLASH, MAX_EVENT, DtmfError, code_for
from roomtone.numeric import is_ascii_decimal

log = logging.getLogger(__name__)

DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"
CONTENT_TYPES = (DTMF_RELAY, DTMF)
MAX_DURATION_MS = 60_000
MAX_BODY = 1024


@dataclass(frozen=True, slots=True)
class InfoDigit:
    """One key press from a SIP INFO body. ``duration_ms`` is None when the body gave none."""

    code: int
    duration_ms: int | None = None

    @property
    def digit(self) -> str:
        return CANONICAL[self.code]


@dataclass(frozen=True, slots=True)
class InfoError:
    """Why a body was refused; ``status`` is the SIP response code to send."""

    reason: str
    status: int = 400

    def __bool__(self) -> bool:
        return False


def _decode(body: bytes | str) -> str | InfoError:
    if isinstance(body, bytes):
        if len(body) > MAX_BODY:
            return InfoError(f"DTMF body too long ({len(body)} bytes)")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return InfoError("DTMF body is not valid UTF-8")
    if len(body) > MAX_BODY:
        return InfoError(f"DTMF body too long ({len(body)} characters)")
    return body


def _signal(value: str) -> int | InfoError:
    """A digit character or an event code 0-16."""
    value = value.strip()
    if not value:
        return InfoError("empty DTMF signal")
    if is_ascii_decimal(value) and len(value) <= 2:
        code = int(value)
        if code <= MAX_EVENT:
            return code
        return InfoError(f"DTMF event code {value} out of range 0-16")
    if len(value) == 1 and value not in "\x00wW,":
        try:
            return code_for(value)
        except DtmfError:
            pass
    return InfoError(f"unknown DTMF signal {value!r}: expected 0-9, *, #, A-D, 16 or ! (flash)")


def parse_dtmf_relay(body: bytes | str) -> InfoDigit | InfoError:
    text = _decode(body)
    if isinstance(text, InfoError):
        return text
    code: int | None = None
    duration: int | None = None
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            return InfoError(f"line {number} of dtmf-relay body has no '=': {line[:40]!r}")
        key = key.strip().lower()
        if key == "signal":
            if code is not None:
                return InfoError("dtmf-relay body has more than one Signal line")
            parsed = _signal(value)
            if isinstance(parsed, InfoError):
                return parsed
            code = parsed
        elif key == "duration":
            if duration is not None:
                return InfoError("dtmf-relay body has more than one Duration line")
            v = value.strip()
            if not is_ascii_decimal(v) or not 0 < int(v) <= MAX_DURATION_MS:
                return InfoError(f"dtmf-relay Duration {v[:20]!r} is not a whole number of ms in 1-{MAX_DURATION_MS}")
            duration = int(v)
        else:
            log.debug("ignoring dtmf-relay key %r", key)
    if code is None:
        return InfoError("dtmf-relay body has no Signal line")
    return InfoDigit(code, duration)


def parse_dtmf(body: bytes | str) -> InfoDigit | InfoError:
    """``application/dtmf``: the digit or the event code alone."""
    text = _decode(body)
    if isinstance(text, InfoError):
        return text
    parsed = _signal(text)
    if isinstance(parsed, InfoError):
        return parsed
    return InfoDigit(parsed)


def parse_info_body(content_type: str, body: bytes | str) -> InfoDigit | InfoError:
    """Dispatch on the Content-Type (parameters ignored). 415 for types we do not read."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == DTMF_RELAY:
        result = parse_dtmf_relay(body)
    elif media == DTMF:
        result = parse_dtmf(body)
    else:
        return InfoError(f"unsupported INFO content type {content_type!r}; accepted: {', '.join(CONTENT_TYPES)}",
                         415)
    if isinstance(result, InfoError):
        log.info("rejecting SIP INFO %s body: %s", media, result.reason)
    return result


def _code(digit: str | int) -> int:
    if isinstance(digit, int):
        if not 0 <= digit <= MAX_EVENT:
            raise DtmfError(f"unknown DTMF event code {digit!r}: expected 0-16")
        return digit
    return code_for(digit)


def format_dtmf_relay(digit: str | int, duration_ms: int = 160) -> str:
    """Body for ``application/dtmf-relay``. Raises :class:`DtmfError` for a bad digit."""
    code = _code(digit)
    if not 0 < duration_ms <= MAX_DURATION_MS:
        raise ValueError(f"duration {duration_ms} ms out of range 1-{MAX_DURATION_MS}")
    signal = "16" if code == FLASH else CANONICAL[code]
    return f"Signal={signal}\r\nDuration={duration_ms}\r\n"


def format_dtmf(digit: str | int) -> str:
    """Body for ``application/dtmf``: the canonical digit, or ``16`` for flash."""
    code = _code(digit)
    return "16" if code == FLASH else CANONICAL[code]
