"""asyncio SIP transports: UDP, TCP and TLS (RFC 3261 §18, RFC 3581), the thin I/O adapter.

:class:`SipTransport` owns the sockets. Incoming bytes are parsed with ``message.parse`` (UDP)
or a ``StreamParser`` per connection (TCP/TLS). For a good request it stamps the top Via with
``received`` (when the sent-by host is not the packet's source) and fills ``rport`` if the
client asked for it (RFC 3581 §4), then hands ``(message, source)`` to ``on_message``.
``source`` is an :class:`Address` saying where responses must go (§18.2.2): over TCP/TLS the
connection the request came on; over UDP the source IP and either the rport (the source port)
or the Via port. A malformed request is answered here with the parser's 400 (the reason names
the defect); a malformed response is logged and dropped.

Outgoing: ``send(message, dest)``. UDP goes out from the listening socket (so the peer's
responses come back to it); TCP/TLS reuses a connection to ``dest`` or opens one (in a task, as
``send`` is called from synchronous event handling); ``on_error(message, dest)`` reports
failures so the transaction can fail fast (§17.1.4).

Name resolution is A/AAAA through ``getaddrinfo`` only (no NAPTR/SRV, RFC 3263): enough for
trunks configured by address or plain host name, noted here as a known limit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from roomtone.sip.message import (
    ParseError,
    Request,
    Response,
    SipSyntaxError,
    StreamParser,
    host_for_sip,
    host_for_socket,
    parse,
    split_top,
)

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061}


@dataclass(frozen=True)
class Address:
    """Where to send: transport name, IP (no brackets) and port."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"

    def __str__(self) -> str:
        return f"{self.transport.lower()}:{host_for_sip(self.host)}:{self.port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def stamp_via(req: Request, source_ip: str, source_port: int) -> None:
    """RFC 3261 §18.2.1 / RFC 3581 §4: add received (and the rport value) to the top Via."""
    raw = req.raw("via")
    via = req.top_via
    changed = False
    if host_for_socket(via.host) != source_ip:
        via.params["received"] = source_ip
        changed = True
    if "rport" in via.params:
        via.params["rport"] = str(source_port)
        if "received" not in via.params:
            via.params["received"] = source_ip
        changed = True
    if changed:
        # rewrite only the first Via value; the rest of that line (if it held a list) is kept
        first_line = raw[0]
        items = split_top(first_line, ",")
        items[0] = str(via)
        values = [", ".join(items)] + raw[1:]
        req.set("via", None)
        for v in values:
            req.add("Via", v)


def response_address(req: Request, source_ip: str, source_port: int, transport: str) -> Address:
    """Where responses to this request go (§18.2.2, RFC 3581)."""
    if transport != "UDP":
        return Address(transport, source_ip, source_port)
    via = req.top_via
    rport = via.params.get("rport")
    if rport:
        return Address("UDP", source_ip, int(rport))
    return Address("UDP", source_ip, via.port or DEFAULT_PORTS["UDP"])


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.owner._on_bytes(data, "UDP", addr[0], addr[1], None)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class _Stream(asyncio.Protocol):
    def __init__(self, owner: SipTransport, transport_name: str) -> None:
        self.owner = owner
        self.name = transport_name
        self.parser = StreamParser(owner.max_message)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.owner._conns[(self.name, peer[0], peer[1])] = self

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._conns.pop((self.name, self.peer[0], self.peer[1]), None)

    def data_received(self, data: bytes) -> None:
        before = self.parser.keepalives
        for msg in self.parser.feed(data):
            self.owner._on_parsed(msg, self.name, self.peer[0], self.peer[1], self)
        if self.parser.keepalives != before and self.transport is not None:
            self.transport.write(b"\r\n")  # RFC 5626 pong
        if self.parser.broken and self.transport is not None:
            self.transport.close()


