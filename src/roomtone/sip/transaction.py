"""SIP transactions (RFC 3261 §17, with the RFC 6026 "Accepted" states), sans-IO.

A :class:`TransactionLayer` is fed parsed messages (``receive``) and the current time
(``tick``); it returns nothing directly but queues :class:`Event` values, collected with
``pop_events()``: messages to send, requests and responses for the transaction user (TU), and
timeouts. ``next_deadline()`` says when ``tick`` must next be called. No sockets, no clock: the
asyncio adapter (``ua.py``) owns both, and tests drive it with a virtual clock.

Timers (T1 = 500 ms, T2 = 4 s, T4 = 5 s by default):

- INVITE client: A (retransmit, T1 doubling; unreliable only), B (64*T1 timeout while calling),
  D (32 s unreliable / 0 reliable: absorb final-response retransmissions), M (64*T1 in Accepted).
- non-INVITE client: E (retransmit, T1 doubling capped at T2, T2 once provisional), F (64*T1
  timeout), K (T4 unreliable / 0 reliable).
- INVITE server: G (final non-2xx retransmit, T1 doubling capped at T2; unreliable only),
  H (64*T1 waiting for ACK), I (T4 / 0 in Confirmed), L (64*T1 in Accepted).
- non-INVITE server: J (64*T1 unreliable / 0 reliable).

The ACK for a non-2xx final response is built and sent by the client transaction (§17.1.1.3).
A 2xx to INVITE is retransmitted by the UAS *core* until its ACK arrives (§13.3.1.4, RFC 6026);
that lives here too, in :meth:`TransactionLayer.send_2xx`, because it is the same timer
machinery: the ACK (a separate transaction-less request) stops it, and :class:`AckTimeout` tells
the TU when 64*T1 passed without one (the TU should then send BYE).

Destinations are opaque to this layer: whatever the transport passed as ``source`` with a
request is where that request's responses go, and whatever the TU passes as ``dest`` is where
client-transaction requests go.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from roomtone.sip.message import Request, Response, SipMessage, SipSyntaxError

log = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True)
class Timers:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    d: float = 32.0


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


# ------------------------------------------------------------------------------- events


class Event:
    """Base class of everything ``pop_events()`` returns."""


@dataclass
class Send(Event):
    """Put ``message`` on the wire towards ``dest`` (a retransmission if ``retransmit``)."""

    message: Request | Response
    dest: Any
    retransmit: bool = False


@dataclass
class RequestReceived(Event):
    """A new request for the TU. ``transaction`` is None for an ACK (no transaction)."""

    request: Request
    transaction: ServerTransaction | None
    source: Any


@dataclass
class ResponseReceived(Event):
    """A response for the TU from ``transaction`` (2xx retransmissions included, for re-ACK)."""

    response: Response
    transaction: ClientTransaction


@dataclass
class StrayResponse(Event):
    """A response matching no transaction (e.g. a 2xx retransmitted after Timer M)."""

    response: Response
    source: Any


@dataclass
class TransactionTimeout(Event):
    """Timer B, F or H fired: the transaction failed for lack of an answer (or ACK)."""

    transaction: ClientTransaction | ServerTransaction
    timer: str


@dataclass
class TransactionTerminated(Event):
    transaction: ClientTransaction | ServerTransaction


@dataclass
class AckTimeout(Event):
    """A 2xx sent with ``send_2xx`` got no ACK in 64*T1 (§13.3.1.4): the TU should send BYE."""

    response: Response


# ------------------------------------------------------------------------------- helpers


def server_key(req: SipMessage, method: str) -> tuple:
    """§17.2.3 matching key; ACK matches the INVITE transaction."""
    via = req.top_via
    branch = via.branch or ""
    m = "INVITE" if method == "ACK" else method
    if branch.startswith(MAGIC_COOKIE):
        return (branch, via.host.lower(), via.port, m)
    # RFC 2543 peer: match on the dialog/request identifiers instead
    return ("2543", req.call_id, req.from_.tag, req.cseq[0], via.host.lower(), via.port, m)


def client_key(msg: SipMessage) -> tuple:
    """§17.1.3 matching key: top Via branch plus CSeq method."""
    return (msg.top_via.branch, msg.cseq[1])


def _same_hop(invite: Request, method: str, to: str) -> Request:
    """A request that follows the INVITE's own hop: its Request-URI, top Via (same branch), Route
    set, From, Call-ID and CSeq number, with ``method`` and ``to`` (§9.1, §17.1.1.3)."""
    req = Request(method, invite.uri)
    req.add("Via", invite.get_all("via")[0])
    for v in invite.raw("route"):
        req.add("Route", v)
    req.add("Max-Forwards", "70")
    req.add("From", invite.get("from") or "")
    req.add("To", to)
    req.add("Call-ID", invite.call_id)
    req.add("CSeq", f"{invite.cseq[0]} {method}")
    return req


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (§17.1.1.3): same branch, To from the response."""
    return _same_hop(invite, "ACK", response.get("to") or "")


