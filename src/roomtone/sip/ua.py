"""The asyncio SIP user agent: place and answer calls, in-dialog requests, call state.

This is the adapter that wires the sans-IO layers (``message``, ``transaction``, ``dialog``,
``auth``) to sockets (``transport``) and the event loop's clock. Media is not its business: SDP
bodies go in and out as ``bytes`` and the application (``roomtone.media`` / ``telephony``)
builds and reads them, e.g. with ``roomtone.sip.sdp``.

Quick tour::

    ua = UserAgent(host="127.0.0.1", port=5060, transports=("UDP", "TCP"))
    await ua.start()

    # --- placing a call (UAC)
    call = await ua.invite("sip:bob@198.51.100.2:5060", body=offer_sdp,
                           auth=("alice", "secret"))          # 401/407 answered automatically
    resp = await call.wait_answered()      # the 2xx (ACK already sent); raises CallFailed
    call.remote_body                       # the SDP answer (bytes)
    # or in one step: call = await ua.call("sip:bob@...", body=offer_sdp)
    await call.cancel()                    # before the answer: CANCEL (waits for a 1xx first)
    # invite() options: timeout=30 (ringing timeout, then CANCEL), transport="TCP" (when the
    # URI has no ;transport=), route=["<sip:proxy;lr>"] (outbound proxy), headers=[(name, value)],
    # from_user/from_display, on_provisional=lambda call, resp: ... (180/183 as they come)

    # --- answering calls (UAS): a callback ...
    async def on_invite(call: Call) -> None:
        call.request                       # the INVITE (headers, call.remote_body = its SDP)
        call.identity                      # authenticated user name, if an authenticator ran
        await call.ring()                  # 180 (or call.progress(sdp) for 183 with early media)
        await call.answer(answer_sdp)      # 200, returns once the ACK arrives
        # or: await call.reject(486)       # any 3xx-6xx
    ua.on_invite = on_invite
    # ... or an async iterator:  async for call in ua.incoming(): ...

    # --- inside the call (either side)
    r = await call.info(b"Signal=5\\r\\nDuration=160\\r\\n", "application/dtmf-relay")
    r = await call.reinvite(hold_sdp)      # re-INVITE (hold/unhold); ACK sent on 2xx
    r = await call.send_request("MESSAGE", b"hi", "text/plain")
    await call.hangup()                    # BYE if answered, CANCEL/reject if not
    await call.bye(headers=[("Reason", 'SIP ;cause=488 ;text="no answer"')])   # BYE saying why
    call.on_ack = lambda call, ack: ...    # each ACK of a 2xx we sent; call.ack is the latest

    # --- requests the peer sends inside the call
    def on_request(call: Call, req: Request) -> Reply | int | None:
        if req.method == "INFO":
            digit = parse_it(req.body)     # roomtone.dtmf.interpret_sip_dtmf
            return 200                     # or Reply(415), Reply(200, body=..., content_type=...)
        return None                        # None: the default answer (below)
    call.on_request = on_request           # may also be ``async def``
    call.add_listener(lambda call: print(call.state))   # state changes
    await call.wait_ended(); call.end_reason            # "remote BYE", "cancelled", ...

Call attributes: ``state`` (:class:`CallState`: CALLING, INCOMING, EARLY, ESTABLISHED, ENDED),
``direction`` ("outbound"/"inbound"), ``call_id``, ``request`` (the INVITE as sent/received),
``remote_body``/``remote_content_type`` (the peer's latest SDP), ``local_body``, ``identity``,
``transport`` ("UDP"/"TCP"/"TLS"), ``remote_address`` (:class:`Address` of the signalling peer),
``dialog`` (:class:`~roomtone.sip.dialog.Dialog`), ``end_reason``/``end_status`` once ENDED.
``ua.calls`` lists live calls; ``ua.local_uri()`` and ``ua.contact(transport)`` give our
addresses (e.g. the IP to put in SDP); ``ua.port`` the bound port (``port=0`` picks one, shared by
UDP and TCP). Our re-INVITE that crosses the peer's gets 491 from them: ``reinvite`` returns that
response and the application may retry after a random pause (§14.1); starting a re-INVITE while
one is pending raises ``CallFailed(491)``. A 481 or 408 to an in-dialog request ends the call.

Defaults when the application says nothing: OPTIONS (in or out of a dialog) is answered 200
with Allow/Accept; a re-INVITE without a handler (or handler returning None) is answered 200 with
``call.local_body`` (keeping media as it is; a re-INVITE *without* SDP gets the same body as a
fresh offer and the answer comes in its ACK: ``call.ack``/``call.on_ack``); INFO/MESSAGE/NOTIFY/
UPDATE/REFER without a handler get 501 (logged), so nothing is silently swallowed. An INVITE with no ``on_invite`` handler and
nobody iterating ``incoming()`` gets 480. In-dialog requests for unknown dialogs get 481, CSeq
out of order 500, crossing re-INVITEs 491 (§14).

Authentication:

- client: pass ``auth=(user, password)`` (or a ``DigestClient``) to ``invite``/``call``/
  ``request``, or set ``ua.credentials`` for all requests; a 401/407 is answered once per realm
  (again only on ``stale=true``), in-dialog requests included.
- server: set ``ua.authenticator`` to a callable ``(request, source) -> Response | str | None``
  (may be async): return a Response (e.g. a 401 challenge or 403) to refuse, a string (the
  authenticated identity, stored in ``call.identity``) or None to accept.
  :class:`DigestAuthenticator` wraps ``auth.Challenger`` for this. It runs for out-of-dialog
  requests other than ACK/CANCEL/OPTIONS.

Out-of-dialog requests the UA does not handle itself (MESSAGE, NOTIFY, REGISTER...) go to
``ua.on_request(request, source) -> Reply | int | None`` if set, else 405/501.

Timers are the transaction layer's (T1 500 ms by default; pass ``timers=Timers(t1=...)``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from roomtone.sip.auth import AuthStatus, Challenger, DigestClient, Secret
from roomtone.sip.dialog import Dialog, DialogTable, is_in_dialog, new_branch, new_call_id, new_tag
from roomtone.sip.message import (
    NameAddr,
    Request,
    Response,
    SipSyntaxError,
    SipURI,
    host_for_sip,
    parse_name_addr,
    parse_uri,
)
from roomtone.sip.transaction import (
    AckTimeout,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    Send,
    ServerTransaction,
    State,
    StrayResponse,
    Timers,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    make_cancel,
)
from roomtone.sip.transport import DEFAULT_PORTS, Address, SipTransport, resolve

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY, UPDATE, REFER"
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()


class CallState(Enum):
    CALLING = "calling"  # our INVITE sent, no provisional yet
    INCOMING = "incoming"  # their INVITE received, not answered
    EARLY = "early"  # 1xx sent/received
    ESTABLISHED = "established"  # 2xx sent/received
    ENDED = "ended"


class CallFailed(Exception):
    """A call (or request) ended without success; ``status`` is the SIP code (408 for timeout)."""

    def __init__(self, status: int, reason: str, response: Response | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.response = response


@dataclass
class Reply:
    """What an application handler answers to a request."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    reason: str | None = None