class SipTransport:
    """Listening sockets and connections for one user agent (see the module docstring)."""

    def __init__(
        self,
        on_message: Callable[[Request | Response, Address], None],
        *,
        max_message: int = 65535,
        tls_server_context: ssl.SSLContext | None = None,
        tls_client_context: ssl.SSLContext | None = None,
    ) -> None:
        self.on_message = on_message
        self.on_error: Callable[[Request | Response, Address], None] = lambda m, a: None
        self.max_message = max_message
        self.tls_server_context = tls_server_context
        self.tls_client_context = tls_client_context
        self._udp: _Udp | None = None
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._conns: dict[tuple[str, str, int], _Stream] = {}
        self._pending: dict[tuple[str, str, int], list[bytes]] = {}
        self.local: dict[str, tuple[str, int]] = {}
        self.stats = {"received": 0, "sent": 0, "malformed": 0}
        self._tasks: set[asyncio.Task] = set()

    async def listen(self, transport: str, host: str, port: int) -> tuple[str, int]:
        """Start listening; returns the bound (host, port) (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        transport = transport.upper()
        if transport == "UDP":
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            _, proto = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(host, port), family=family)
            self._udp = proto
            assert proto.transport is not None
            sock = proto.transport.get_extra_info("socket")
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            except OSError:
                pass
            addr = proto.transport.get_extra_info("sockname")
        elif transport in ("TCP", "TLS"):
            ctx = self.tls_server_context if transport == "TLS" else None
            if transport == "TLS" and ctx is None:
                raise ValueError("TLS needs tls_server_context")
            server = await loop.create_server(lambda: _Stream(self, transport), host, port, ssl=ctx, reuse_address=True)
            self._servers[transport] = server
            addr = server.sockets[0].getsockname()
        else:
            raise ValueError(f"unknown transport {transport!r}")
        self.local[transport] = (addr[0], addr[1])
        return addr[0], addr[1]

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._udp and self._udp.transport:
            self._udp.transport.close()
        for conn in list(self._conns.values()):
            if conn.transport:
                conn.transport.close()
        for s in self._servers.values():
            s.close()
        for s in self._servers.values():
            try:
                await asyncio.wait_for(s.wait_closed(), 1.0)
            except TimeoutError:
                pass
        self._servers.clear()

    # -- input
    def _on_bytes(self, data: bytes, transport: str, ip: str, port: int, conn: _Stream | None) -> None:
        if len(data) <= 4 and not data.strip(b"\r\n"):
            return  # keep-alive
        self._on_parsed(parse(data, max_size=self.max_message), transport, ip, port, conn)

    def _on_parsed(
        self, msg: Request | Response | ParseError, transport: str, ip: str, port: int, conn: _Stream | None
    ) -> None:
        self.stats["received"] += 1
        if isinstance(msg, ParseError):
            self.stats["malformed"] += 1
            resp = msg.response()
            if resp is None:
                log.warning("dropping malformed message from %s:%s: %s", ip, port, msg)
                return
            log.warning("answering malformed request from %s:%s with %d: %s", ip, port, resp.status, msg.reason)
            dest = Address(transport, ip, port)
            if transport == "UDP" and "via" in resp:
                try:
                    tmp = Request("X", "sip:x")
                    for v in resp.raw("via"):
                        tmp.add("Via", v)
                    stamp_via(tmp, ip, port)
                    dest = response_address(tmp, ip, port, "UDP")
                    resp.set("via", None)
                    for v in tmp.raw("via"):
                        resp.add("Via", v)
                except (SipSyntaxError, ValueError):
                    pass  # an unparseable Via: answer the packet's source
            self.send(resp, dest)
            return
        if isinstance(msg, Request):
            try:
                stamp_via(msg, ip, port)
                source = response_address(msg, ip, port, transport)
            except SipSyntaxError as exc:  # pragma: no cover - the parser validated the Via
                log.warning("bad Via from %s:%s: %s", ip, port, exc)
                return
        else:
            source = Address(transport, ip, port)
        try:
            self.on_message(msg, source)
        except Exception:  # noqa: BLE001 - a bug upstairs must not kill the socket
            log.exception("handler failed for %r from %s", msg, source)

    # -- output
    def via_for(self, transport: str, branch: str) -> str:
        """A Via value for a request we send over ``transport`` (asks for rport, RFC 3581)."""
        host, port = self.sent_by(transport)
        return f"SIP/2.0/{transport} {host_for_sip(host)}:{port};branch={branch};rport"

    def sent_by(self, transport: str) -> tuple[str, int]:
        t = transport if transport in self.local else next(iter(self.local))
        host, port = self.local[t]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return host, port

    def send(self, message: Request | Response, dest: Address) -> None:
        data = message.to_bytes()
        self.stats["sent"] += 1
        if dest.transport == "UDP":
            if self._udp is None or self._udp.transport is None:
                log.error("no UDP socket to send %r to %s", message, dest)
                self.on_error(message, dest)
                return
            if len(data) > 65507:
                log.error("%r is too large for UDP (%d bytes)", message, len(data))
                self.on_error(message, dest)
                return
            self._udp.transport.sendto(data, (dest.host, dest.port))
            return
        key = (dest.transport, dest.host, dest.port)
        if self._write_open(key, data):
            return
        if isinstance(message, Response):
            # the request's connection is gone: open one to its Via sent-by (§18.2.2), not to
            # the peer's old ephemeral port
            try:
                via = message.top_via
                host = via.params.get("received") or host_for_socket(via.host)
                dest = Address(dest.transport, host, via.port or DEFAULT_PORTS.get(dest.transport, 5060))
            except SipSyntaxError:
                pass
            key = (dest.transport, dest.host, dest.port)
            if self._write_open(key, data):
                return
        pending = self._pending.get(key)
        if pending is not None:
            pending.append(data)
            return
        self._pending[key] = [data]
        task = asyncio.get_running_loop().create_task(self._connect(message, dest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _write_open(self, key: tuple[str, str, int], data: bytes) -> bool:
        """Write ``data`` on the open stream connection for ``key``; False if there is none."""
        conn = self._conns.get(key)
        if conn is None or conn.transport is None or conn.transport.is_closing():
            return False
        conn.transport.write(data)
        return True

    async def _connect(self, message: Request | Response, dest: Address) -> None:
        key = (dest.transport, dest.host, dest.port)
        loop = asyncio.get_running_loop()
        ctx = None
        if dest.transport == "TLS":
            ctx = self.tls_client_context or ssl.create_default_context()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _Stream(self, dest.transport), dest.host, dest.port, ssl=ctx),
                10.0,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.warning("cannot connect to %s: %s", dest, exc)
            self._pending.pop(key, None)
            self.on_error(message, dest)
            return
        for data in self._pending.pop(key, []):
            assert proto.transport is not None
            proto.transport.write(data)


async def resolve(host: str, port: int, transport: str) -> Address:
    """Resolve a SIP host (brackets allowed) to an :class:`Address` (A/AAAA only)."""
    h = host_for_socket(host)
    if _is_ip(h):
        return Address(transport, h, port)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(h, port, type=socket.SOCK_DGRAM if transport == "UDP" else socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    return Address(transport, str(infos[0][4][0]), port)
