"""A scripted loopback SIP responder over a raw UDP socket, for seeing exactly what a phone sends.

It is not a SIP stack (roomtone's is src/roomtone/sip/): it parses just enough (start line, headers
by full or compact name) to answer requests with a policy function, keeps every received message,
and runs in a thread. Tests use it to capture real offers (SDP fixtures) and to put roomtone's
digest Challenger in front of real clients before roomtone's UA exists.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .common import HOST, PhoneError, free_port

_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
            "c": "content-type"}


@dataclass
class RawMessage:
    start: str
    headers: list[tuple[str, str]]
    body: bytes
    source: tuple[str, int]
    raw: bytes

    @property
    def method(self) -> str:
        return self.start.split(" ", 1)[0]

    @property
    def uri(self) -> str:
        parts = self.start.split(" ")
        return parts[1] if len(parts) > 1 else ""

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if _COMPACT.get(k.lower(), k.lower()) == name]


def parse_raw(data: bytes, source: tuple[str, int]) -> RawMessage | None:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            k, v = headers[-1]
            headers[-1] = (k, v + " " + line.strip())
            continue
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return RawMessage(lines[0], headers, body, source, data)


def response(req: RawMessage, code: int, reason: str, *, to_tag: str | None = "rawuas",
             extra: list[tuple[str, str]] | None = None, body: bytes = b"",
             content_type: str = "application/sdp", contact: str | None = None) -> bytes:
    """A response echoing Via/From/To/Call-ID/CSeq as RFC 3261 §8.2.6 requires."""
    lines = [f"SIP/2.0 {code} {reason}"]
    lines += [f"Via: {v}" for v in req.all("via")]
    lines.append(f"From: {req.header('from')}")
    to = req.header("to") or ""
    if to_tag and ";tag=" not in to and code > 100:
        to += f";tag={to_tag}"
    lines.append(f"To: {to}")
    lines.append(f"Call-ID: {req.header('call-id')}")
    lines.append(f"CSeq: {req.header('cseq')}")
    if contact:
        lines.append(f"Contact: {contact}")
    lines += [f"{k}: {v}" for k, v in (extra or [])]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


#: a policy gets each request and returns the responses to send (bytes), possibly none.
Policy = Callable[[RawMessage], list[bytes]]


@dataclass
class RawUas:
    """UDP responder on a free loopback port. ``received`` keeps every parsed message in order."""

    policy: Policy
    port: int = 0
    received: list[RawMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = self.port or free_port(span=1, tcp=False)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, self.port))
        self.sock.settimeout(0.2)
        self.contact = f"<sip:raw@{HOST}:{self.port}>"
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="rawuas", daemon=True)
        self._thread.start()

    def uri(self, user: str = "raw") -> str:
        return f"sip:{user}@{HOST}:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            msg = parse_raw(data, addr)
            if msg is None:
                continue
            with self._cond:
                self.received.append(msg)
                self._cond.notify_all()
            if msg.start.startswith("SIP/2.0"):
                continue
            try:
                for out in self.policy(msg):
                    self.sock.sendto(out, addr)
            except Exception as exc:  # keep serving; the test sees the error list
                self.errors.append(f"policy failed on {msg.start!r}: {exc!r}")

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[RawMessage]:
        """The first ``count`` requests with this method, waiting up to ``timeout`` s."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: len([m for m in self.received if m.method == method]) >= count, timeout)
            found = [m for m in self.received if m.method == method]
        if not ok:
            seen = [m.start for m in self.received]
            raise PhoneError(f"raw UAS: {count} {method} not received in {timeout}s; got {seen}; "
                             f"errors {self.errors}")
        return found[:count]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def __enter__(self) -> RawUas:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