def make_cancel(invite: Request) -> Request:
    """The CANCEL for a pending INVITE (§9.1): same branch, To as in the INVITE (no tag)."""
    return _same_hop(invite, "CANCEL", invite.get("to") or "")


class _Base:
    __slots__ = ("layer", "request", "reliable", "state", "key", "_timers", "_interval")

    def __init__(self, layer: TransactionLayer, request: Request, reliable: bool, key: tuple) -> None:
        self.layer = layer
        self.request = request
        self.reliable = reliable
        self.state = State.TRYING
        self.key = key
        self._timers: dict[str, float] = {}
        self._interval = layer.timers.t1

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def branch(self) -> str:
        return self.request.top_via.branch or ""

    def _start(self, name: str, now: float, delay: float) -> None:
        at = now + delay
        self._timers[name] = at
        self.layer._schedule(at, self, name)

    def _stop(self, name: str) -> None:
        self._timers.pop(name, None)

    def _terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        self._timers.clear()
        self.layer._remove(self)
        self.layer.events.append(TransactionTerminated(self))  # type: ignore[arg-type]

    def _fire(self, name: str, now: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.branch} {self.state.value}>"


class ClientTransaction(_Base):
    """One request we sent and the responses to it (§17.1)."""

    __slots__ = ("dest", "last_response", "ack")

    def __init__(self, layer: TransactionLayer, request: Request, dest: Any, reliable: bool, now: float) -> None:
        super().__init__(layer, request, reliable, client_key(request))
        self.dest = dest
        self.last_response: Response | None = None
        self.ack: Request | None = None
        t = layer.timers
        self.state = State.CALLING if request.method == "INVITE" else State.TRYING
        layer.events.append(Send(request, dest))
        if self.state is State.CALLING:
            if not reliable:
                self._start("A", now, t.t1)
            self._start("B", now, 64 * t.t1)
        else:
            if not reliable:
                self._start("E", now, t.t1)
            self._start("F", now, 64 * t.t1)

    def _fire(self, name: str, now: float) -> None:
        t = self.layer.timers
        ev = self.layer.events
        if name == "A" and self.state is State.CALLING:
            ev.append(Send(self.request, self.dest, retransmit=True))
            self._interval *= 2
            self._start("A", now, self._interval)
        elif name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            ev.append(Send(self.request, self.dest, retransmit=True))
            if self.state is State.TRYING:
                self._interval = min(2 * self._interval, t.t2)
            else:
                self._interval = t.t2
            self._start("E", now, self._interval)
        elif name in ("B", "F") and self.state in (State.CALLING, State.TRYING, State.PROCEEDING):
            if name == "B" and self.state is not State.CALLING:
                return
            ev.append(TransactionTimeout(self, name))
            self._terminate()
        elif name in ("D", "K", "M"):
            self._terminate()

    def _on_response(self, resp: Response, now: float) -> None:
        t = self.layer.timers
        ev = self.layer.events
        code = resp.status
        st = self.state
        if self.method == "INVITE":
            if st in (State.CALLING, State.PROCEEDING):
                self.last_response = resp
                if code < 200:
                    self.state = State.PROCEEDING
                    self._stop("A")
                    ev.append(ResponseReceived(resp, self))
                elif code < 300:
                    self.state = State.ACCEPTED
                    self._timers.clear()
                    self._start("M", now, 64 * t.t1)
                    ev.append(ResponseReceived(resp, self))
                else:
                    self.state = State.COMPLETED
                    self._timers.clear()
                    self.ack = make_ack(self.request, resp)
                    ev.append(Send(self.ack, self.dest))
                    ev.append(ResponseReceived(resp, self))
                    self._start("D", now, 0 if self.reliable else t.d)
            elif st is State.COMPLETED and code >= 300 and self.ack is not None:
                ev.append(Send(self.ack, self.dest, retransmit=True))
            elif st is State.ACCEPTED and 200 <= code < 300:
                ev.append(ResponseReceived(resp, self))
        else:
            if st in (State.TRYING, State.PROCEEDING):
                self.last_response = resp
                if code < 200:
                    self.state = State.PROCEEDING
                else:
                    self.state = State.COMPLETED
                    self._timers.clear()
                    self._start("K", now, 0 if self.reliable else t.t4)
                ev.append(ResponseReceived(resp, self))

    def transport_error(self) -> None:
        """The transport could not send the request (§17.1.4): fail as a timeout would."""
        if self.state is not State.TERMINATED:
            self.layer.events.append(TransactionTimeout(self, "transport"))
            self._terminate()


