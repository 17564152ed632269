"""The SIP gateway: inbound and outbound calls as SIP participants in rooms.

Wiring (one per server process)::

    gateway = SipGateway(telephony, rooms, GatewayConfig(sip_port=5060, rtp_ports=(10000, 20000)))
    await gateway.start()          # binds SIP and attaches itself to ``telephony`` (API calls)
    ...
    await gateway.close()          # hangs up every call

**Inbound.** The UA's authenticator runs first for every out-of-dialog INVITE: it finds the
inbound trunk (:func:`~roomtone.telephony.matching.match_trunk` on caller, callee and source
address) and, when the trunk has credentials, checks digest auth (challenging with 401, refusing
a wrong password with 403). A call that matches no trunk is refused with 403 unless
``accept_without_trunk`` is set (LiveKit accepts such calls when a trunk-less dispatch rule
exists; we do not by default). Then the dispatch rule decides the room; a PIN rule answers the
call and runs the PIN prompt (:mod:`roomtone.telephony.pin`) with audible prompts. The call joins
the room as a :class:`~roomtone.telephony.participant.SipParticipant`.

SIP answers: no dispatch rule 404, conflicting configuration 500 (logged as an error), bad SDP and
codec mismatches as :mod:`roomtone.media.call` answers them (400/488), room full 486.

**Outbound.** :meth:`SipGateway.create_sip_participant` (CreateSIPParticipant) joins the room at
once with ``sip.callStatus=dialing``, sends the INVITE through the trunk with digest auth,
``ringing`` on the first provisional response, ``automation`` while the ``dtmf`` string plays (the
callee's key presses are relayed meanwhile), then ``active``; ``hangup`` when it ends. It gives up
after ``ringing_timeout`` and hangs up after ``max_call_duration``.

**Early media.** Outbound: a callee that answers with 183 + SDP (carrier ringback, an IVR
announcement) is heard in the room at once (its audio is the SIP participant's track, replacing
our ``play_dialtone`` tone) and its key presses are relayed, while ``sip.callStatus`` stays
``ringing``; the 200 makes it ``active``. Inbound, with the trunk option ``early_media``
(:mod:`roomtone.telephony.options`): we answer 183 + SDP, play the PIN prompt or ringback as early
media, join ``ringing``, and send the 200 once someone else is in the room (480 after the trunk's
``ringing_timeout``). The caller's key presses count from the 183 on, by RFC 4733, in-band tones or
SIP INFO inside the early dialog (RFC 6086 §4.2; the 183's Allow lists INFO): into the PIN, or
relayed to the room; a malformed INFO body gets 400 with the reason and the call goes on.

**SIP headers** (:mod:`roomtone.telephony.sip_headers`): ``include_headers`` and
``headers_to_attributes`` turn the INVITE's (inbound) or the callee's 200's (outbound) headers into
attributes; trunk and request ``headers`` go on the INVITE (outbound) or our 200 (inbound);
``attributes_to_headers`` go on our 200 (inbound), the INVITE (outbound, an extension), and the
BYE, CANCEL and REFER we send, with the attributes current then.

**Audio.** Once a call is in its room (inbound: after joining; outbound: after the answer and
the ``dtmf`` string), :class:`~roomtone.telephony.audio.AudioBridge` publishes the caller's audio as
the SIP participant's microphone track and sends the mix of the other participants' audio to the
phone; it stops when either side ends the call.

**DTMF.** Phone to room and room to phone as described in :mod:`roomtone.telephony.relay`;
:meth:`SipGateway.send_dtmf` is the ``roomtone.SIP/SendDTMF`` API.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit.protocol import sip as sip_pb

from roomtone.dtmf.digits import DtmfError, Tone, parse_sequence
from roomtone.media.call import CallOptions, MediaCall, answer_call, place_call
from roomtone.media.dtmf_mux import DtmfEvent, DtmfStart
from roomtone.media.engine import MediaEngine
from roomtone.media.ports import PortAllocator
from roomtone.rooms import RoomError, RoomManager
from roomtone.sip.auth import AuthStatus, Challenger
from roomtone.sip.dialog import new_tag
from roomtone.sip.message import Request, Response
from roomtone.sip.transport import Address
from roomtone.sip.ua import Call as SipCall
from roomtone.sip.ua import CallFailed, CallState, UserAgent
from roomtone.telephony import matching, pin, ringback, sip_headers
from roomtone.telephony.audio import AudioBridge
from roomtone.telephony.errors import TelephonyError
from roomtone.telephony.ids import CALL_PREFIX, new_id, random_suffix
from roomtone.telephony.options import TrunkOptions, trunk_options
from roomtone.telephony.outbound import OutboundPlan, plan_outbound_call
from roomtone.telephony.participant import BridgeOptions, SipParticipant
from roomtone.telephony.prompts import PromptError, load_prompt
from roomtone.telephony.service import Telephony
from roomtone.telephony.store import StoreError

log = logging.getLogger(__name__)

#: how long an early-media inbound call waits for someone in the room when the trunk sets no
#: ``ringing_timeout``
DEFAULT_EARLY_RINGING_TIMEOUT = 30.0


@dataclass
class GatewayConfig:
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    transports: tuple[str, ...] = ("UDP", "TCP")
    rtp_host: str = ""  # default: sip_host
    rtp_ports: tuple[int, int] = (10000, 20000)
    realm: str = "roomtone"
    #: offered in this order (RFC 8760: strongest first). Some UAs (SIPp, old phones) read only
    #: the first challenge and know only MD5; list ("MD5",) for them.
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    accept_without_trunk: bool = False
    codecs: tuple[str, ...] = ("PCMU", "PCMA", "G722")
    media_timeout: float | None = 30.0
    pin: pin.PinConfig = field(default_factory=pin.PinConfig)
    prompt_dir: str | None = None
    #: gateway-wide defaults; a trunk's metadata options override them per call
    trunk_defaults: TrunkOptions = field(default_factory=TrunkOptions)
    #: the random part of individual/callee dispatch room names (a fixed one for tests)
    room_suffix: Callable[[], str] = random_suffix


@dataclass(eq=False)
class ActiveCall:
    call_id: str  # SCL_...
    direction: str
    bridge: SipParticipant
    trunk_id: str
    media: MediaCall | None = None
    sip_call_id: str = ""
    room: str = ""
    identity: str = ""
    ringback_sid: str | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    audio: AudioBridge | None = None


class _MediaLeg:
    """Adapts a :class:`MediaCall` (set once answered) to the bridge's PhoneLeg interface."""

    def __init__(self, call_id: str, method: str) -> None:
        self.call_id = call_id
        self.method = method
        self.media: MediaCall | None = None
        self.pending: SipCall | None = None  # an outbound INVITE not answered yet
        self.hangup_requested = False
        self.answered = asyncio.Event()
        #: headers for the BYE, CANCEL and REFER we send (attributes_to_headers, attributes current then)
        self.bye_headers: Callable[[], list[tuple[str, str]]] | None = None

    def send_dtmf(self, digits: str, method: str | None = None) -> asyncio.Future[Any]:
        """Queue at once when answered (no task: see :meth:`MediaCall.queue_dtmf`), else after."""
        if self.media is None:
            return asyncio.ensure_future(self._send_when_answered(digits, method))
        return self.media.queue_dtmf(digits, method or self.method)

    async def _send_when_answered(self, digits: str, method: str | None) -> Any:
        await self.answered.wait()
        if self.media is None:
            raise CallFailed(487, "the call was not answered")
        return await self.media.send_dtmf(digits, method or self.method)

    async def hangup(self) -> None:
        self.hangup_requested = True
        self.answered.set()
        if self.media is not None:
            headers = self.bye_headers() if self.bye_headers is not None else []
            if headers and self.media.sip.state is CallState.ESTABLISHED:
                try:
                    await self.media.sip.bye(headers=headers)
                except CallFailed as exc:
                    log.info("call %s: BYE failed: %s", self.call_id, exc)
            await self.media.hangup()
        elif self.pending is not None and not self.pending.ended:
            await self.pending.hangup()  # CANCEL the ringing call


