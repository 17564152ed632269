"""A call with media: a SIP dialog (``sip.ua``) plus its RTP session and DTMF both ways.

The API the rest of roomtone (and the ``roomtone sip call/answer`` test phone) uses::

    engine = MediaEngine("127.0.0.1", PortAllocator(20000, 30000))
    call = await place_call(ua, engine, "sip:bob@198.51.100.2", CallOptions())   # answered
    # or, for an incoming INVITE:  call = await answer_call(sip_call, engine, CallOptions())

    await call.send_dtmf("12w3#", method="auto")   # returns once sent; queued per call
    call.on_dtmf = lambda ev: ...                  # DtmfEvent: one per key press, any method
    call.on_dtmf_start = lambda st: ...            # DtmfStart: as soon as a press begins
    async for ev in call.dtmf_events(): ...        # the same DtmfEvents as an iterator
    call.send_audio(pcm)                           # int16 at call.sample_rate, paced by us
    call.on_audio = lambda frame: ...              # received 20 ms frames (tones muted)
    call.add_listener(lambda call: call.state)     # "established" -> "ended"
    await call.hold(); await call.unhold()         # re-INVITE; a peer's hold is followed too
    await call.hangup(); await call.wait_ended(); call.end_reason

Sending DTMF (``send_dtmf``): ``auto`` picks RFC 4733 when telephone-event was negotiated and
covers every digit (flash needs event 16 in the peer's range), else SIP INFO when the peer's
``Allow`` lists INFO, else in-band tones. Requests are queued per call and played one after
another; awaiting one never blocks other calls or the receive path. INFO digits are paced like
tones (tone length, then gap) so receivers that time them see a natural sequence.

Receiving DTMF: RFC 4733 events and in-band tones come from the media session (in-band detection
on by default, also when telephone-event was negotiated), SIP INFO ``application/dtmf-relay`` and
``application/dtmf`` from the dialog; a press seen by several methods is reported once
(:mod:`roomtone.media.dtmf_mux`). A malformed INFO body gets 400 with the reason; an INFO of
another content type gets 415.

Late offer (RFC 3261 §13.2.1, RFC 3264; Cisco CUBE's "delayed offer"): an INVITE without SDP
is answered with our offer in the 200 (retransmitted until the ACK) and the peer's answer is taken
from the ACK. A re-INVITE without SDP (some PBXs send one as a session refresh) gets a fresh offer
of our current media (same codecs, our hold state) in its 200, again answered in the ACK. An ACK
without a usable answer ends the call with a BYE carrying ``Reason: SIP ;cause=488`` and a log
line saying what was wrong.

Early media (outbound): SDP in a 18x (183 Session Progress, or a 180 with a body) starts media at
once, so ringback or announcements from the far end are heard, digits the far end plays arrive,
and ``send_dtmf`` works before the answer: ``place_call(..., on_early_media=fn)`` hands the
:class:`MediaCall` to ``fn`` as soon as early media starts (``call.state == "early"``). The 200
normally repeats the same answer (RFC 3264 §13.2.1 of RFC 3261); if it differs, or comes from
another fork (another To-tag), the 200 wins and media follows it. RFC 4733 events and in-band
tones may be sent during early media (RFC 4733 only needs the media stream); SIP INFO is not
(``auto`` skips it and explicit ``info`` raises ``ValueError`` until the call is answered), as
RFC 6086 ties INFO to the established invite dialog usage and many UAS refuse it earlier.

Early media (inbound): ``answer_call(..., early=True)`` sends our answer in a 183 Session
Progress and returns the call in early media (``state == "early"``): audio and RFC 4733 flow both
ways, and SIP INFO digits arrive in the early dialog (RFC 6086 allows INFO there), so prompts can
play and digits be collected by any method before the caller is billed.
:meth:`MediaCall.accept` then sends the 200 OK (same SDP). An INVITE without SDP is answered at
once instead: an offer cannot go in an unreliable 183 (RFC 3261 §13.2.1). ``headers`` given to
``answer_call``/``accept`` go on the 200 OK.

The call hangs up by itself on a media timeout (no RTP/RTCP for ``media_timeout`` seconds) and
closes its media when the dialog ends for any reason.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from roomtone.aio import start_eagerly
from roomtone.dtmf import info as dtmf_info
from roomtone.dtmf.digits import DtmfError, Pause, Step, Tone, parse_sequence
from roomtone.media.codecs import codec_by_name
from roomtone.media.dtmf_mux import DtmfEvent, DtmfStart, Method
from roomtone.media.engine import MediaEngine, MediaStream
from roomtone.media.session import DtmfSendJob, MediaFailed, MediaTimeout, SessionConfig
from roomtone.sip import sdp as sdp_mod
from roomtone.sip.message import Request, Response
from roomtone.sip.ua import Call as SipCall
from roomtone.sip.ua import CallFailed, CallState, Reply, UserAgent

log = logging.getLogger(__name__)

SendMethod = Literal["auto", "rfc4733", "info", "inband"]
METHODS = ("auto", "rfc4733", "info", "inband")


@dataclass
class CallOptions:
    """Per-call media and DTMF settings (a trunk fills these in later)."""

    codecs: tuple[str, ...] = ("PCMU", "PCMA", "G722")
    telephone_event: bool = True
    dtmf_method: SendMethod = "auto"
    tone_ms: int = 160
    gap_ms: int = 120
    volume: int = 10
    inband_detection: bool = True
    suppress_tones: bool = True
    audio_during_events: Literal["suppress", "keep"] = "suppress"
    symmetric_rtp: bool = True
    media_timeout: float | None = 30.0
    jitter_delay: float = 0.06

    def session_config(self, negotiated: sdp_mod.NegotiatedAudio, cname: str) -> SessionConfig:
        return SessionConfig(
            codec=codec_by_name(negotiated.codec.name),
            payload_type=negotiated.payload_type,
            ptime_ms=20,
            telephone_event_pt=negotiated.telephone_event_pt if self.telephone_event else None,
            symmetric_rtp=self.symmetric_rtp,
            media_timeout=self.media_timeout,
            jitter_delay=self.jitter_delay,
            audio_during_events=self.audio_during_events,
            inband_detection=self.inband_detection,
            suppress_tones=self.suppress_tones,
            tone_ms=self.tone_ms,
            gap_ms=self.gap_ms,
            volume=self.volume,
            cname=cname,
        )

    def capabilities(self) -> sdp_mod.AudioCapabilities:
        return sdp_mod.AudioCapabilities(codecs=self.codecs, telephone_event=self.telephone_event)


@dataclass(eq=False, slots=True)
class _Send:
    """One ``send_dtmf`` request on its way out."""

    steps: list[Step]
    method: Method
    tone: int
    gap: int
    volume: int
    text: str
    fut: asyncio.Future[DtmfSent]


class DtmfCancelled(Exception):
    """``send_dtmf`` was cancelled (``cancel_dtmf``) before all its digits went out."""


@dataclass(frozen=True)
class DtmfSent:
    """What ``send_dtmf`` did: the digits (canonical) and the method actually used."""

    digits: str
    method: Method


class MediaCall:
    """One call with media. Build it with :func:`place_call` or :func:`answer_call`."""

    def __init__(self, sip: SipCall, stream: MediaStream, negotiated: sdp_mod.NegotiatedAudio,
                 sdp_session: sdp_mod.SdpSession, options: CallOptions, peer_allow: str | None) -> None:
        self.sip = sip
        self.stream = stream
        self.negotiated = negotiated
        self.options = options
        self.peer_allow = peer_allow
        self._sdp = sdp_session
        self.on_dtmf: Callable[[DtmfEvent], Any] | None = None
        self.on_dtmf_start: Callable[[DtmfStart], Any] | None = None
        self._dtmf_queue: asyncio.Queue[DtmfEvent | None] = asyncio.Queue()
        self._waiting: deque[_Send] = deque()  # behind an INFO send, for the worker
        self._media_sends: set[_Send] = set()  # queued on the media session, not yet sent
        self._sender: asyncio.Future[None] | None = None
        self._listeners: list[Callable[[MediaCall], Any]] = []
        self.received: list[DtmfEvent] = []
        self._held = False  # we put the peer on hold (our offers say sendonly)
        self._late_offer_cseq: int | None = None  # a body-less re-INVITE we answered with an offer
        stream.on_event = self._on_media_event
        sip.on_request = self._on_request
        sip.on_ack = self._on_ack
        sip.add_listener(self._on_sip_state)
        if sip.ended:
            self._close_media()

    # ------------------------------------------------------------------ facts
    @property
    def call_id(self) -> str:
        return self.sip.call_id

    @property
    def state(self) -> str:
        """``established`` or ``ended`` (the SIP call's state once answered); ``early`` during
        early media, before the 200."""
        return self.sip.state.value

    @property
    def ended(self) -> bool:
        return self.sip.ended

    @property
    def end_reason(self) -> str | None:
        return self.sip.end_reason

    @property
    def sample_rate(self) -> int:
        return self.stream.session.codec.sample_rate

    @property
    def telephone_event(self) -> bool:
        return self.stream.session.config.telephone_event_pt is not None

    @property
    def peer_allows_info(self) -> bool:
        if not self.peer_allow:
            return False
        return "INFO" in {m.strip().upper() for m in self.peer_allow.split(",")}

    def add_listener(self, callback: Callable[[MediaCall], Any]) -> None:
        """``callback(call)`` on every state change (established -> ended)."""
        self._listeners.append(callback)

    # ------------------------------------------------------------------ audio
    def send_audio(self, pcm: np.ndarray) -> None:
        """Queue int16 samples at :attr:`sample_rate`; they go out in 20 ms frames."""
        self.stream.send_audio(pcm)

    @property
    def on_audio(self) -> Callable[[np.ndarray], None] | None:
        return self.stream.on_audio

    @on_audio.setter
    def on_audio(self, fn: Callable[[np.ndarray], None] | None) -> None:
        self.stream.on_audio = fn

    # ------------------------------------------------------------------ DTMF out
    def choose_method(self, steps: list[Step], method: str | None = None) -> Method:
        """The method ``send_dtmf`` will use (see the module docstring); raises ValueError."""
        wanted = method or self.options.dtmf_method
        if wanted not in METHODS:
            raise ValueError(f"unknown DTMF method {wanted!r}; use one of {', '.join(METHODS)}")
        codes = {s.code for s in steps if isinstance(s, Tone)}
        early = self.sip.state is not CallState.ESTABLISHED and not self.ended
        if wanted == "auto":
            if self.telephone_event and codes <= self.negotiated.telephone_events:
                return "rfc4733"
            if self.peer_allows_info and not early:
                return "info"
            if 16 in codes:
                raise ValueError("flash (R) cannot be sent: the peer takes neither telephone-event 16 "
                                 "nor INFO, and flash has no in-band tone")
            return "inband"
        if wanted == "rfc4733":
            if not self.telephone_event:
                raise ValueError("telephone-event was not negotiated on this call; use info or inband")
            missing = codes - self.negotiated.telephone_events
            if missing:
                raise ValueError(f"the peer's telephone-event range does not include {sorted(missing)}")
        if wanted == "info" and early:
            raise ValueError("SIP INFO is not sent before the call is answered (early media); "
                             "use rfc4733 or inband")
        if wanted == "inband" and 16 in codes:
            raise ValueError("flash (R) has no in-band tone; send it by rfc4733 or info")
        return wanted  # type: ignore[return-value]

    async def send_dtmf(self, digits: str, method: str | None = "auto", *, tone_ms: int | None = None,
                        gap_ms: int | None = None, volume: int | None = None) -> DtmfSent:
        """Send ``digits`` (``"12w3#"``: pauses ``w``/``,`` 0.5 s, ``W`` 1 s); return when sent.

        ``method`` None uses the call's configured method. Raises :class:`DtmfError` for a bad
        digit and ``ValueError`` when the method cannot carry the digits; nothing is sent then.
        Raises :class:`CallFailed` if the call ends before the digits went out.
        """
        return await self.queue_dtmf(digits, method, tone_ms=tone_ms, gap_ms=gap_ms, volume=volume)

    def queue_dtmf(self, digits: str, method: str | None = "auto", *, tone_ms: int | None = None,
                   gap_ms: int | None = None, volume: int | None = None) -> asyncio.Future[DtmfSent]:
        """:meth:`send_dtmf` without the wait: queue now, get a future that resolves when sent.

        Synchronous on purpose: on an idle call an RFC 4733 digit's first packet is on the wire
        before this returns, and no task is created (a relay of many calls' digits at once pays
        per digit only for the work itself). Bad digits or methods raise here, as with send_dtmf.
        """
        steps = parse_sequence(digits)
        chosen = self.choose_method(steps, method)
        tone = self.options.tone_ms if tone_ms is None else tone_ms
        gap = self.options.gap_ms if gap_ms is None else gap_ms
        vol = self.options.volume if volume is None else volume
        if not 10 <= tone <= 10000 or not 0 <= gap <= 10000 or not 0 <= vol <= 63:
            raise ValueError("tone length must be 10-10000 ms, gap 0-10000 ms, volume 0-63")
        if self.ended:
            raise CallFailed(481, f"call ended ({self.end_reason})")
        if chosen != "info" and not self.stream.session.send_enabled:
            raise ValueError(f"the peer holds the call (direction {self.negotiated.direction}): "
                             f"{chosen} digits would not be heard; use info")
        text = steps[0].digit if len(steps) == 1 and isinstance(steps[0], Tone) else (
            "".join(s.digit if isinstance(s, Tone) else "" for s in steps))
        send = _Send(steps, chosen, tone, gap, vol, text, asyncio.get_running_loop().create_future())
        if chosen != "info" and not self._waiting and (self._sender is None or self._sender.done()):
            self._queue_media(send)  # the media session keeps these in order by itself
        else:  # behind an INFO send (or an INFO itself): the worker keeps the order across methods
            self._waiting.append(send)
            if self._sender is None or self._sender.done():
                self._sender = start_eagerly(self._send_worker())
        return send.fut

    def _queue_media(self, send: _Send) -> None:
        try:
            job = self.stream.session.queue_dtmf(send.steps, send.method, send.tone, send.gap, send.volume)
        except Exception as exc:
            send.fut.set_exception(exc)
            return
        self._media_sends.add(send)
        job.add_done_callback(lambda job: self._media_sent(send, job))
        self.stream.start_dtmf()  # first event packet now, not on the next tick

    def _media_sent(self, send: _Send, job: DtmfSendJob) -> None:
        self._media_sends.discard(send)
        if send.fut.done():
            return
        if job.cancelled:
            send.fut.set_exception(DtmfCancelled("cancelled by cancel_dtmf()"))
        else:
            send.fut.set_result(DtmfSent(send.text, send.method))

    async def _send_worker(self) -> None:
        while self._waiting:
            send = self._waiting.popleft()
            if send.fut.done():
                continue
            if send.method != "info":
                self._queue_media(send)
                continue
            # an INFO digit follows the tones queued before it
            earlier = [s.fut for s in self._media_sends]
            if earlier:
                await asyncio.wait(earlier)
            if send.fut.done():  # cancel_dtmf() meanwhile
                continue
            if self.ended:
                send.fut.set_exception(CallFailed(481, f"call ended before the digits were sent ({self.end_reason})"))
                continue
            try:
                await self._send_info(send.steps, send.tone, send.gap)
            except Exception as exc:
                if not send.fut.done():
                    send.fut.set_exception(exc)
            else:
                if not send.fut.done():
                    send.fut.set_result(DtmfSent(send.text, send.method))

    async def _send_info(self, steps: list[Step], tone_ms: int, gap_ms: int) -> None:
        for i, step in enumerate(steps):
            if isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
                continue
            body = dtmf_info.format_dtmf_relay(step.code, tone_ms)
            resp = await self.sip.info(body.encode(), "application/dtmf-relay")
            if not 200 <= resp.status < 300:
                raise CallFailed(resp.status, f"INFO for {step.digit!r} refused: {resp.status} {resp.reason}")
            # pace like a key press: the tone's length, then the gap (none after the last digit)
            await asyncio.sleep((tone_ms + (gap_ms if i + 1 < len(steps) else 0)) / 1000)

    def cancel_dtmf(self) -> None:
        """Drop queued digits (their ``send_dtmf`` raises :class:`DtmfCancelled`); a tone already on
        the wire still gets its end packets. INFO digits already sent cannot be taken back."""
        while self._waiting:
            send = self._waiting.popleft()
            if not send.fut.done():
                send.fut.set_exception(DtmfCancelled("cancelled by cancel_dtmf()"))
        self.stream.session.cancel_dtmf()

    # ------------------------------------------------------------------ DTMF in
    async def dtmf_events(self) -> AsyncIterator[DtmfEvent]:
        """Each received key press once, until the call ends."""
        while True:
            ev = await self._dtmf_queue.get()
            if ev is None:
                return
            yield ev

    def _deliver(self, ev: object) -> None:
        if isinstance(ev, DtmfEvent):
            self.received.append(ev)
            self._dtmf_queue.put_nowait(ev)
            # per digit at DEBUG: at 100 digits a second a line each is a real cost; the gateway
            # logs a call's digits when it ends
            log.debug("call %s: DTMF %s by %s (%d ms)", self.call_id, ev.digit, ev.method, ev.duration_ms)
            if self.on_dtmf is not None:
                self.on_dtmf(ev)
        elif isinstance(ev, DtmfStart):
            if self.on_dtmf_start is not None:
                self.on_dtmf_start(ev)

    def _on_media_event(self, ev: object) -> None:
        if isinstance(ev, MediaTimeout):
            log.warning("call %s: no media for %.1f s, hanging up", self.call_id, ev.silent_for)
            asyncio.get_running_loop().create_task(self._hangup_timeout())
            return
        if isinstance(ev, MediaFailed):
            log.warning("call %s: %s, hanging up", self.call_id, ev.reason)
            asyncio.get_running_loop().create_task(self._hangup_media_failed(ev.reason))
            return
        self._deliver(ev)

    async def _hangup_media_failed(self, reason: str) -> None:
        # a BYE (or CANCEL/reject via hangup) whose end_reason names the media failure
        try:
            if self.sip.state is CallState.ESTABLISHED:
                await self.sip.bye(headers=[("Reason", 'Q.850;cause=41;text="media failure"')], reason=reason)
            else:
                await self.sip.hangup()
        except CallFailed:
            pass

    async def _hangup_timeout(self) -> None:
        try:
            await self.sip.hangup()
        except CallFailed:
            pass

    def _on_request(self, call: SipCall, req: Request) -> Reply | int | None:
        if req.method == "INFO":
            return self._on_info(req)
        if req.method == "INVITE":
            return self._on_reinvite(req) if req.body else self._on_late_reinvite(req)
        return None

    def _on_info(self, req: Request) -> Reply | int:
        ctype = (req.content_type or "").split(";")[0].strip().lower()
        if not req.body and ctype not in dtmf_info.CONTENT_TYPES:
            return 200  # an empty INFO is a keep-alive some PBXs send
        parsed = dtmf_info.parse_info_body(ctype, req.body)
        if isinstance(parsed, dtmf_info.InfoError):
            log.info("call %s: refusing INFO (%d): %s", self.call_id, parsed.status, parsed.reason)
            headers = [("Accept", ", ".join(dtmf_info.CONTENT_TYPES))] if parsed.status == 415 else []
            return Reply(parsed.status, reason=parsed.reason[:120].replace("\r", " ").replace("\n", " "),
                         headers=headers)
        duration = (parsed.duration_ms if parsed.duration_ms is not None else self.options.tone_ms) / 1000
        session = self.stream.session
        session.info_dtmf(parsed.code, duration, self.stream.engine.now())
        for ev in session.take_events():
            self._deliver(ev)
        return 200

    async def hold(self, legacy: bool = False) -> None:
        """Put the peer on hold (re-INVITE a=sendonly, or c=0.0.0.0 with ``legacy``)."""
        await self._reoffer(self._sdp.hold(legacy))
        self._held = True

    async def unhold(self) -> None:
        await self._reoffer(self._sdp.unhold())
        self._held = False

    async def _reoffer(self, offer: sdp_mod.SessionDescription) -> None:
        resp = await self.sip.reinvite(bytes(offer))
        if not 200 <= resp.status < 300:
            raise CallFailed(resp.status, f"re-INVITE refused: {resp.status} {resp.reason}")
        answer = sdp_mod.parse_sdp(resp.body)
        neg = answer if isinstance(answer, sdp_mod.SdpError) else self._sdp.receive_answer(answer)
        if not isinstance(neg, sdp_mod.NegotiatedAudio):
            raise CallFailed(488, f"unusable SDP answer to re-INVITE: {neg}")
        self._apply(neg)

    def _apply(self, neg: sdp_mod.NegotiatedAudio) -> None:
        """Follow the agreed codec, address and direction (hold: stop sending; no timeout while
        muted). The session is rebuilt only when codec or payload types change, since that resets
        its jitter buffer and queued audio."""
        old = self.negotiated
        if (neg.codec.name, neg.codec.rtp_clock, neg.payload_type, neg.telephone_event_pt) != (
                old.codec.name, old.codec.rtp_clock, old.payload_type, old.telephone_event_pt):
            log.info("call %s: codec now %s pt %d (was %s pt %d), telephone-event %s", self.call_id,
                     neg.codec.name, neg.payload_type, old.codec.name, old.payload_type, neg.telephone_event_pt)
            self.stream.configure(self.options.session_config(neg, self.sip.ua.local_uri()))
        self.negotiated = neg
        _apply_negotiated(self.stream, neg)

    def _on_late_reinvite(self, req: Request) -> Reply:
        """A re-INVITE without SDP: our current media as a fresh offer; the answer is in the ACK."""
        offer = self._sdp.offer("sendonly" if self._held else "sendrecv")
        self._late_offer_cseq = req.cseq[0]
        log.info("call %s: re-INVITE without SDP (CSeq %d): offering our media, answer expected in ACK",
                 self.call_id, req.cseq[0])
        return Reply(200, body=bytes(offer), content_type="application/sdp")

    def _on_ack(self, call: SipCall, ack: Request) -> None:
        if self._late_offer_cseq is None or ack.cseq[0] != self._late_offer_cseq:
            return
        self._late_offer_cseq = None
        neg = _answer_from_ack(self._sdp, ack)
        if isinstance(neg, str):
            log.warning("call %s: re-INVITE late offer: %s; hanging up", self.call_id, neg)
            asyncio.get_running_loop().create_task(self._bye_unusable_answer(neg))
            return
        self._apply(neg)
        log.info("call %s: answer in ACK applied, media now %s", self.call_id, neg.direction)

    async def _bye_unusable_answer(self, problem: str) -> None:
        try:
            await self.sip.bye(headers=[_reason_488(problem)], reason=problem)
        except CallFailed:
            pass
        finally:
            self._close_media()

    def _on_reinvite(self, req: Request) -> Reply | int | None:
        offer = sdp_mod.parse_sdp(req.body)
        if isinstance(offer, sdp_mod.SdpError):
            return Reply(400, reason=f"Bad SDP: {offer}"[:120])
        answer = self._sdp.answer(offer)
        if isinstance(answer, sdp_mod.Rejection):
            return Reply(answer.status, reason=answer.reason[:120])
        self._apply(answer.audio)
        log.info("call %s: re-INVITE, media now %s", self.call_id, answer.audio.direction)
        return Reply(200, body=bytes(answer.sdp), content_type="application/sdp")

    # ------------------------------------------------------------------ ending
    def _on_sip_state(self, call: SipCall) -> None:
        if call.state is CallState.ENDED:
            self._close_media()
        for cb in list(self._listeners):
            try:
                cb(self)
            except Exception:
                log.exception("call listener failed")

    def _close_media(self) -> None:
        if not self.stream.closed:
            self.stream.close()
        self._dtmf_queue.put_nowait(None)
        # digits not (fully) sent: the session drops its jobs without finishing them
        unsent = [*self._waiting, *self._media_sends]
        self._waiting.clear()
        self._media_sends.clear()
        for send in unsent:
            if not send.fut.done():
                send.fut.set_exception(CallFailed(481, f"call ended before the digits were sent ({self.end_reason})"))

    async def accept(self, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send the 200 OK for an inbound call :func:`answer_call` left in early media (the SDP
        is the one the 183 carried); returns once the ACK arrives. Raises :class:`CallFailed` if
        the caller gave up meanwhile. Does nothing once the call is established."""
        if self.sip.state is CallState.ESTABLISHED:
            return
        try:
            await self.sip.answer(self.sip.local_body, self.sip.local_content_type, headers=headers)
        except CallFailed:
            self._close_media()
            raise

    async def hangup(self) -> None:
        """End the call (BYE, or CANCEL/reject if not answered) and release its media."""
        try:
            await self.sip.hangup()
        finally:
            self._close_media()

    async def wait_ended(self) -> None:
        await self.sip.wait_ended()


# ---------------------------------------------------------------------- building calls

def _apply_negotiated(stream: MediaStream, neg: sdp_mod.NegotiatedAudio) -> None:
    session = stream.session
    if neg.remote_port and neg.remote_address not in ("0.0.0.0", "::"):
        rtp_addr = (neg.remote_address, neg.remote_port)
        if rtp_addr != session.remote:
            stream.set_remote(rtp_addr)
        if neg.remote_rtcp_port:
            session.remote_rtcp = (neg.remote_address, neg.remote_rtcp_port)
    session.send_enabled = neg.can_send
    session.expect_media = neg.can_receive


def _allow(msg: Request | Response) -> str | None:
    """The peer's Allow methods as one comma-separated string (None when absent)."""
    values = msg.get_all("Allow")
    return ", ".join(values) if values else None


def _negotiated_config(options: CallOptions, neg: sdp_mod.NegotiatedAudio, cname: str) -> SessionConfig:
    return options.session_config(neg, cname)


def _reason_488(problem: str) -> tuple[str, str]:
    """A Reason header (RFC 3326) for a BYE after an unusable SDP answer."""
    text = problem.replace("\\", "").replace('"', "'").replace("\r", " ").replace("\n", " ")[:100]
    return ("Reason", f'SIP ;cause=488 ;text="{text}"')


def _answer_from_ack(sdp_session: sdp_mod.SdpSession, ack: Request | None) -> sdp_mod.NegotiatedAudio | str:
    """The peer's answer to the offer we put in a 2xx, from its ACK, or what is wrong with it."""
    if ack is None:
        return "no ACK"
    if not ack.body:
        return "ACK carried no SDP answer to our offer (late offer)"
    ctype = (ack.content_type or "application/sdp").split(";")[0].strip().lower()
    if ctype != "application/sdp":
        return f"ACK body is {ctype}, not the SDP answer to our offer"
    parsed = sdp_mod.parse_sdp(ack.body)
    if isinstance(parsed, sdp_mod.SdpError):
        return f"bad SDP answer in ACK: {parsed}"
    neg = sdp_session.receive_answer(parsed)
    if not isinstance(neg, sdp_mod.NegotiatedAudio):
        return f"unusable SDP answer in ACK: {neg.reason}"
    return neg


_background: set[asyncio.Future[Any]] = set()


def _background_done(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("on_early_media failed", exc_info=task.exception())


class _EarlyMedia:
    """place_call's view of the answers in 18x and 200 (see the module docstring)."""

    def __init__(self, ua: UserAgent, stream: MediaStream, sdp_session: sdp_mod.SdpSession,
                 options: CallOptions, on_early_media: Callable[[MediaCall], Any] | None) -> None:
        self.ua = ua
        self.stream = stream
        self.sdp = sdp_session
        self.options = options
        self.on_early_media = on_early_media
        self.call: MediaCall | None = None
        self.applied: tuple[str, bytes] | None = None  # (To-tag, SDP body) media follows now
        self.had_early_media = False

    def _negotiate(self, body: bytes) -> sdp_mod.NegotiatedAudio | str:
        parsed = sdp_mod.parse_sdp(body)
        if isinstance(parsed, sdp_mod.SdpError):
            return f"bad SDP: {parsed}"
        neg = self.sdp.receive_answer(parsed)
        return neg if isinstance(neg, sdp_mod.NegotiatedAudio) else neg.reason

    def _follow(self, sip_call: SipCall, neg: sdp_mod.NegotiatedAudio, msg: Response) -> MediaCall:
        if self.call is None:
            self.stream.configure(_negotiated_config(self.options, neg, self.ua.local_uri()))
            _apply_negotiated(self.stream, neg)
            self.call = MediaCall(sip_call, self.stream, neg, self.sdp, self.options, _allow(msg))
        else:
            self.call._apply(neg)
        return self.call

    def provisional(self, sip_call: SipCall, resp: Response) -> None:
        """A 18x: start (or move) early media when it carries an SDP answer."""
        ctype = (resp.content_type or "").split(";")[0].strip().lower()
        if resp.status <= 100 or not resp.body or ctype != "application/sdp":
            return
        if sip_call.state not in (CallState.CALLING, CallState.EARLY):
            return  # a 18x that lost the race with the 200: the 200's answer stands
        key = (resp.to.tag or "", resp.body)
        if key == self.applied:
            return
        neg = self._negotiate(resp.body)
        if isinstance(neg, str):
            log.info("call %s: %d with unusable SDP, no early media: %s", sip_call.call_id, resp.status, neg)
            return
        first = self.call is None
        call = self._follow(sip_call, neg, resp)
        self.applied = key
        self.had_early_media = True
        log.info("call %s: early media from %d (To-tag %s): %s pt %d, telephone-event %s, peer RTP %s:%d",
                 sip_call.call_id, resp.status, key[0], neg.codec.name, neg.payload_type,
                 neg.telephone_event_pt, neg.remote_address, neg.remote_port)
        if first and self.on_early_media is not None:
            try:
                result = self.on_early_media(call)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    _background.add(task)
                    task.add_done_callback(_background_done)
            except Exception:  # noqa: BLE001
                log.exception("on_early_media failed")

    def final(self, sip_call: SipCall, resp: Response) -> MediaCall | str:
        """The 200: its answer wins (normally the same as the early one)."""
        tag = resp.to.tag or ""
        ctype = (resp.content_type or "application/sdp").split(";")[0].strip().lower()
        body = resp.body if ctype == "application/sdp" else b""
        if not body:
            if self.call is not None and self.applied is not None and self.applied[0] == tag:
                log.info("call %s: 200 without SDP; keeping the answer from early media", sip_call.call_id)
                self.call.peer_allow = _allow(resp) or self.call.peer_allow
                return self.call
            return "the 200 carried no SDP answer"
        if self.call is not None and self.applied == (tag, body):
            self.call.peer_allow = _allow(resp) or self.call.peer_allow
            return self.call
        neg = self._negotiate(body)
        if isinstance(neg, str):
            return neg
        if self.call is not None:
            log.info("call %s: the 200 (To-tag %s) answers differently from early media; following it",
                     sip_call.call_id, tag)
        call = self._follow(sip_call, neg, resp)
        call.peer_allow = _allow(resp) or call.peer_allow
        self.applied = (tag, body)
        return call


async def place_call(ua: UserAgent, engine: MediaEngine, uri: str, options: CallOptions | None = None, *,
                     on_early_media: Callable[[MediaCall], Any] | None = None,
                     **invite_kwargs: Any) -> MediaCall:
    """Call ``uri`` with an audio offer; return the answered :class:`MediaCall`.

    SDP in a 18x starts early media (module docstring); ``on_early_media(call)`` (may be async)
    then gets the :class:`MediaCall` before the answer, e.g. to send digits to an IVR that
    answers with 183. ``on_provisional`` in ``invite_kwargs`` is still called for every 1xx.
    Raises :class:`CallFailed` when the call is refused, times out, or the answer is unusable
    (the call is hung up then).
    """
    options = options or CallOptions()
    stream = await engine.open(SessionConfig(inband_detection=False))
    user_provisional = invite_kwargs.pop("on_provisional", None)
    try:
        sdp_session = sdp_mod.SdpSession(engine.host, stream.port, options.capabilities())
        early = _EarlyMedia(ua, stream, sdp_session, options, on_early_media)

        def provisional(call: SipCall, resp: Response) -> None:
            try:
                if user_provisional is not None:
                    user_provisional(call, resp)
            finally:
                early.provisional(call, resp)  # early media starts even if the callback failed

        offer = sdp_session.offer()
        sip_call = await ua.invite(uri, bytes(offer), on_provisional=provisional, **invite_kwargs)
        response = await sip_call.wait_answered()
    except BaseException:
        stream.close()
        raise
    result = early.final(sip_call, response)
    if isinstance(result, str):
        log.warning("call %s to %s: unusable SDP answer in the 200: %s; hanging up", sip_call.call_id, uri, result)
        try:
            await sip_call.bye(headers=[_reason_488(result)], reason=f"unusable SDP answer: {result}")
        finally:
            stream.close()
        raise CallFailed(488, f"unusable SDP answer: {result}")
    if early.had_early_media and result.on_audio is None:
        # nobody listened during early media: drop its queued frames (up to 1 s of ringback)
        # rather than hand them to a consumer attached after the answer as a burst of old audio
        result.stream.session.read_audio()
    neg = result.negotiated
    log.info("call %s to %s: %s/%d pt %d, telephone-event %s, peer RTP %s:%d", sip_call.call_id, uri,
             neg.codec.name, neg.codec.rtp_clock, neg.payload_type, neg.telephone_event_pt,
             neg.remote_address, neg.remote_port)
    return result


async def answer_call(sip_call: SipCall, engine: MediaEngine, options: CallOptions | None = None,
                      ring: bool = True, *, early: bool = False,
                      headers: Iterable[tuple[str, str]] = ()) -> MediaCall | None:
    """Answer an incoming INVITE with media; returns None (after rejecting) when impossible.

    An INVITE without SDP (late offer) gets our offer in the 200 and the answer is read from
    the ACK; if the ACK has no usable answer the call is ended with BYE (Reason 488) and None
    is returned. ``early``: answer with 183 + SDP and return in early media (module docstring;
    not for a late offer, which is answered at once). ``headers`` go on the 200 OK.
    """
    options = options or CallOptions()
    if not sip_call.remote_body:
        return await _answer_late_offer(sip_call, engine, options, ring, headers)
    offer = sdp_mod.parse_sdp(sip_call.remote_body)
    if isinstance(offer, sdp_mod.SdpError):
        log.info("call %s: bad SDP offer: %s", sip_call.call_id, offer)
        await sip_call.reject(400, f"Bad SDP: {offer}"[:120])
        return None
    try:
        stream = await engine.open(SessionConfig(inband_detection=False))
    except Exception as exc:
        log.warning("call %s: no media port: %s", sip_call.call_id, exc)
        await sip_call.reject(503, "No media port available")
        return None
    sdp_session = sdp_mod.SdpSession(engine.host, stream.port, options.capabilities())
    answer = sdp_session.answer(offer)
    if isinstance(answer, sdp_mod.Rejection):
        stream.close()
        log.info("call %s: offer refused: %s", sip_call.call_id, answer.reason)
        await sip_call.reject(answer.status, answer.reason[:120])
        return None
    neg = answer.audio
    stream.configure(_negotiated_config(options, neg, sip_call.ua.local_uri()))
    _apply_negotiated(stream, neg)
    call = MediaCall(sip_call, stream, neg, sdp_session, options, _allow(sip_call.request))
    try:
        if early:
            await sip_call.progress(bytes(answer.sdp))
            log.info("call %s: early media (183 with our answer): %s pt %d, telephone-event %s, peer RTP %s:%d",
                     sip_call.call_id, neg.codec.name, neg.payload_type, neg.telephone_event_pt,
                     neg.remote_address, neg.remote_port)
            return call
        if ring:
            await sip_call.ring()
        await sip_call.answer(bytes(answer.sdp), headers=headers)
    except CallFailed:
        call._close_media()
        raise
    log.info("call %s answered: %s pt %d, telephone-event %s, peer RTP %s:%d", sip_call.call_id,
             neg.codec.name, neg.payload_type, neg.telephone_event_pt, neg.remote_address, neg.remote_port)
    return call


async def _answer_late_offer(sip_call: SipCall, engine: MediaEngine, options: CallOptions,
                             ring: bool, headers: Iterable[tuple[str, str]] = ()) -> MediaCall | None:
    try:
        stream = await engine.open(SessionConfig(inband_detection=False))
    except Exception as exc:
        log.warning("call %s: no media port: %s", sip_call.call_id, exc)
        await sip_call.reject(503, "No media port available")
        return None
    sdp_session = sdp_mod.SdpSession(engine.host, stream.port, options.capabilities())
    offer = sdp_session.offer()
    # requests that come right after the ACK wait for the MediaCall instead of getting 501
    ready: asyncio.Future[MediaCall | None] = asyncio.get_running_loop().create_future()

    async def until_ready(call: SipCall, req: Request) -> Reply | int | None:
        media = await ready
        if media is None:
            return Reply(481)
        return media._on_request(call, req)

    sip_call.on_request = until_ready
    media: MediaCall | None = None
    try:
        log.info("call %s: INVITE without SDP (late offer): our offer goes in the 200", sip_call.call_id)
        if ring:
            await sip_call.ring()
        await sip_call.answer(bytes(offer), headers=headers)
        neg = _answer_from_ack(sdp_session, sip_call.ack)
        if isinstance(neg, str):
            log.warning("call %s: late offer: %s; hanging up", sip_call.call_id, neg)
            await sip_call.bye(headers=[_reason_488(neg)], reason=neg)
            return None
        stream.configure(_negotiated_config(options, neg, sip_call.ua.local_uri()))
        _apply_negotiated(stream, neg)
        media = MediaCall(sip_call, stream, neg, sdp_session, options, _allow(sip_call.request))
        log.info("call %s answered (late offer, answer in ACK): %s pt %d, telephone-event %s, peer RTP %s:%d",
                 sip_call.call_id, neg.codec.name, neg.payload_type, neg.telephone_event_pt,
                 neg.remote_address, neg.remote_port)
        return media
    finally:
        if not ready.done():
            ready.set_result(media)
        if media is None:
            stream.close()


__all__ = ["CallOptions", "DtmfCancelled", "DtmfError", "DtmfEvent", "DtmfSent", "DtmfStart", "MediaCall", "answer_call",
           "place_call"]