class ServerTransaction(_Base):
    """One request received and our responses to it (§17.2)."""

    __slots__ = ("source", "last_response")

    def __init__(self, layer: TransactionLayer, request: Request, source: Any, reliable: bool, key: tuple) -> None:
        super().__init__(layer, request, reliable, key)
        self.source = source
        self.last_response: Response | None = None
        self.state = State.PROCEEDING if request.method == "INVITE" else State.TRYING

    def respond(self, response: Response, now: float) -> None:
        """Send a response from the TU through this transaction.

        A 2xx to INVITE moves it to Accepted; the caller should use
        :meth:`TransactionLayer.send_2xx` for that so the 2xx is retransmitted until ACKed.
        """
        t = self.layer.timers
        ev = self.layer.events
        code = response.status
        st = self.state
        if st in (State.COMPLETED, State.CONFIRMED, State.TERMINATED) or (
            st is State.ACCEPTED and not 200 <= code < 300
        ):
            log.warning("%r: ignoring late %d response from the TU", self, code)
            return
        if self.method == "INVITE":
            if st is State.ACCEPTED:
                ev.append(Send(response, self.source, retransmit=True))
                return
            self.last_response = response
            ev.append(Send(response, self.source))
            if code < 200:
                return
            if code < 300:
                self.state = State.ACCEPTED
                self._start("L", now, 64 * t.t1)
            else:
                self.state = State.COMPLETED
                if not self.reliable:
                    self._start("G", now, t.t1)
                self._start("H", now, 64 * t.t1)
        else:
            self.last_response = response
            ev.append(Send(response, self.source))
            if code < 200:
                self.state = State.PROCEEDING
            else:
                self.state = State.COMPLETED
                self._start("J", now, 0 if self.reliable else 64 * t.t1)

    def _on_request(self, req: Request, now: float) -> bool:
        """A retransmission or the ACK arrived; True if the ACK should go up to the TU."""
        ev = self.layer.events
        if req.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._timers.clear()
                self._start("I", now, 0 if self.reliable else self.layer.timers.t4)
            return self.state is State.ACCEPTED
        if self.last_response is not None and self.state in (State.PROCEEDING, State.COMPLETED):
            ev.append(Send(self.last_response, self.source, retransmit=True))
        return False

    def _fire(self, name: str, now: float) -> None:
        ev = self.layer.events
        if name == "G" and self.state is State.COMPLETED and self.last_response is not None:
            ev.append(Send(self.last_response, self.source, retransmit=True))
            self._interval = min(2 * self._interval, self.layer.timers.t2)
            self._start("G", now, self._interval)
        elif name == "H" and self.state is State.COMPLETED:
            ev.append(TransactionTimeout(self, "H"))
            self._terminate()
        elif name in ("I", "J", "L"):
            self._terminate()

    def transport_error(self) -> None:
        if self.state is not State.TERMINATED:
            self.layer.events.append(TransactionTimeout(self, "transport"))
            self._terminate()


class _Retransmit2xx:
    """UAS core retransmission of a 2xx to INVITE until the ACK (§13.3.1.4)."""

    __slots__ = ("response", "dest", "interval", "started", "active")

    def __init__(self, response: Response, dest: Any, now: float, t1: float) -> None:
        self.response = response
        self.dest = dest
        self.interval = t1
        self.started = now
        self.active = True