def _user(addr_user: str | None) -> str:
    return addr_user or ""


def _sip_error(status: int, reason: str) -> TelephonyError:
    code = {
        404: "not_found", 403: "permission_denied", 401: "permission_denied", 407: "permission_denied",
        408: "deadline_exceeded", 480: "unavailable", 486: "resource_exhausted", 600: "resource_exhausted",
        603: "permission_denied", 487: "canceled",
    }.get(status, "unavailable")
    return TelephonyError(code, f"SIP call failed: {status} {reason}", {"sip_status_code": str(status), "sip_status": reason})


class SipGateway:
    def __init__(self, telephony: Telephony, rooms: RoomManager, config: GatewayConfig | None = None) -> None:
        self.telephony = telephony
        self.store = telephony.store
        self.rooms = rooms
        self.config = config or GatewayConfig()
        self.ua = UserAgent(self.config.sip_host, self.config.sip_port, transports=self.config.transports)
        self.engine = MediaEngine(self.config.rtp_host or self.config.sip_host, PortAllocator(*self.config.rtp_ports))
        self.calls: dict[str, ActiveCall] = {}
        self._trunk_for_invite: dict[str, sip_pb.SIPInboundTrunkInfo | None] = {}
        self._challengers: dict[str, Challenger] = {}
        self._secret = os.urandom(32)
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- lifecycle

    async def start(self) -> None:
        self.ua.authenticator = self._authenticate
        self.ua.on_invite = self._on_invite
        await self.ua.start()
        self.telephony.attach_gateway(self)
        log.info("SIP gateway listening on %s:%d (%s)", self.config.sip_host, self.ua.port, "/".join(self.config.transports))

    @property
    def port(self) -> int:
        return self.ua.port

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await call.bridge.close("gateway shutting down", hangup=True)
        for task in list(self._tasks):
            task.cancel()
        await self.ua.close()
        await self.engine.close()
        if self.telephony.gateway is self:
            self.telephony.gateway = None

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _call_options(self, opts: TrunkOptions) -> CallOptions:
        return CallOptions(codecs=self.config.codecs, dtmf_method=opts.dtmf_mode,  # type: ignore[arg-type]
                           media_timeout=self.config.media_timeout)

    def _options_for(self, metadata: str, trunk_id: str) -> TrunkOptions:
        if metadata and "roomtone" in metadata:
            return trunk_options(metadata, trunk_id=trunk_id)
        return self.config.trunk_defaults

    # ---- inbound: authentication and trunk matching

    def _challenger(self, realm: str) -> Challenger:
        ch = self._challengers.get(realm)
        if ch is None:
            ch = self._challengers[realm] = Challenger(realm, self._secret, algorithms=self.config.digest_algorithms)
        return ch

    async def _authenticate(self, request: Request, source: Address) -> Response | str | None:
        if request.method != "INVITE":
            return None
        try:
            calling = _user(request.from_.uri.user)
            called = _user(request.to.uri.user) or _user(request.request_uri.user)
        except Exception as exc:
            log.info("INVITE from %s with unreadable From/To: %s", source, exc)
            return Response.for_request(request, 400, "Bad From or To", to_tag=new_tag())
        try:
            trunks = await self.store.list_inbound_trunks()
            trunk = matching.match_trunk(trunks, source.host, calling, called)
        except matching.MatchConflict as exc:
            log.error("inbound call %s -> %s from %s: %s", calling, called, source.host, exc)
            return Response.for_request(request, 500, "Conflicting SIP trunk configuration", to_tag=new_tag())
        except StoreError as exc:
            # The store being down is an operational state, not a bug: one line, and a 503 so the
            # carrier retries elsewhere (RFC 3261 §21.5.4).
            log.error("inbound call %s -> %s refused: SIP trunk store: %s", calling, called, exc)
            return Response.for_request(request, 503, "Trunk configuration unavailable", to_tag=new_tag())
        except Exception:
            log.exception("inbound call %s -> %s: trunk lookup failed", calling, called)
            return Response.for_request(request, 500, "Server error", to_tag=new_tag())
        if trunk is None:
            if self.config.accept_without_trunk:
                self._trunk_for_invite[request.call_id] = None
                return ""
            log.info("inbound call %s -> %s from %s: no SIP trunk matches; refused", calling, called, source.host)
            return Response.for_request(request, 403, "No matching SIP trunk", to_tag=new_tag())
        if trunk.auth_username:
            realm = trunk.auth_realm or self.config.realm
            challenger = self._challenger(realm)
            username, password = trunk.auth_username, trunk.auth_password
            result = challenger.verify(
                request.get("Authorization"), "INVITE", request.uri, time.time(),
                lambda user, _realm: password if user == username else None, request.body,
            )
            if not result.ok:
                if result.status in (AuthStatus.BAD_PASSWORD, AuthStatus.UNKNOWN_USER):
                    log.warning("inbound call to %s from %s: bad credentials for trunk %s (%s)",
                                called, source.host, trunk.sip_trunk_id, result.reason)
                    return Response.for_request(request, 403, "Forbidden (bad credentials)", to_tag=new_tag())
                resp = Response.for_request(request, 401, to_tag=new_tag())
                for value in challenger.challenge(time.time(), stale=result.stale):
                    resp.add("WWW-Authenticate", value)
                return resp
        self._trunk_for_invite[request.call_id] = trunk
        if len(self._trunk_for_invite) > 10000:  # INVITEs that never reached on_invite
            self._trunk_for_invite.pop(next(iter(self._trunk_for_invite)))
        return trunk.sip_trunk_id

    # ---- inbound: dispatch, PIN, join

    async def _on_invite(self, sip_call: SipCall) -> None:
        request = sip_call.request
        calling = _user(request.from_.uri.user)
        called = _user(request.to.uri.user) or _user(request.request_uri.user)
        if sip_call.call_id in self._trunk_for_invite:
            trunk = self._trunk_for_invite.pop(sip_call.call_id)
        else:  # should not happen: the authenticator runs for every INVITE
            await sip_call.reject(500, "Not authenticated")
            return
        call_id = new_id(CALL_PREFIX)
        trunk_id = trunk.sip_trunk_id if trunk else ""
        log.info("inbound call %s (SIP %s): %s -> %s, trunk %s", call_id, sip_call.call_id, calling, called, trunk_id or "-")
        extra = sip_headers.headers_to_attributes(
            request, trunk.headers_to_attributes if trunk else {}, trunk.include_headers if trunk else 0)
        extra.update(matching.call_attributes(sip_call_id=sip_call.call_id, remote_tag=request.from_.tag or ""))
        calling_host = request.from_.uri.host or ""
        try:
            rules = await self.store.list_dispatch_rules()
            rule = matching.match_dispatch_rule(trunk, rules, calling, called)
            decision = matching.evaluate_dispatch_rule(trunk, rule, call_id=call_id, calling=calling, called=called,
                                                       extra_attributes=extra, room_suffix=self.config.room_suffix,
                                                       calling_host=calling_host)
        except matching.NoDispatchMatch as exc:
            log.info("inbound call %s: %s", call_id, exc)
            await sip_call.reject(404, "No dispatch rule matched")
            return
        except matching.MatchConflict as exc:
            log.error("inbound call %s: %s", call_id, exc)
            await sip_call.reject(500, "Conflicting dispatch rules")
            return
        opts = self._options_for(trunk.metadata if trunk else "", trunk_id)
        early = opts.early_media and bool(sip_call.remote_body)
        if opts.early_media and not early:
            log.info("inbound call %s: INVITE without SDP; answering at once (no early media)", call_id)
        try:
            media = await answer_call(sip_call, self.engine, self._call_options(opts), early=early,
                                      headers=self._ok_headers(trunk, decision.attributes, call_id))
        except CallFailed as exc:  # the caller gave up (CANCEL) or never ACKed
            log.info("inbound call %s not answered: %s", call_id, exc)
            return
        if media is None:
            return
        leg = _MediaLeg(call_id, opts.dtmf_mode)
        leg.media = media
        leg.answered.set()
        bridge = SipParticipant(
            leg, self.rooms, call_id=call_id,
            options=BridgeOptions(publish_pre_join=opts.publish_pre_join, allow_sip_to_sip=opts.allow_sip_to_sip),
            on_closed=self._forget,
        )
        if trunk is not None and trunk.attributes_to_headers:
            leg.bye_headers = self._attribute_headers(bridge, trunk.attributes_to_headers)
        active = ActiveCall(call_id, "inbound", bridge, trunk_id, media, sip_call.call_id)
        self.calls[call_id] = active
        media.add_listener(lambda m: self._on_media_state(active, m))
        if decision.request_pin:
            decision2 = await self._pin_flow(active, trunk, rules, calling, called, extra, calling_host)
            if decision2 is None:
                return
            decision = decision2
        self._wire_phone_dtmf(active)
        try:
            await bridge.join(decision.room, decision.identity, name=decision.name,
                              metadata=decision.metadata, attributes=decision.attributes,
                              status="ringing" if media.state == "early" else "active")
        except RoomError as exc:
            log.warning("inbound call %s: cannot join room %s: %s", call_id, decision.room, exc)
            await bridge.close(f"room refused: {exc.message}", hangup=True)
            return
        active.room, active.identity = decision.room, decision.identity
        if media.ended:
            await bridge.close(media.end_reason or "phone hung up", hangup=False)
            return
        if media.state == "early" and not await self._answer_when_someone_is_there(active, trunk):
            return
        await self._start_audio(active)

    def _ok_headers(self, trunk: sip_pb.SIPInboundTrunkInfo | None, attributes: Mapping[str, str],
                    call_id: str) -> list[tuple[str, str]]:
        """Our 200 OK's extra headers: the trunk's ``headers`` and its ``attributes_to_headers``."""
        if trunk is None:
            return []
        mapped = sip_headers.attributes_to_headers(attributes, trunk.attributes_to_headers, call=call_id)
        return list(sip_headers.merge(trunk.headers.items(), mapped).items())

    async def _answer_when_someone_is_there(self, active: ActiveCall, trunk: sip_pb.SIPInboundTrunkInfo | None) -> bool:
        """Early-media answering (trunk option ``early_media``): the caller hears ringback while
        the participant waits, ``ringing``, for someone else in the room; then the 200 OK and
        ``active``. Nobody within the trunk's ``ringing_timeout``: 480 and the participant leaves."""
        media, bridge = active.media, active.bridge
        assert media is not None
        loop = asyncio.get_running_loop()
        limit = trunk.ringing_timeout.ToTimedelta().total_seconds() if trunk is not None else 0.0
        limit = limit if limit > 0 else DEFAULT_EARLY_RINGING_TIMEOUT
        deadline = loop.time() + limit
        tone = self._spawn(self._play_ringback(media))
        active.tasks.add(tone)
        try:
            while True:
                if media.ended or bridge.closed:
                    if not bridge.closed:
                        await bridge.close(media.end_reason or "caller hung up", hangup=False)
                    return False
                p = bridge.participant
                if p is not None and p.others():
                    break
                if loop.time() >= deadline:
                    log.info("inbound call %s: nobody joined room %s within %.0f s; refusing with 480",
                             active.call_id, active.room, limit)
                    await bridge.close("nobody answered in the room (ringing_timeout)", hangup=False)
                    await media.sip.reject(480, "Temporarily Unavailable")
                    await media.hangup()
                    return False
                await asyncio.sleep(0.05)
        finally:
            tone.cancel()
        p = bridge.participant
        headers = self._ok_headers(trunk, p.record.attributes if p is not None else {}, active.call_id)
        try:
            await media.accept(headers=headers)
        except CallFailed as exc:  # CANCEL crossed the 200, or no ACK
            log.info("inbound call %s: answering after early media failed: %s", active.call_id, exc)
            await bridge.close(f"answer failed: {exc.reason}", hangup=False)
            return False
        log.info("inbound call %s answered after early media (room %s)", active.call_id, active.room)
        await bridge.set_status("active")
        return True

    async def _play_ringback(self, media: MediaCall) -> None:
        """The ringing cadence (:mod:`roomtone.telephony.ringback`) to the caller while in early
        media, queued 100-300 ms ahead so a cancelled ringback stops promptly."""
        rate = media.sample_rate
        chunk = rate // 5
        loop = asyncio.get_running_loop()
        start, n = loop.time(), 0
        while not media.ended and media.state == "early":
            t = np.arange(n, n + chunk) / rate
            wave = np.where((t % ringback.PERIOD) < ringback.ON,
                            ringback.LEVEL * 32767 * np.sin(2 * np.pi * ringback.FREQ * t), 0.0)
            media.send_audio(wave.astype(np.int16))
            n += chunk
            await asyncio.sleep(max(0.0, start + n / rate - 0.1 - loop.time()))

    @staticmethod
    def _attribute_headers(bridge: SipParticipant, mapping: Mapping[str, str]) -> Callable[[], list[tuple[str, str]]]:
        """``attributes_to_headers`` with the participant's attributes at the time of sending."""
        mapping = dict(mapping)

        def headers() -> list[tuple[str, str]]:
            p = bridge.participant
            attrs = p.record.attributes if p is not None else {}
            return sip_headers.attributes_to_headers(attrs, mapping, call=bridge.call_id)

        return headers

    async def _set_attributes(self, active: ActiveCall, attrs: Mapping[str, str]) -> None:
        """Merge attributes read from SIP headers into the participant (empty values left out:
        an empty value would delete the key)."""
        attrs = {k: v for k, v in attrs.items() if v}
        p = active.bridge.participant
        if not attrs or p is None or not p.active:
            return
        try:
            await p.update(attributes=attrs)
        except Exception as exc:  # the room may be closing; the attributes are informational
            log.info("call %s: could not set attributes from SIP headers: %s", active.call_id, exc)

    def _wire_phone_dtmf(self, active: ActiveCall) -> None:
        media = active.media
        assert media is not None
        bridge = active.bridge
        now = self.engine.now

        def on_start(st: DtmfStart) -> None:
            bridge.phone_dtmf_start(st.digit, st.code, st.method, st.start, wall=time.time() - (now() - st.start))

        def on_end(ev: DtmfEvent) -> None:
            bridge.phone_dtmf_end(ev.digit, ev.code, ev.method, ev.duration_ms, ev.start,
                                  wall=time.time() - (now() - ev.start))

        media.on_dtmf_start = on_start
        media.on_dtmf = on_end

    async def _start_audio(self, active: ActiveCall) -> None:
        """Bridge the call's audio with the room (:mod:`roomtone.telephony.audio`)."""
        participant = active.bridge.participant
        if active.media is None or participant is None or active.bridge.closed or active.audio is not None:
            return
        active.audio = AudioBridge(active.media, participant, self.rooms)
        try:
            await active.audio.start()
        except Exception:
            log.exception("call %s: audio bridge failed to start", active.call_id)
            active.audio.close()

    def _on_media_state(self, active: ActiveCall, media: MediaCall) -> None:
        if media.ended and not active.bridge.closed:
            reason = media.end_reason or "call ended"
            log.info("call %s: phone side ended (%s)", active.call_id, reason)
            self._spawn(active.bridge.close(reason, hangup=False))

    def _forget(self, bridge: SipParticipant) -> None:
        active = self.calls.pop(bridge.call_id, None)
        if active is not None:
            if active.audio is not None:
                active.audio.close()
            current = asyncio.current_task()
            for task in active.tasks:
                if task is not current:
                    task.cancel()

    async def _play(self, media: MediaCall, name: str) -> float:
        """Queue prompt ``name``; returns its length in seconds (0 when it cannot be played)."""
        try:
            samples = load_prompt(name, self.config.prompt_dir)
        except PromptError as exc:
            log.warning("prompt %s: %s", name, exc)
            return 0.0
        rate = media.sample_rate
        if rate != 8000:
            n = int(len(samples) * rate / 8000)
            samples = np.interp(np.arange(n) * 8000 / rate, np.arange(len(samples)), samples).astype(np.int16)
        media.send_audio(samples)
        return len(samples) / rate

    async def _pin_flow(
        self,
        active: ActiveCall,
        trunk: sip_pb.SIPInboundTrunkInfo | None,
        rules: list[sip_pb.SIPDispatchRuleInfo],
        calling: str,
        called: str,
        extra: dict[str, str],
        calling_host: str,
    ) -> matching.DispatchDecision | None:
        media = active.media
        assert media is not None
        loop = asyncio.get_running_loop()
        digits: asyncio.Queue[str] = asyncio.Queue()
        media.on_dtmf = lambda ev: digits.put_nowait(ev.digit)
        entry = pin.PinEntry(self.config.pin)
        prompts: list[str] = []
        prompt_end = loop.time()
        actions = entry.start(loop.time())
        decision: matching.DispatchDecision | None = None
        log.info("call %s: asking for a PIN", active.call_id)
        while True:
            for action in actions:
                if isinstance(action, pin.Play):
                    prompts.append(action.prompt)
                elif isinstance(action, pin.Submit):
                    try:
                        rule = matching.match_dispatch_rule(
                            trunk, rules, calling, called, pin=action.pin, no_pin=action.no_pin
                        )
                        decision = matching.evaluate_dispatch_rule(
                            trunk, rule, call_id=active.call_id, calling=calling, called=called, pin=action.pin,
                            extra_attributes=extra, room_suffix=self.config.room_suffix, calling_host=calling_host,
                        )
                        ok = not decision.request_pin
                    except (matching.NoDispatchMatch, matching.MatchConflict) as exc:
                        log.info("call %s: PIN refused: %s", active.call_id, exc)
                        ok = False
                    actions_after = entry.verdict(ok, loop.time())
                    prompts.extend(a.prompt for a in actions_after if isinstance(a, pin.Play))
                    if any(isinstance(a, pin.Fail) for a in actions_after):
                        actions = actions_after
                        break
                elif isinstance(action, pin.Fail):
                    pass
            # play what was asked, one prompt after another (the send queue holds 2 s)
            if prompts:
                task = self._spawn(self._play_sequence(media, list(prompts)))
                active.tasks.add(task)
                total = sum(len(load_prompt(p, self.config.prompt_dir)) / 8000 for p in prompts)
                prompt_end = max(prompt_end, loop.time()) + total
                entry.prompt_until(prompt_end)
                prompts.clear()
            if entry.state is pin.PinState.ACCEPTED:
                log.info("call %s: PIN accepted", active.call_id)
                # keys pressed from now on are the caller's, kept for the room (published on joining)
                self._wire_phone_dtmf(active)
                await asyncio.sleep(max(0.0, prompt_end - loop.time()))
                return decision
            if entry.state is pin.PinState.FAILED or media.ended:
                reason = next((a.reason for a in actions if isinstance(a, pin.Fail)), "pin failed")
                log.info("call %s: PIN entry failed (%s); hanging up", active.call_id, reason)
                if not media.ended:
                    await asyncio.sleep(max(0.0, prompt_end - loop.time()))
                await active.bridge.close(f"pin: {reason}", hangup=True)
                return None
            deadline = entry.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            ended = asyncio.ensure_future(media.wait_ended())
            getter = asyncio.ensure_future(digits.get())
            try:
                done, _ = await asyncio.wait({getter, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
                if not getter.done():
                    getter.cancel()
            if getter in done:
                actions = entry.digit(getter.result(), loop.time())
            elif ended in done:
                actions = []
            else:
                actions = entry.poll(loop.time())

    async def _play_sequence(self, media: MediaCall, names: list[str]) -> None:
        for name in names:
            if media.ended:
                return
            seconds = await self._play(media, name)
            await asyncio.sleep(seconds)

    # ---- outbound

    async def create_sip_participant(self, req: sip_pb.CreateSIPParticipantRequest) -> sip_pb.SIPParticipantInfo:
        trunk = await self.store.get_outbound_trunk(req.sip_trunk_id) if req.sip_trunk_id else None
        call_id = new_id(CALL_PREFIX)
        plan = plan_outbound_call(req, trunk, call_id=call_id)
        opts = self._options_for(trunk.metadata if trunk else "", plan.trunk_id)
        leg = _MediaLeg(call_id, opts.dtmf_mode)
        bridge = SipParticipant(
            leg, self.rooms, call_id=call_id,
            options=BridgeOptions(publish_pre_join=opts.publish_pre_join, allow_sip_to_sip=opts.allow_sip_to_sip),
            on_closed=self._forget,
        )
        if plan.attributes_to_headers:
            leg.bye_headers = self._attribute_headers(bridge, plan.attributes_to_headers)
        active = ActiveCall(call_id, "outbound", bridge, plan.trunk_id, room=plan.room, identity=plan.identity)
        try:
            participant = await bridge.join(plan.room, plan.identity, name=plan.name, metadata=plan.metadata,
                                            attributes={**plan.attributes, **matching.call_attributes(hostname=plan.hostname)},
                                            status="dialing")
        except RoomError as exc:
            raise TelephonyError(exc.code, f"cannot join room {plan.room!r}: {exc.message}") from None
        self.calls[call_id] = active
        info = sip_pb.SIPParticipantInfo(
            participant_id=participant.sid, participant_identity=plan.identity, room_name=plan.room, sip_call_id=call_id
        )
        dial = self._spawn(self._dial(active, leg, plan, opts))
        active.tasks.add(dial)
        if plan.wait_until_answered:
            error = await dial
            if error is not None:
                raise error
        return info

    async def _dial(self, active: ActiveCall, leg: _MediaLeg, plan: OutboundPlan, opts: TrunkOptions) -> TelephonyError | None:
        bridge = active.bridge
        host = plan.address
        uri = f"sip:{plan.call_to}@{host}"
        if plan.transport:
            uri += f";transport={plan.transport}"
        sip_holder: list[SipCall] = []

        def provisional(call: SipCall, resp: Response) -> None:
            # LiveKit maps only the well-known provider headers of provisional responses
            known = sip_headers.headers_to_attributes(resp, {}, sip_headers.SIP_NO_HEADERS)
            if not sip_holder:
                sip_holder.append(call)
                leg.pending = call
                call.cancel_headers = leg.bye_headers  # attributes_to_headers on CANCEL too, as LiveKit
                # the Call-ID while ringing already (LiveKit: after the answer); the tag waits for
                # the 200, whose fork may not be this response's
                known.update(matching.call_attributes(sip_call_id=call.call_id))
            if 180 <= resp.status < 200:
                self._spawn(bridge.set_status("ringing"))
            if known:
                self._spawn(self._set_attributes(active, known))

        if plan.play_dialtone:
            active.ringback_sid = await self._start_ringback(bridge)
        try:
            return await self._place(active, leg, plan, opts, uri, sip_holder, provisional)
        finally:
            await self._stop_ringback(active)

    async def _stop_ringback(self, active: ActiveCall) -> None:
        sid, active.ringback_sid = active.ringback_sid, None
        participant = active.bridge.participant
        if sid is not None and participant is not None and participant.active:
            await participant.unpublish_track(sid)

    async def _start_ringback(self, bridge: SipParticipant) -> str | None:
        """Publish the ringing tone as the SIP participant's track (play_dialtone)."""
        if bridge.participant is None:
            return None
        from livekit.protocol import models

        from roomtone.rooms import new_sid
        from roomtone.telephony.ringback import RingbackTrack

        info = models.TrackInfo(sid=new_sid("TR_"), type=models.AUDIO, source=models.TrackSource.MICROPHONE,
                                name="dialtone")
        await bridge.participant.publish_track(info, RingbackTrack())
        return info.sid

    async def _place(self, active: ActiveCall, leg: _MediaLeg, plan: OutboundPlan, opts: TrunkOptions, uri: str,
                     sip_holder: list[SipCall], provisional: Any) -> TelephonyError | None:
        bridge = active.bridge
        auth = (plan.auth_username, plan.auth_password) if plan.auth_username else None
        headers = list(plan.headers.items())
        log.info("outbound call %s: dialing %s from %s", active.call_id, uri, plan.from_number)
        try:
            media = await asyncio.wait_for(
                place_call(self.ua, self.engine, uri, self._call_options(opts), from_user=plan.from_number,
                           from_display=plan.display_name or None, auth=auth, headers=headers,
                           on_provisional=provisional, on_early_media=lambda m: self._early_media(active, m)),
                plan.ringing_timeout,
            )
        except TimeoutError:
            log.info("outbound call %s: no answer within %.0f s", active.call_id, plan.ringing_timeout)
            for call in sip_holder:
                self._spawn(call.hangup())
            await bridge.close("ringing timeout", hangup=False)
            return _sip_error(408, "Request Timeout (ringing_timeout)")
        except CallFailed as exc:
            log.info("outbound call %s failed: %s %s", active.call_id, exc.status, exc.reason)
            await bridge.close(f"call failed: {exc.status} {exc.reason}", hangup=False)
            return _sip_error(exc.status, exc.reason)
        except Exception as exc:  # DNS, sockets
            log.warning("outbound call %s could not be placed: %s", active.call_id, exc)
            await bridge.close(f"call failed: {exc}", hangup=False)
            return TelephonyError("unavailable", f"SIP call could not be placed: {exc}")
        leg.media = media
        leg.answered.set()
        active.media = media
        await self._stop_ringback(active)
        active.sip_call_id = media.call_id
        if bridge.closed or leg.hangup_requested:  # removed from the room while ringing
            await media.hangup()
            return _sip_error(487, "Request Terminated")
        media.add_listener(lambda m: self._on_media_state(active, m))
        self._wire_phone_dtmf(active)
        if active.audio is not None and active.audio.rate != media.sample_rate:
            # the 200 (another fork) chose another clock rate than the early media: bridge anew
            old_audio, active.audio = active.audio, None
            await old_audio.aclose()
        answer = await media.sip.wait_answered()
        await self._set_attributes(active, {
            **sip_headers.headers_to_attributes(answer, plan.headers_to_attributes, plan.include_headers),
            **matching.call_attributes(sip_call_id=media.call_id, remote_tag=answer.to.tag or ""),
        })
        timer = self._spawn(self._max_duration(active, plan.max_call_duration))
        active.tasks.add(timer)
        if plan.dtmf:
            await bridge.set_status("automation")
            try:
                await media.send_dtmf(plan.dtmf_text, opts.dtmf_mode)
            except (CallFailed, ValueError, DtmfError) as exc:
                log.info("outbound call %s: initial dtmf not sent: %s", active.call_id, exc)
        await self._start_audio(active)
        if not bridge.closed and not media.ended:
            await bridge.set_status("active")
            log.info("outbound call %s answered (SIP %s)", active.call_id, media.call_id)
        return None

    async def _early_media(self, active: ActiveCall, media: MediaCall) -> None:
        """The callee sent SDP in a 18x (ringback, an announcement, an IVR before answering): its
        audio becomes the SIP participant's track and its key presses are relayed, while
        ``sip.callStatus`` stays ``ringing`` until the 200. Room digits wait for the answer."""
        if active.bridge.closed or media.ended or media.state != "early":
            return  # (sip.callStatus=ringing was set by the 18x itself)
        log.info("outbound call %s: early media from the callee; bridging it to room %s",
                 active.call_id, active.room)
        active.media = media
        self._wire_phone_dtmf(active)
        await self._stop_ringback(active)  # the callee's own ringback replaces our dial tone
        await self._start_audio(active)

    async def _max_duration(self, active: ActiveCall, seconds: float) -> None:
        await asyncio.sleep(seconds)
        log.info("call %s: max_call_duration %.0f s reached; hanging up", active.call_id, seconds)
        await active.bridge.close("max call duration", hangup=True)

    # ---- API extensions

    def find_call(self, room: str, identity: str) -> ActiveCall | None:
        for call in self.calls.values():
            if call.bridge.participant is not None and call.bridge.participant.room_name == room \
                    and call.bridge.identity == identity:
                return call
        return None

    async def send_dtmf(self, *, room: str, identity: str, digits: str, method: str, wait: bool) -> tuple[str, str, str]:
        call = self.find_call(room, identity)
        if call is None:
            if self.rooms.participant(room, identity) is not None:
                raise TelephonyError("failed_precondition", f"participant {identity!r} in room {room!r} is not a SIP call")
            raise TelephonyError("not_found", f"no SIP participant {identity!r} in room {room!r}")
        try:
            steps = parse_sequence(digits)
        except DtmfError as exc:
            raise TelephonyError("invalid_argument", str(exc)) from None
        canonical = "".join(s.digit if isinstance(s, Tone) else "" for s in steps)
        media = call.media
        if media is None or media.ended:
            raise TelephonyError("failed_precondition", f"call {call.call_id} is not answered (status {call.bridge.status})")
        try:
            chosen = media.choose_method(steps, method or None)
        except ValueError as exc:
            raise TelephonyError("failed_precondition", str(exc)) from None
        send = media.send_dtmf(digits, chosen)
        if wait:
            try:
                await send
            except CallFailed as exc:
                raise TelephonyError("aborted", f"call ended before the digits were sent: {exc}") from None
        else:
            task = self._spawn(self._send_logged(call, send))
            call.tasks.add(task)
        return call.call_id, canonical, chosen

    async def _send_logged(self, call: ActiveCall, send: Any) -> None:
        try:
            await send
        except Exception as exc:
            log.info("call %s: SendDTMF failed: %s", call.call_id, exc)

    async def transfer_sip_participant(self, req: sip_pb.TransferSIPParticipantRequest) -> None:
        call = self.find_call(req.room_name, req.participant_identity)
        if call is None or call.media is None:
            raise TelephonyError("not_found", f"no answered SIP participant {req.participant_identity!r} in {req.room_name!r}")
        target = req.transfer_to
        if not target:
            raise TelephonyError("invalid_argument", "transfer_to is required")
        if not target.startswith(("sip:", "sips:", "tel:", "<")):
            target = "sip:" + target
        refer_to = target if target.startswith("<") else f"<{target}>"
        if any(c in refer_to for c in "\r\n\0"):
            raise TelephonyError("invalid_argument", "transfer_to contains a control character")
        try:
            sip_headers.check_headers(req.headers, "headers")
        except sip_headers.HeaderError as exc:
            raise TelephonyError("invalid_argument", str(exc)) from None
        leg = call.bridge.leg
        mapped = leg.bye_headers() if isinstance(leg, _MediaLeg) and leg.bye_headers is not None else []
        headers = [("Refer-To", refer_to), *sip_headers.merge(mapped, req.headers.items()).items()]
        try:
            resp = await call.media.sip.send_request("REFER", headers=headers)
        except CallFailed as exc:
            raise _sip_error(exc.status, exc.reason) from None
        if resp.status >= 300:
            raise _sip_error(resp.status, resp.reason)
        log.info("call %s transferred to %s", call.call_id, target)
        await call.bridge.close("transferred", hangup=True)