RequestHandler = Callable[["Call", Request], "Reply | int | None | Awaitable[Reply | int | None]"]
Authenticator = Callable[[Request, Address], "Response | str | None | Awaitable[Response | str | None]"]
Credentials = tuple[str, str] | DigestClient | None


def _as_reply(value: Reply | int | None) -> Reply | None:
    if value is None:
        return None
    if isinstance(value, int):
        return Reply(value)
    return value


def _target(text: str) -> NameAddr:
    """A call target: a bare URI (its ;params are URI params) or a name-addr with <...>."""
    return parse_name_addr(text) if "<" in text else NameAddr(parse_uri(text))


def _client(auth: Credentials) -> DigestClient | None:
    if auth is None or isinstance(auth, DigestClient):
        return auth
    return DigestClient(auth[0], auth[1])


@dataclass
class _Pending:
    future: asyncio.Future
    call: Call | None = None
    on_provisional: Callable[[Response], None] | None = None


class Call:
    """One call (an INVITE dialog), outbound (we are UAC) or inbound (UAS).

    Attributes the application reads: ``state`` (:class:`CallState`), ``direction``
    (``"outbound"``/``"inbound"``), ``call_id``, ``request`` (the initial INVITE, latest
    authenticated copy for outbound), ``dialog``, ``remote_body``/``remote_content_type`` (the
    peer's latest session description: offer on an inbound INVITE, answer for outbound, updated by
    re-INVITEs), ``local_body`` (ours), ``identity`` (inbound, from the authenticator),
    ``end_reason`` and ``end_status`` once ended, ``remote_address`` (where signalling comes from).
    """

    def __init__(self, ua: UserAgent, direction: str, request: Request, transport: str) -> None:
        self.ua = ua
        self.direction = direction
        self.request = request
        self.transport = transport
        self.call_id = request.call_id
        self.state = CallState.CALLING if direction == "outbound" else CallState.INCOMING
        self.dialog: Dialog | None = None
        self.local_body: bytes = b""
        self.local_content_type: str = "application/sdp"
        self.remote_body: bytes = request.body if direction == "inbound" else b""
        self.remote_content_type: str | None = request.content_type if direction == "inbound" else None
        self.identity: str | None = None
        self.end_reason: str | None = None
        self.end_status: int | None = None
        self.remote_address: Address | None = None
        self.on_request: RequestHandler | None = None
        #: the latest ACK for a 2xx we sent (initial answer or re-INVITE); its body is the SDP
        #: answer when our 2xx carried the offer (late offer, RFC 3261 §13.2.1)
        self.ack: Request | None = None
        #: ``on_ack(call, ack)`` once per ACK of a 2xx we sent (retransmitted ACKs are not repeated)
        self.on_ack: Callable[[Call, Request], Any] | None = None
        self._listeners: list[Callable[[Call], Any]] = []
        self._ended = asyncio.Event()
        self._answered: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        # UAC
        self._dest: Address | None = None
        self._invite_tx: ClientTransaction | None = None
        self._got_provisional = False
        self._cancel_wanted = False
        self._cancel_sent: ClientTransaction | None = None
        #: extra headers for our CANCEL, computed when it is sent (e.g. from room attributes)
        self.cancel_headers: Callable[[], Iterable[tuple[str, str]]] | None = None
        self._acks: dict[int, tuple[Request, Address]] = {}
        # UAS
        self._server_tx: ServerTransaction | None = None
        self._local_tag: str | None = None
        self._ack_waiter: asyncio.Future[Request] | None = None
        self._last_provisional: Response | None = None
        self._refresher: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"<Call {self.direction} {self.call_id} {self.state.value}>"

    # -- state
    def add_listener(self, callback: Callable[[Call], Any]) -> None:
        """Call ``callback(call)`` on every state change."""
        self._listeners.append(callback)

    def _set_state(self, state: CallState) -> None:
        if self.state is state or self.state is CallState.ENDED:
            return
        self.state = state
        for cb in list(self._listeners):
            try:
                cb(self)
            except Exception:  # noqa: BLE001
                log.exception("call state listener failed")

    def _end(self, reason: str, status: int | None = None) -> None:
        if self.state is CallState.ENDED:
            return
        self.end_reason = reason
        self.end_status = status
        self._set_state(CallState.ENDED)
        self._ended.set()
        if not self._answered.done():
            self._answered.set_exception(CallFailed(status or 487, reason))
            self._answered.exception()  # mark retrieved: nobody may be awaiting
        if self._ack_waiter is not None and not self._ack_waiter.done():
            self._ack_waiter.set_exception(CallFailed(status or 487, reason))
            self._ack_waiter.exception()
        if self.dialog is not None:
            self.ua.dialogs.remove(self.dialog)
        self.ua._calls.pop(self.call_id, None)
        log.info("call %s ended: %s", self.call_id, reason)

    async def wait_ended(self) -> None:
        await self._ended.wait()

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    # -- UAC
    async def wait_answered(self) -> Response:
        """The 2xx that answered our INVITE (ACK already sent). Raises :class:`CallFailed`."""
        return await asyncio.shield(self._answered)

    async def cancel(self) -> None:
        """CANCEL our unanswered INVITE (§9.1; sent once a provisional response arrived)."""
        if self.direction != "outbound" or self.state not in (CallState.CALLING, CallState.EARLY):
            return
        self._cancel_wanted = True
        if self._got_provisional:
            self.ua._send_cancel(self)
        try:
            await self.wait_answered()
        except CallFailed:
            pass

    # -- UAS
    def _respond(self, status: int, reason: str | None = None, body: bytes = b"",
                 content_type: str | None = None, headers: Iterable[tuple[str, str]] = ()) -> Response:
        assert self._server_tx is not None
        resp = Response.for_request(self.request, status, reason, to_tag=self._local_tag, headers=headers)
        if 100 < status < 300:
            resp.add("Contact", self.ua.contact(self.transport))
        if status < 300 or status == 405:
            resp.add("Allow", ALLOW)
        if "Server" not in resp:  # an application-given Server replaces ours
            resp.add("Server", self.ua.user_agent)
        if body:
            resp.add("Content-Type", content_type or "application/sdp")
            resp.body = body
        return resp

    async def ring(self, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send 180 Ringing."""
        self._provisional(180, b"", None, headers)

    async def progress(self, body: bytes, content_type: str = "application/sdp",
                       headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send 183 Session Progress with a body (early media answer)."""
        self.local_body = body
        self._provisional(183, body, content_type, headers)

    def _provisional(self, status: int, body: bytes, ct: str | None, headers: Iterable[tuple[str, str]]) -> None:
        if self.state not in (CallState.INCOMING, CallState.EARLY) or self._server_tx is None:
            raise CallFailed(481, f"call is {self.state.value}")
        resp = self._respond(status, None, body, ct, headers)
        self._server_tx.respond(resp, self.ua.now())
        self._set_state(CallState.EARLY)
        self.ua._pump()
        if self._refresher is None and self.ua.provisional_refresh:
            self._refresher = self.ua._spawn(self._refresh_provisional())
        self._last_provisional = resp

    async def _refresh_provisional(self) -> None:
        """RFC 3261 §13.3.1.1: a UAS that does not answer within three minutes sends a
        provisional response at least every minute, or proxies (Timer C) cancel the call. An
        early-media call waiting for someone in its room can take that long: resend the last one."""
        while True:
            await asyncio.sleep(self.ua.provisional_refresh)
            if self.state is not CallState.EARLY or self._server_tx is None or self._last_provisional is None:
                return
            self._server_tx.respond(self._last_provisional, self.ua.now())
            self.ua._pump()

    async def answer(self, body: bytes = b"", content_type: str = "application/sdp",
                     headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send 200 OK (retransmitted until ACKed) and return when the ACK arrives.

        Raises :class:`CallFailed` if the call was cancelled first or no ACK came in 64*T1
        (the UA then sends BYE, as RFC 3261 §13.3.1.4 asks).

        Late offer (the INVITE had no body, RFC 3261 §13.2.1): ``body`` is then our *offer* and
        the peer's answer arrives in the ACK: ``call.ack.body`` (also ``call.remote_body``).
        Checking it is the application's job (``roomtone.media.call.answer_call`` does).
        """
        if self.state not in (CallState.INCOMING, CallState.EARLY) or self._server_tx is None:
            raise CallFailed(481, f"cannot answer: call is {self.state.value}")
        self.local_body = body
        self.local_content_type = content_type
        resp = self._respond(200, None, body, content_type, headers)
        assert self.dialog is not None
        self.dialog.confirmed = True
        self._ack_waiter = asyncio.get_running_loop().create_future()
        self.ua.layer.send_2xx(self._server_tx, resp, self.ua.now())
        self._set_state(CallState.ESTABLISHED)
        if not self._answered.done():
            self._answered.set_result(resp)
        self.ua._pump()
        await asyncio.shield(self._ack_waiter)

    async def reject(self, status: int = 486, reason: str | None = None,
                     headers: Iterable[tuple[str, str]] = ()) -> None:
        """Refuse the incoming call with a 3xx-6xx final response."""
        if not 300 <= status <= 699:
            raise ValueError("reject needs a 3xx-6xx status")
        if self.state not in (CallState.INCOMING, CallState.EARLY) or self._server_tx is None:
            return
        self._server_tx.respond(self._respond(status, reason, headers=headers), self.ua.now())
        self._end(f"rejected with {status}", status)
        self.ua._pump()

    # -- both
    async def send_request(self, method: str, body: bytes = b"", content_type: str | None = None,
                           headers: Iterable[tuple[str, str]] = (), auth: Credentials = None) -> Response:
        """Send an in-dialog request and return its final response (408 on timeout)."""
        if self.dialog is None or self.state is CallState.ENDED:
            raise CallFailed(481, f"no dialog: call is {self.state.value}")
        dialog = self.dialog
        client = _client(auth) or self.ua._default_client()
        hdrs = list(headers)
        is_invite = method == "INVITE"
        if is_invite:
            if dialog.invite_in_progress or dialog.remote_invite_pending:
                raise CallFailed(491, "an INVITE transaction is already in progress")
            dialog.invite_in_progress = True
        try:
            extra: list[tuple[str, str]] = []
            for _attempt in range(3):
                req = dialog.create_request(method, body, content_type, hdrs + extra)
                dest = await self.ua._resolve_uri(dialog.next_hop(), self.transport)
                resp = await self.ua._transact(req, dest, self)
                if resp.status in (401, 407) and client is not None:
                    authz = self.ua._authorize(client, req, resp)
                    if authz is not None:
                        extra = [authz]
                        continue
                break
            if is_invite:
                if 200 <= resp.status < 300:
                    dialog.on_response(resp)
                    self.local_body = body or self.local_body
                    if resp.body:
                        self.remote_body = resp.body
                        self.remote_content_type = resp.content_type
                    self.ua._send_ack(self, dialog.create_ack(req.cseq[0]), dest)
                elif resp.status == 481 or resp.status == 408:
                    await self._drop_after_failure(resp.status)
            elif resp.status in (481, 408):
                await self._drop_after_failure(resp.status)
            return resp
        finally:
            if is_invite:
                dialog.invite_in_progress = False

    async def _drop_after_failure(self, status: int) -> None:
        # §12.2.1.2: 481/408 to an in-dialog request terminates the dialog
        if self.state is not CallState.ENDED:
            self._end(f"in-dialog request got {status}", status)

    async def info(self, body: bytes, content_type: str = "application/dtmf-relay") -> Response:
        """Send INFO with a body (e.g. DTMF relay); returns the final response."""
        return await self.send_request("INFO", body, content_type)

    async def reinvite(self, body: bytes, content_type: str = "application/sdp") -> Response:
        """Send a re-INVITE (new offer: hold, unhold, codec change). ACK is sent on 2xx."""
        return await self.send_request("INVITE", body, content_type)

    async def bye(self, headers: Iterable[tuple[str, str]] = (), reason: str = "local BYE") -> Response | None:
        """Hang up an established call with BYE; the call ends whatever the answer.

        ``headers`` go on the BYE (e.g. a ``Reason`` header, RFC 3326, saying why we hang up);
        ``reason`` becomes ``end_reason``.
        """
        if self.state is not CallState.ESTABLISHED or self.dialog is None:
            return None
        dialog = self.dialog
        req = dialog.create_request("BYE", headers=list(headers))
        dest = await self.ua._resolve_uri(dialog.next_hop(), self.transport)
        self._end(reason)
        return await self.ua._transact(req, dest, None)

    async def hangup(self, status: int = 603) -> None:
        """End the call however it stands: BYE, CANCEL, or reject with ``status``."""
        if self.state is CallState.ESTABLISHED:
            await self.bye()
        elif self.direction == "outbound":
            await self.cancel()
        else:
            await self.reject(status)


class DigestAuthenticator:
    """``ua.authenticator`` using digest auth (``sip.auth``): challenge, verify, 403 on bad password.

    ``lookup(username, realm)`` returns the password (or HA1 map, or None for unknown users).
    ``proxy=True`` challenges with 407/Proxy-Authenticate instead of 401/WWW-Authenticate.
    """

    def __init__(self, challenger: Challenger, lookup: Callable[[str, str], Secret], *,
                 methods: Iterable[str] = ("INVITE", "MESSAGE", "REFER", "SUBSCRIBE", "REGISTER"),
                 proxy: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.challenger = challenger
        self.lookup = lookup
        self.methods = frozenset(methods)
        self.proxy = proxy
        self.clock = clock

    def __call__(self, request: Request, source: Address) -> Response | str | None:
        if request.method not in self.methods:
            return None
        hdr = "Proxy-Authorization" if self.proxy else "Authorization"
        now = self.clock()
        result = self.challenger.verify(request.get(hdr), request.method, request.uri, now, self.lookup, request.body)
        if result.ok:
            return result.username or ""
        log.info("auth %s from %s for %s: %s", result.status.value, source, result.username, result.reason)
        if result.status in (AuthStatus.BAD_PASSWORD, AuthStatus.UNKNOWN_USER):
            return Response.for_request(request, 403, "Forbidden (bad credentials)", to_tag=new_tag())
        code = 407 if self.proxy else 401
        resp = Response.for_request(request, code, to_tag=new_tag())
        for v in self.challenger.challenge(now, stale=result.stale):
            resp.add("Proxy-Authenticate" if self.proxy else "WWW-Authenticate", v)
        return resp


class UserAgent:
    """An asyncio SIP user agent; see the module docstring for the API tour."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5060, *,
                 transports: Iterable[str] = ("UDP", "TCP"), user: str = "roomtone",
                 display_name: str | None = None, timers: Timers | None = None,
                 user_agent: str = "roomtone", tls_server_context: Any = None,
                 tls_client_context: Any = None, tls_port: int | None = None) -> None:
        self.host = host
        self.port = port
        self.transport_names = [t.upper() for t in transports]
        self.user = user
        self.display_name = display_name
        self.user_agent = user_agent
        self.tls_port = tls_port
        #: seconds between resends of an unanswered call's last provisional (RFC 3261 §13.3.1.1)
        self.provisional_refresh = 60.0
        self.layer = TransactionLayer(timers)
        self.dialogs = DialogTable()
        self.transport = SipTransport(self._on_message, tls_server_context=tls_server_context,
                                      tls_client_context=tls_client_context)
        self.transport.on_error = self._on_transport_error
        self.on_invite: Callable[[Call], Any] | None = None
        self.on_request: Callable[[Request, Address], Any] | None = None
        self.authenticator: Authenticator | None = None
        self.credentials: Credentials = None
        self._calls: dict[str, Call] = {}
        self._pending: dict[ClientTransaction, _Pending] = {}
        self._queue: asyncio.Queue[Call] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()
        self._pumping = False

    # -- lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # with port 0, UDP and TCP must still share one number: the first transport picks it,
        # and if the others cannot bind it (taken for that protocol) we start over
        for attempt in range(20):
            port = self.port
            try:
                for t in self.transport_names:
                    p = (self.tls_port or 0) if t == "TLS" else port
                    _, bound = await self.transport.listen(t, self.host, p)
                    if port == 0 and t != "TLS":
                        port = bound
            except OSError:
                await self.transport.close()
                self.transport = SipTransport(self._on_message,
                                              tls_server_context=self.transport.tls_server_context,
                                              tls_client_context=self.transport.tls_client_context)
                self.transport.on_error = self._on_transport_error
                if self.port != 0 or attempt == 19:
                    raise
                continue
            self.port = port
            return

    async def close(self) -> None:
        for call in list(self._calls.values()):
            try:
                await asyncio.wait_for(call.hangup(), 1.0)
            except (TimeoutError, CallFailed):
                pass
        if self._timer:
            self._timer.cancel()
        for t in list(self._tasks):
            t.cancel()
        await self.transport.close()

    async def __aenter__(self) -> UserAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def calls(self) -> list[Call]:
        return list(self._calls.values())

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def contact(self, transport: str = "UDP") -> str:
        host, port = self.transport.sent_by(transport)
        tp = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"<sip:{self.user}@{host_for_sip(host)}:{port}{tp}>"

    def local_uri(self, user: str | None = None) -> str:
        host, _ = self.transport.sent_by(self.transport_names[0])
        return f"sip:{user or self.user}@{host_for_sip(host)}"

    async def incoming(self) -> AsyncIterator[Call]:
        """Iterate over incoming calls (an alternative to ``on_invite``)."""
        self._queue = asyncio.Queue()
        try:
            while True:
                yield await self._queue.get()
        finally:
            self._queue = None

    # -- the event pump
    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("UA task failed", exc_info=task.exception())

    def _on_message(self, msg: Request | Response, source: Address) -> None:
        self.layer.receive(msg, source, source.reliable, self.now())
        self._pump()

    def _on_transport_error(self, msg: Request | Response, dest: Address) -> None:
        if isinstance(msg, Request):
            for tx in list(self._pending):
                if tx.request is msg:
                    tx.transport_error()
        self._pump()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.layer.tick(self.now())
        self._pump()

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            while self.layer.events:
                for ev in self.layer.pop_events():
                    try:
                        self._dispatch(ev)
                    except Exception:  # noqa: BLE001 - one bad event must not stop the UA
                        log.exception("UA failed handling %r", ev)
        finally:
            self._pumping = False
        d = self.layer.next_deadline()
        if d is None:
            return
        if self._timer_at is None or d < self._timer_at - 1e-6:
            if self._timer:
                self._timer.cancel()
            assert self._loop is not None
            self._timer = self._loop.call_at(d, self._on_timer)
            self._timer_at = d

    def _dispatch(self, ev: object) -> None:
        if isinstance(ev, Send):
            self.transport.send(ev.message, ev.dest)
        elif isinstance(ev, RequestReceived):
            self._handle_request(ev.request, ev.transaction, ev.source)
        elif isinstance(ev, ResponseReceived):
            self._handle_response(ev.response, ev.transaction)
        elif isinstance(ev, StrayResponse):
            self._handle_stray(ev.response)
        elif isinstance(ev, TransactionTimeout):
            tx = ev.transaction
            if isinstance(tx, ClientTransaction):
                p = self._pending.pop(tx, None)
                if p is not None and not p.future.done():
                    timeout = Response.for_request(tx.request, 408, f"Request Timeout (timer {ev.timer})")
                    p.future.set_result(timeout)
            else:
                log.info("%r: no ACK for our final response (timer %s)", tx, ev.timer)
        elif isinstance(ev, AckTimeout):
            call = self._calls.get(ev.response.call_id)
            if call is not None and call.state is CallState.ESTABLISHED:
                # §13.3.1.4 (initial INVITE) and §14.2 (re-INVITE): no ACK for our 2xx ends the dialog
                log.warning("call %s: no ACK for our 200 (CSeq %d) within 64*T1; sending BYE",
                            call.call_id, ev.response.cseq[0])
                if call._ack_waiter and not call._ack_waiter.done():
                    call._ack_waiter.set_exception(CallFailed(408, "no ACK"))
                    call._ack_waiter.exception()
                self._spawn(call.bye())
        elif isinstance(ev, TransactionTerminated):
            tx = ev.transaction
            if isinstance(tx, ClientTransaction):
                p = self._pending.pop(tx, None)
                if p is not None and not p.future.done():
                    p.future.set_exception(CallFailed(503, "transaction ended without a final response"))

    # -- client side
    def _default_client(self) -> DigestClient | None:
        c = self.credentials
        if c is not None and not isinstance(c, DigestClient):
            c = self.credentials = DigestClient(c[0], c[1])
        return c

    def _authorize(self, client: DigestClient, req: Request, resp: Response) -> tuple[str, str] | None:
        hdr = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        values = resp.raw(hdr)
        if not values or not client.should_retry(values):
            log.warning("%s %s: %d and credentials refused or none usable", req.method, req.uri, resp.status)
            return None
        value = client.respond(values, req.method, req.uri, req.body)
        if not isinstance(value, str):
            log.warning("cannot answer challenge for %s: %s", req.uri, getattr(value, "reason", value))
            return None
        return ("Authorization" if resp.status == 401 else "Proxy-Authorization", value)

    async def _resolve_uri(self, uri: SipURI, default_transport: str) -> Address:
        transport = uri.params.get("transport")
        t = transport.upper() if transport else ("TLS" if uri.scheme == "sips" else default_transport)
        if t not in self.transport_names:
            t = self.transport_names[0]
        host = uri.params.get("maddr") or uri.host
        return await resolve(host, uri.port or DEFAULT_PORTS.get(t, 5060), t)

    def _start_client(self, req: Request, dest: Address, call: Call | None,
                      on_provisional: Callable[[Response], None] | None = None) -> tuple[ClientTransaction, asyncio.Future]:
        req.prepend("Via", self.transport.via_for(dest.transport, new_branch()))
        assert self._loop is not None
        fut: asyncio.Future[Response] = self._loop.create_future()
        tx = self.layer.send_request(req, dest, dest.reliable, self.now())
        self._pending[tx] = _Pending(fut, call, on_provisional)
        self._pump()
        return tx, fut

    async def _transact(self, req: Request, dest: Address, call: Call | None) -> Response:
        _, fut = self._start_client(req, dest, call)
        return await fut

    def _handle_response(self, resp: Response, tx: ClientTransaction) -> None:
        p = self._pending.get(tx)
        if tx.method == "INVITE" and 200 <= resp.status < 300:
            call = p.call if p else None
            if call is None:
                call = self._calls.get(resp.call_id)
            if call is not None:
                self._invite_2xx(call, tx, resp)
            if p is not None and not p.future.done():
                p.future.set_result(resp)
            return
        if p is None:
            return
        if resp.status < 200:
            if p.on_provisional is not None:
                p.on_provisional(resp)
            return
        self._pending.pop(tx, None)
        if not p.future.done():
            p.future.set_result(resp)

    def _invite_2xx(self, call: Call, tx: ClientTransaction, resp: Response) -> None:
        """ACK a 2xx (first or retransmitted, initial or re-INVITE)."""
        num = resp.cseq[0]
        sent = call._acks.get(num)
        if sent is not None:
            self.layer.send_stateless(sent[0], sent[1])
            return
        if call._invite_tx is not tx:
            return  # a re-INVITE's 2xx: Call.send_request builds its ACK
        tag = resp.to.tag or ""
        if call.dialog is not None and call.dialog.confirmed and call.dialog.remote_tag != tag:
            # a forked second answer: ACK it and hang that leg up (we keep the first)
            extra = Dialog.from_uac(tx.request, resp)
            dest = tx.dest
            self.layer.send_stateless(self._with_via(extra.create_ack(num), dest), dest)
            bye = extra.create_request("BYE")
            self._spawn(self._transact(bye, dest, None))
            return
        if call.dialog is None or call.dialog.remote_tag != tag:
            if call.dialog is not None:
                self.dialogs.remove(call.dialog)
            call.dialog = Dialog.from_uac(tx.request, resp, self.contact(call.transport))
            self.dialogs.add(call.dialog)
        call.dialog.confirmed = True
        call.dialog.on_response(resp)
        call.remote_body = resp.body or call.remote_body
        call.remote_content_type = resp.content_type or call.remote_content_type
        ack = call.dialog.create_ack(num)
        self._spawn(self._ack_to_target(call, ack, tx.dest))
        call._set_state(CallState.ESTABLISHED)
        if call._cancel_wanted:
            self._spawn(call.bye())  # CANCEL lost the race with the 2xx: end it properly
        elif not call._answered.done():
            call._answered.set_result(resp)

    async def _ack_to_target(self, call: Call, ack: Request, fallback: Address) -> None:
        assert call.dialog is not None
        try:
            dest = await self._resolve_uri(call.dialog.next_hop(), call.transport)
        except (OSError, SipSyntaxError):
            dest = fallback
        self._send_ack(call, ack, dest)

    def _with_via(self, req: Request, dest: Address) -> Request:
        req.prepend("Via", self.transport.via_for(dest.transport, new_branch()))
        return req

    def _send_ack(self, call: Call, ack: Request, dest: Address) -> None:
        self._with_via(ack, dest)
        call._acks[ack.cseq[0]] = (ack, dest)
        self.layer.send_stateless(ack, dest)
        self._pump()

    def _handle_stray(self, resp: Response) -> None:
        if resp.cseq[1] == "INVITE" and 200 <= resp.status < 300:
            call = self._calls.get(resp.call_id)
            if call is not None and resp.cseq[0] in call._acks:
                ack, dest = call._acks[resp.cseq[0]]
                self.layer.send_stateless(ack, dest)
                return
        log.debug("stray response dropped: %r", resp)

    def _send_cancel(self, call: Call) -> None:
        tx = call._invite_tx
        if tx is None or tx.state not in (State.CALLING, State.PROCEEDING) or call._cancel_sent is tx:
            return
        call._cancel_sent = tx  # one CANCEL per INVITE, however many 1xx follow
        inv = tx.request
        cancel = make_cancel(inv)
        if call.cancel_headers is not None:
            try:
                for name, value in call.cancel_headers():
                    cancel.add(name, value)
            except Exception:  # noqa: BLE001  (the CANCEL goes out regardless)
                log.exception("call %s: cancel_headers failed", call.call_id)
        ctx = self.layer.send_request(cancel, tx.dest, tx.dest.reliable, self.now())
        assert self._loop is not None
        self._pending[ctx] = _Pending(self._loop.create_future())
        self._pump()

    async def invite(self, to: str, body: bytes = b"", *, content_type: str = "application/sdp",
                     from_user: str | None = None, from_display: str | None = None,
                     headers: Iterable[tuple[str, str]] = (), auth: Credentials = None,
                     transport: str | None = None, route: Iterable[str] = (),
                     on_provisional: Callable[[Call, Response], Any] | None = None,
                     timeout: float | None = None) -> Call:
        """Start an outbound call and return it at once (await ``call.wait_answered()``).

        ``to`` is a SIP URI or name-addr. ``route`` pre-loads Route headers (an outbound proxy,
        ``"<sip:proxy.example.com;lr>"``): the request goes to the first one. ``transport``
        applies when the URI has no ``transport`` parameter. ``timeout``: seconds to wait for an
        answer before cancelling (ringing timeout); without it only Timer B (no response at
        all in 64*T1) ends an unanswered call.
        """
        na = _target(to)
        ruri = na.uri
        tp = (transport or "UDP").upper()
        routes = list(route)
        hop = parse_name_addr(routes[0]).uri if routes else ruri
        dest = await self._resolve_uri(hop, tp)
        from_na = NameAddr(SipURI("sip", from_user or self.user, host=self.transport.sent_by(dest.transport)[0]),
                           from_display if from_display is not None else self.display_name,
                           {"tag": new_tag()})
        from_na.uri.host = host_for_sip(from_na.uri.host)
        req = Request("INVITE", str(ruri))
        req.add("Max-Forwards", "70")
        for r in routes:
            req.add("Route", r)
        req.add("From", str(from_na))
        req.add("To", str(NameAddr(ruri, na.display)))
        req.add("Call-ID", new_call_id())
        req.add("CSeq", "1 INVITE")
        req.add("Contact", self.contact(dest.transport))
        req.add("Allow", ALLOW)
        extra = list(headers)
        if not any(n.lower() == "user-agent" for n, _ in extra):  # a given User-Agent replaces ours
            req.add("User-Agent", self.user_agent)
        for n, v in extra:
            req.add(n, v)
        if body:
            req.add("Content-Type", content_type)
        req.body = body
        call = Call(self, "outbound", req, dest.transport)
        call.local_body = body
        call.local_content_type = content_type
        call._dest = dest
        call.remote_address = dest
        self._calls[call.call_id] = call
        self._spawn(self._run_uac(call, req, dest, _client(auth) or self._default_client(), on_provisional))
        if timeout is not None:
            self._spawn(self._ring_timeout(call, timeout))
        return call

    async def _ring_timeout(self, call: Call, timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(call._answered), timeout)
        except TimeoutError:
            log.info("call %s: no answer in %.1f s; cancelling", call.call_id, timeout)
            call.end_reason = "no answer (timeout)"
            await call.cancel()
        except CallFailed:
            pass

    async def call(self, to: str, body: bytes = b"", **kwargs: Any) -> Call:
        """``invite`` and wait for the answer; raises :class:`CallFailed`."""
        c = await self.invite(to, body, **kwargs)
        await c.wait_answered()
        return c

    async def _run_uac(self, call: Call, req: Request, dest: Address, client: DigestClient | None,
                       on_provisional: Callable[[Call, Response], Any] | None) -> None:
        def provisional(resp: Response) -> None:
            call._got_provisional = True
            tag = resp.to.tag
            if tag and resp.status > 100 and call.dialog is None:
                tx = call._invite_tx
                assert tx is not None
                call.dialog = Dialog.from_uac(tx.request, resp, self.contact(call.transport))
                self.dialogs.add(call.dialog)
            if resp.status > 100:
                if resp.body:
                    call.remote_body = resp.body
                    call.remote_content_type = resp.content_type
                call._set_state(CallState.EARLY)
            if on_provisional is not None:
                try:
                    on_provisional(call, resp)
                except Exception:  # noqa: BLE001
                    log.exception("on_provisional failed")
            if call._cancel_wanted:
                self._send_cancel(call)

        try:
            for _attempt in range(4):
                tx, fut = self._start_client(req, dest, call, provisional)
                call._invite_tx = tx
                call.request = req
                resp = await fut
                if resp.status in (401, 407) and client is not None and not call._cancel_wanted:
                    authz = self._authorize(client, req, resp)
                    if authz is not None:
                        req = self._next_attempt(req, authz)
                        continue
                break
        except CallFailed as exc:
            call._end(exc.reason, exc.status)
            return
        if 200 <= resp.status < 300:
            return  # handled by _invite_2xx
        if call.dialog is not None and not call.dialog.confirmed:
            self.dialogs.remove(call.dialog)
            call.dialog = None
        reason = f"{resp.status} {resp.reason}"
        if resp.status == 487 and call._cancel_wanted:
            reason = call.end_reason if call.end_reason else "cancelled"
        if not call._answered.done():
            call._answered.set_exception(CallFailed(resp.status, resp.reason, resp))
            call._answered.exception()
        call._end(reason, resp.status)

    def _next_attempt(self, req: Request, authz: tuple[str, str]) -> Request:
        nxt = Request(req.method, req.uri, body=req.body)
        for name, value in req.items():
            low = name.lower()
            if low == "via" or low in ("authorization", "proxy-authorization"):
                continue
            if low == "cseq":
                value = f"{req.cseq[0] + 1} {req.method}"
            nxt.add(name, value)
        nxt.add(*authz)
        return nxt

    async def request(self, method: str, uri: str, body: bytes = b"", *, content_type: str | None = None,
                      headers: Iterable[tuple[str, str]] = (), auth: Credentials = None,
                      transport: str | None = None) -> Response:
        """Send an out-of-dialog request (OPTIONS, MESSAGE...) and return its final response."""
        ruri = _target(uri).uri
        dest = await self._resolve_uri(ruri, (transport or "UDP").upper())
        req = Request(method, str(ruri))
        req.add("Max-Forwards", "70")
        req.add("From", f"<{self.local_uri()}>;tag={new_tag()}")
        req.add("To", f"<{ruri}>")
        req.add("Call-ID", new_call_id())
        req.add("CSeq", f"1 {method}")
        req.add("User-Agent", self.user_agent)
        for n, v in headers:
            req.add(n, v)
        if body:
            req.add("Content-Type", content_type or "text/plain")
        req.body = body
        client = _client(auth) or self._default_client()
        for _attempt in range(3):
            resp = await self._transact(req, dest, None)
            if resp.status in (401, 407) and client is not None:
                authz = self._authorize(client, req, resp)
                if authz is not None:
                    req = self._next_attempt(req, authz)
                    continue
            return resp
        return resp

    async def options(self, uri: str, **kwargs: Any) -> Response:
        return await self.request("OPTIONS", uri, **kwargs)

    # -- server side
    def _reply(self, tx: ServerTransaction, req: Request, status: int, reason: str | None = None,
               headers: Iterable[tuple[str, str]] = (), body: bytes = b"", content_type: str | None = None,
               to_tag: str | None = None) -> None:
        resp = Response.for_request(req, status, reason, to_tag=to_tag or new_tag(), headers=headers)
        if status == 405 or (req.method == "OPTIONS" and status < 300):
            resp.add("Allow", ALLOW)
        resp.add("Server", self.user_agent)
        if body:
            resp.add("Content-Type", content_type or "application/sdp")
            resp.body = body
        tx.respond(resp, self.now())

    def _handle_request(self, req: Request, tx: ServerTransaction | None, source: Address) -> None:
        method = req.method
        if tx is None:  # ACK outside a transaction: for a 2xx
            dialog = self.dialogs.for_request(req)
            call = self._calls.get(req.call_id)
            if dialog is not None and call is not None and call.dialog is dialog:
                if call.ack is not None and call.ack.cseq[0] >= req.cseq[0]:
                    return  # a retransmitted ACK (it crossed a 2xx retransmission)
                call.ack = req
                if req.body:
                    call.remote_body = req.body
                    call.remote_content_type = req.content_type
                if call._ack_waiter is not None and not call._ack_waiter.done():
                    call._ack_waiter.set_result(req)
                if call.on_ack is not None:
                    try:
                        call.on_ack(call, req)
                    except Exception:  # noqa: BLE001
                        log.exception("on_ack failed for %s", call.call_id)
            else:
                log.debug("ACK for no dialog dropped: %r", req)
            return
        if method == "CANCEL":
            self._handle_cancel(req, tx)
            return
        mf = req.get("max-forwards")
        if mf is not None and mf.strip() == "0" and method != "OPTIONS":
            self._reply(tx, req, 483)
            return
        require = [r.lower() for r in req.get_all("require")]
        unsupported = [r for r in require if r not in SUPPORTED_EXTENSIONS]
        if unsupported:
            self._reply(tx, req, 420, headers=[("Unsupported", ", ".join(unsupported))])
            return
        if is_in_dialog(req):
            self._handle_in_dialog(req, tx, source)
            return
        if method == "OPTIONS":
            self._reply(tx, req, 200, headers=[("Accept", "application/sdp")])
            return
        if method in ("BYE", "INFO", "UPDATE", "PRACK"):
            self._reply(tx, req, 481)
            return
        if method == "INVITE":
            self._trying_later(tx)
        if self.authenticator is not None and method in ("INVITE", "MESSAGE", "REFER", "SUBSCRIBE", "REGISTER",
                                                         "NOTIFY", "PUBLISH"):
            result = self.authenticator(req, source)
            if inspect.isawaitable(result):
                self._spawn(self._after_auth(req, tx, source, result))
                return
            self._continue_request(req, tx, source, result)
            return
        self._continue_request(req, tx, source, None)

    def _trying_later(self, tx: ServerTransaction) -> None:
        """100 Trying only if the TU has not answered within 200 ms (§17.2.1): saves a packet
        per call when the application answers at once."""
        assert self._loop is not None

        def trying() -> None:
            if tx.state is State.PROCEEDING and tx.last_response is None:
                tx.respond(Response.for_request(tx.request, 100), self.now())
                self._pump()

        self._loop.call_later(0.2, trying)

    async def _after_auth(self, req: Request, tx: ServerTransaction, source: Address, pending: Awaitable) -> None:
        try:
            result = await pending
        except Exception:  # noqa: BLE001
            log.exception("authenticator failed")
            self._reply(tx, req, 500, "Server Internal Error (authenticator failed)")
            self._pump()
            return
        self._continue_request(req, tx, source, result)
        self._pump()

    def _continue_request(self, req: Request, tx: ServerTransaction, source: Address,
                          auth: Response | str | None) -> None:
        if isinstance(auth, Response):
            tx.respond(auth, self.now())
            return
        if req.method == "INVITE":
            self._new_call(req, tx, source, auth)
            return
        if self.on_request is None:
            self._reply(tx, req, 405 if req.method in ("REGISTER", "SUBSCRIBE", "PUBLISH") else 501)
            return
        self._spawn(self._run_handler(lambda: self.on_request(req, source), tx, req, None))  # type: ignore[misc]

    def _new_call(self, req: Request, tx: ServerTransaction, source: Address, identity: str | None) -> None:
        if req.call_id in self._calls:
            self._reply(tx, req, 482, "Loop Detected (Call-ID in use)")
            return
        call = Call(self, "inbound", req, source.transport)
        call.identity = identity
        call.remote_address = source
        call._server_tx = tx
        call._local_tag = new_tag()
        call.dialog = Dialog.from_uas(req, call._local_tag, self.contact(source.transport))
        self.dialogs.add(call.dialog)
        self._calls[call.call_id] = call
        if self.on_invite is not None:
            self._spawn(self._run_on_invite(call))
        elif self._queue is not None:
            self._queue.put_nowait(call)
        else:
            log.warning("INVITE %s from %s: no handler for incoming calls; 480", req.call_id, source)
            self._spawn(call.reject(480, "Temporarily Unavailable (no handler)"))

    async def _run_on_invite(self, call: Call) -> None:
        assert self.on_invite is not None
        try:
            result = self.on_invite(call)
            if inspect.isawaitable(result):
                await result
        except CallFailed as exc:
            log.info("call %s: %s", call.call_id, exc)
        except Exception:  # noqa: BLE001
            log.exception("on_invite failed for %s", call.call_id)
            if call.state in (CallState.INCOMING, CallState.EARLY):
                await call.reject(500, "Server Internal Error (handler failed)")

    def _handle_cancel(self, req: Request, tx: ServerTransaction) -> None:
        inv = self.layer.find_invite(req)
        if inv is None:
            self._reply(tx, req, 481)
            return
        self._reply(tx, req, 200)
        call = self._calls.get(req.call_id)
        if inv.state is State.PROCEEDING:
            if call is not None and call._server_tx is inv:
                inv.respond(call._respond(487), self.now())
                call._end("cancelled", 487)
            else:
                self._reply(inv, inv.request, 487)

    def _handle_in_dialog(self, req: Request, tx: ServerTransaction, source: Address) -> None:
        dialog = self.dialogs.for_request(req)
        if dialog is None:
            self._reply(tx, req, 481, to_tag=req.to.tag)
            return
        call = self._calls.get(req.call_id)
        err = dialog.check_request(req)
        if err is not None:
            hdrs = [("Retry-After", "1")] if err == 500 and req.method == "INVITE" else []
            self._reply(tx, req, err, headers=hdrs)
            return
        if call is None:
            self._reply(tx, req, 481)
            return
        method = req.method
        if method == "BYE":
            self._reply(tx, req, 200)
            if call._server_tx is not None and call._server_tx.state is State.PROCEEDING:
                call._server_tx.respond(call._respond(487), self.now())
            call._end("remote BYE")
            return
        if method == "OPTIONS" and call.on_request is None:
            self._reply(tx, req, 200)
            return
        if method == "INVITE":
            self._trying_later(tx)
            dialog.remote_invite_pending = True
        self._spawn(self._run_handler(lambda: call.on_request(call, req) if call.on_request else None, tx, req, call))

    async def _run_handler(self, invoke: Callable[[], Any], tx: ServerTransaction, req: Request,
                           call: Call | None) -> None:
        reply: Reply | None
        try:
            result = invoke()
            if inspect.isawaitable(result):
                result = await result
            reply = _as_reply(result)
        except Exception:  # noqa: BLE001
            log.exception("request handler failed for %r", req)
            reply = Reply(500, reason="Server Internal Error (handler failed)")
        try:
            self._answer_request(req, tx, call, reply)
        finally:
            if call is not None and req.method == "INVITE" and call.dialog is not None:
                call.dialog.remote_invite_pending = False
            self._pump()

    def _answer_request(self, req: Request, tx: ServerTransaction, call: Call | None, reply: Reply | None) -> None:
        method = req.method
        if reply is None:
            if method == "INVITE" and call is not None:
                reply = Reply(200, call.local_body, call.local_content_type)
            else:
                log.warning("%s %s: no handler; answering 501", method, req.call_id)
                reply = Reply(501)
        to_tag = new_tag()  # out of dialog: a final response carries a fresh tag (§8.2.6.2)
        if call is not None and call.dialog is not None:
            to_tag = call.dialog.local_tag
        resp = Response.for_request(req, reply.status, reply.reason, to_tag=to_tag, headers=reply.headers)
        resp.add("Server", self.user_agent)
        if method == "INVITE" and 200 <= reply.status < 300 and call is not None:
            resp.add("Contact", self.contact(call.transport))
        if reply.body:
            resp.add("Content-Type", reply.content_type or "application/sdp")
            resp.body = reply.body
        if method == "INVITE" and 200 <= reply.status < 300 and call is not None:
            if req.body:
                call.remote_body = req.body
                call.remote_content_type = req.content_type
            if reply.body:
                call.local_body = reply.body
            self.layer.send_2xx(tx, resp, self.now())
        else:
            tx.respond(resp, self.now())


__all__ = [
    "Address",
    "Call",
    "CallFailed",
    "CallState",
    "DigestAuthenticator",
    "Reply",
    "Timers",
    "UserAgent",
]