class TransactionLayer:
    """All transactions of one user agent; see the module docstring for the protocol."""

    def __init__(self, timers: Timers | None = None) -> None:
        self.timers = timers or Timers()
        self.events: list[Event] = []
        self.clients: dict[tuple, ClientTransaction] = {}
        self.servers: dict[tuple, ServerTransaction] = {}
        self._heap: list[tuple[float, int, object, str]] = []
        self._seq = itertools.count()
        self._ok: dict[tuple[str, int], _Retransmit2xx] = {}

    # -- plumbing
    def pop_events(self) -> list[Event]:
        ev, self.events = self.events, []
        return ev

    def _schedule(self, at: float, owner: object, name: str) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), owner, name))

    def _remove(self, tx: _Base) -> None:
        table: dict = self.clients if isinstance(tx, ClientTransaction) else self.servers
        if table.get(tx.key) is tx:
            del table[tx.key]

    def next_deadline(self) -> float | None:
        """When ``tick`` must next be called (stale heap entries make it at worst early)."""
        while self._heap:
            at, _, owner, name = self._heap[0]
            if self._live(owner, name, at):
                return at
            heapq.heappop(self._heap)
        return None

    @staticmethod
    def _live(owner: object, name: str, at: float) -> bool:
        if isinstance(owner, _Retransmit2xx):
            return owner.active
        return owner._timers.get(name) == at  # type: ignore[attr-defined]

    def tick(self, now: float) -> None:
        """Fire every timer due at or before ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, owner, name = heapq.heappop(heap)
            if not self._live(owner, name, at):
                continue
            try:
                if isinstance(owner, _Retransmit2xx):
                    self._fire_2xx(owner, name, now)
                else:
                    owner._timers.pop(name, None)  # type: ignore[attr-defined]
                    owner._fire(name, now)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - a bug in one transaction must not stop the others
                log.exception("timer %s failed for %r", name, owner)

    # -- client side
    def send_request(self, request: Request, dest: Any, reliable: bool, now: float) -> ClientTransaction:
        """Start a client transaction (request must carry a top Via with a z9hG4bK branch)."""
        tx = ClientTransaction(self, request, dest, reliable, now)
        self.clients[tx.key] = tx
        return tx

    def send_stateless(self, message: Request | Response, dest: Any) -> None:
        """Send without a transaction: the ACK for a 2xx, or a response to an unmatched request."""
        self.events.append(Send(message, dest))

    # -- server side helpers
    def send_2xx(self, tx: ServerTransaction, response: Response, now: float) -> None:
        """Answer an INVITE with a 2xx and keep retransmitting it until ``receive`` sees its ACK."""
        tx.respond(response, now)
        key = (response.call_id, response.cseq[0])
        old = self._ok.get(key)
        if old is not None:
            old.active = False
        r = _Retransmit2xx(response, tx.source, now, self.timers.t1)
        self._ok[key] = r
        self._schedule(now + r.interval, r, "2xx")
        self._schedule(now + 64 * self.timers.t1, r, "giveup")

    def _fire_2xx(self, r: _Retransmit2xx, name: str, now: float) -> None:
        if name == "giveup":
            r.active = False
            self._ok.pop((r.response.call_id, r.response.cseq[0]), None)
            self.events.append(AckTimeout(r.response))
            return
        self.events.append(Send(r.response, r.dest, retransmit=True))
        r.interval = min(2 * r.interval, self.timers.t2)
        if now + r.interval < r.started + 64 * self.timers.t1:
            self._schedule(now + r.interval, r, "2xx")

    def find_invite(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL refers to (§9.2), if any."""
        try:
            return self.servers.get(server_key(cancel, "INVITE"))
        except SipSyntaxError:
            return None

    # -- input
    def receive(self, message: Request | Response, source: Any, reliable: bool, now: float) -> None:
        """Feed a parsed message from the transport (``source`` = where responses go)."""
        try:
            if isinstance(message, Response):
                self._receive_response(message, source, now)
            else:
                self._receive_request(message, source, reliable, now)
        except SipSyntaxError as exc:
            log.warning("dropping %r: %s", message, exc)
        except Exception:  # noqa: BLE001 - never let one message break the layer
            log.exception("transaction layer failed on %r", message)

    def _receive_response(self, resp: Response, source: Any, now: float) -> None:
        tx = self.clients.get(client_key(resp))
        if tx is None:
            self.events.append(StrayResponse(resp, source))
            return
        tx._on_response(resp, now)

    def _receive_request(self, req: Request, source: Any, reliable: bool, now: float) -> None:
        method = req.method
        key = server_key(req, method)
        tx = self.servers.get(key)
        if tx is not None:
            if tx._on_request(req, now):
                self._ack_2xx(req)
                self.events.append(RequestReceived(req, None, source))
            return
        if method == "ACK":
            self._ack_2xx(req)
            self.events.append(RequestReceived(req, None, source))
            return
        tx = ServerTransaction(self, req, source, reliable, key)
        self.servers[key] = tx
        self.events.append(RequestReceived(req, tx, source))

    def _ack_2xx(self, ack: Request) -> None:
        r = self._ok.pop((ack.call_id, ack.cseq[0]), None)
        if r is not None:
            r.active = False
