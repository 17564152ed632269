"""One SIP call as a participant of a room: the room half of the bridge.

A :class:`SipParticipant` sits between a phone leg (anything with the small :class:`PhoneLeg`
interface: the SIP call with its media) and the room manager. It

* joins the room as a participant of kind SIP with the identity, name and ``sip.*`` attributes
  the dispatch decision (or CreateSIPParticipant) chose, and keeps ``sip.callStatus`` current;
* publishes each key press from the phone once (``SipDTMF`` at its start, then the
  ``roomtone.dtmf`` detail at its end, see :mod:`roomtone.telephony.relay`); presses made before
  the participant joined (during the PIN prompt, while an outbound call's ``dtmf`` string plays)
  are kept, in order, and published on joining when ``publish_pre_join`` is on (default);
* plays ``sip_dtmf`` packets addressed to it to the phone through the leg's per-call queue,
  never awaiting the tones inside the room's data callback;
* leaves the room when the phone hangs up, and hangs the phone up when the room removes it
  (RemoveParticipant, DeleteRoom, a duplicate identity).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from livekit.protocol import models

from roomtone.aio import start_eagerly
from roomtone.dtmf.digits import DtmfError, Tone, interpret_sip_dtmf
from roomtone.rooms import Participant, ParticipantKind, RoomManager
from roomtone.telephony.matching import ATTR_CALL_STATUS
from roomtone.telephony.relay import DTMF_TOPIC, dtmf_detail, relay_to_phone, room_allows_sip_to_sip

log = logging.getLogger(__name__)

MAX_PRE_JOIN = 64
#: Room -> phone limits: a room participant must not be able to queue unbounded work on a call.
MAX_STEPS_PER_PACKET = 64  # digits and pauses in one SipDTMF
MAX_PENDING_SENDS = 32  # SipDTMF packets queued to one phone and not yet played


class PhoneLeg(Protocol):
    """What the bridge needs from a SIP call."""

    call_id: str

    def send_dtmf(self, digits: str, method: str | None = None) -> Awaitable[Any]:
        """Queue digits toward the phone (``method`` None = the trunk's mode); must not block."""
        ...

    async def hangup(self) -> None: ...


@dataclass
class BridgeOptions:
    publish_pre_join: bool = True
    allow_sip_to_sip: bool = False
    dtmf_method: str | None = None


@dataclass(eq=False)
class _Press:
    digit: str
    code: int
    method: str
    start: float  # the call's clock, to pair a press's start with its end
    wall_start: float
    published: bool = False


class SipParticipant:
    def __init__(
        self,
        leg: PhoneLeg,
        rooms: RoomManager,
        *,
        call_id: str,
        options: BridgeOptions | None = None,
        on_closed: Callable[[SipParticipant], Any] | None = None,
    ) -> None:
        self.leg = leg
        self.rooms = rooms
        self.call_id = call_id
        self.options = options or BridgeOptions()
        self.participant: Participant | None = None
        self.status = ""
        self.closed = False
        self._on_closed = on_closed
        self._pre_join: list[tuple[_Press, int | None]] = []  # (press, duration_ms once known)
        self._open_presses: list[_Press] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        self._kinds: dict[str, int] = {}
        self.relayed_to_phone: deque[str] = deque(maxlen=256)  # recent relays, for inspection
        self.published_from_phone: deque[str] = deque(maxlen=256)  # recent key presses published
        self._dtmf_counts = [0, 0]  # characters published from the phone, relayed to it
        self._pending_sends = 0
        self._room_allows_sip_to_sip = False  # the room's metadata may enable it (relay.py)

    # ---- room side

    @property
    def relays_sip_to_sip(self) -> bool:
        """Digits from other SIP participants reach this phone: the trunk or the room says so."""
        return self.options.allow_sip_to_sip or self._room_allows_sip_to_sip

    @property
    def identity(self) -> str:
        return self.participant.identity if self.participant else ""

    async def join(
        self, room: str, identity: str, *, name: str, metadata: str, attributes: dict[str, str], status: str = "active"
    ) -> Participant:
        attrs = dict(attributes)
        attrs[ATTR_CALL_STATUS] = status
        self.status = status
        self.participant = await self.rooms.add_sip_participant(
            room,
            identity,
            name=name,
            metadata=metadata,
            attributes=attrs,
            on_data=self._on_room_data,
            data_kinds={"sip_dtmf"},  # the phone plays tones only: user packets skip us
            # other phones' tones skip us too unless SIP-to-SIP relay is on (relay_to_phone
            # still decides for each packet that arrives); the room may turn it on later
            data_from_sip=self.options.allow_sip_to_sip,
            on_close=self._on_removed,
            on_participants=self._on_participants,
            on_room=self._on_room,
        )
        self._on_room(await self.participant.room())
        self._kinds = {p.identity: p.kind for p in self.participant.others()}
        log.info("call %s joined room %s as %s (%s)", self.call_id, room, identity, self.participant.sid)
        self._flush_pre_join()
        return self.participant

    async def set_status(self, status: str) -> None:
        if status == self.status:
            return
        self.status = status
        if self.participant is not None and self.participant.active:
            try:
                await self.participant.update(attributes={ATTR_CALL_STATUS: status})
            except Exception as exc:  # the room may be closing; the status is informational
                log.info("call %s: could not set sip.callStatus=%s: %s", self.call_id, status, exc)

    def _on_room(self, room: models.Room) -> None:
        """Room metadata changed (or we joined): follow its SIP-to-SIP setting."""
        allowed = room_allows_sip_to_sip(room.metadata)
        if allowed != self._room_allows_sip_to_sip:
            self._room_allows_sip_to_sip = allowed
            log.info("call %s: room %s %s SIP-to-SIP DTMF relay", self.call_id, room.name,
                     "enables" if allowed else "no longer enables")
        if self.participant is not None:
            self.participant.endpoint.data_from_sip = self.relays_sip_to_sip  # type: ignore[attr-defined]

    def _on_participants(self, infos: list[models.ParticipantInfo]) -> None:
        """Keep identity -> kind current, so relay decisions stay O(1) in big rooms."""
        for info in infos:
            if info.state == models.ParticipantInfo.DISCONNECTED:
                self._kinds.pop(info.identity, None)
            else:
                self._kinds[info.identity] = info.kind

    def _sender_is_sip(self, identity: str) -> bool:
        kind = self._kinds.get(identity)
        if kind is None and self.participant is not None:
            other = self.rooms.participant(self.participant.room_name, identity)
            kind = int(other.record.kind) if other is not None else None
        return kind == ParticipantKind.SIP

    def _on_room_data(self, packet: models.DataPacket) -> None:
        if packet.WhichOneof("value") != "sip_dtmf" or self.closed:
            return
        sender = packet.participant_identity
        decision = relay_to_phone(
            packet,
            own_identity=self.identity,
            sip_identities=(sender,) if sender and self._sender_is_sip(sender) else (),
            allow_sip_to_sip=self.relays_sip_to_sip,
        )
        if not decision.relay:
            log.debug("call %s: not relaying DTMF from %s: %s", self.call_id, packet.participant_identity, decision.reason)
            return
        dtmf = packet.sip_dtmf
        try:
            steps = interpret_sip_dtmf(dtmf.code, dtmf.digit)
        except DtmfError as exc:
            log.warning(
                "call %s: ignoring SipDTMF{code=%d, digit=%r} from %s: %s",
                self.call_id, dtmf.code, dtmf.digit, packet.participant_identity, exc,
            )
            return
        if len(steps) > MAX_STEPS_PER_PACKET:
            log.warning(
                "call %s: dropping SipDTMF from %s: %d digits and pauses in one packet (limit %d)",
                self.call_id, packet.participant_identity, len(steps), MAX_STEPS_PER_PACKET,
            )
            return
        if self._pending_sends >= MAX_PENDING_SENDS:
            log.warning(
                "call %s: dropping SipDTMF %r from %s: %d sends already queued to the phone (limit %d)",
                self.call_id, dtmf.digit or dtmf.code, packet.participant_identity, self._pending_sends,
                MAX_PENDING_SENDS,
            )
            return
        if len(steps) == 1 and isinstance(steps[0], Tone):  # the usual packet: one digit
            digits = steps[0].digit
        else:
            digits = "".join(getattr(s, "digit", "") or _pause_char(s) for s in steps)
        # per digit at DEBUG (a line costs ~25 µs, a sizeable part of a relay); the call's end
        # logs every digit both ways at INFO
        log.debug("call %s: DTMF %r from %s -> phone", self.call_id, digits, packet.participant_identity)
        self.relayed_to_phone.append(digits)
        self._dtmf_counts[1] += len(digits)
        # queued here and now, not in a task: with many calls a task per digit waits behind all
        # the others (an idle call's first RFC 4733 packet leaves before this returns)
        try:
            sent = self.leg.send_dtmf(digits, self.options.dtmf_method)
            if inspect.iscoroutine(sent):
                fut = start_eagerly(sent)
                self._track(fut)  # the loop keeps only weak references to tasks
            else:
                fut = asyncio.ensure_future(sent)
        except Exception as exc:
            log.warning("call %s: DTMF %r to the phone failed: %s", self.call_id, digits, exc)
            return
        self._pending_sends += 1
        fut.add_done_callback(lambda fut: self._sent(digits, fut))

    def _sent(self, digits: str, fut: asyncio.Future[Any]) -> None:
        self._pending_sends -= 1
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None:
            log.warning("call %s: DTMF %r to the phone failed: %s", self.call_id, digits, exc)

    def _on_removed(self, reason: int) -> None:
        """The room removed us: hang the phone up."""
        if self.closed:
            return
        log.info("call %s: removed from the room (reason %d); hanging up", self.call_id, reason)
        self._spawn(self.close("removed from room", hangup=True, leave=False))

    # ---- phone side

    def phone_dtmf_start(self, digit: str, code: int, method: str, start: float, wall: float | None = None) -> None:
        """A key press began on the phone (published at once, for latency). ``start``: call clock."""
        press = _Press(digit, code, method, start, time.time() if wall is None else wall)
        self._open_presses.append(press)
        del self._open_presses[:-16]
        if self.participant is None:
            self._buffer(press, None)
            return
        self._publish_dtmf(press)

    def phone_dtmf_end(
        self, digit: str, code: int, method: str, duration_ms: int | None, start: float, wall: float | None = None
    ) -> None:
        """A key press ended (or arrived whole): publish its detail, and the digit if not yet."""
        press = self._match_open(code, start)
        if press is None:
            press = _Press(digit, code, method, start, time.time() if wall is None else wall)
            if self.participant is None:
                self._buffer(press, duration_ms)
                return
            self._publish_dtmf(press)
        elif self.participant is None:
            for i, (p, _) in enumerate(self._pre_join):
                if p is press:
                    self._pre_join[i] = (p, duration_ms)
            return
        self._publish_detail(press, duration_ms, pre_join=False)

    def _match_open(self, code: int, start: float) -> _Press | None:
        for press in self._open_presses:
            if press.code == code and abs(press.start - start) < 0.5:
                self._open_presses.remove(press)
                return press
        return None

    def _buffer(self, press: _Press, duration_ms: int | None) -> None:
        if not self.options.publish_pre_join:
            log.info("call %s: digit %s before joining not kept (publish_pre_join off)", self.call_id, press.digit)
            return
        if len(self._pre_join) >= MAX_PRE_JOIN:
            log.warning("call %s: more than %d digits before joining; dropping %s", self.call_id, MAX_PRE_JOIN, press.digit)
            return
        self._pre_join.append((press, duration_ms))

    def take_pre_join_digits(self, digits: str) -> None:
        """Forget buffered presses that were consumed locally (the PIN and its ``#``)."""
        remaining = list(digits)
        kept = []
        for press, dur in self._pre_join:
            if remaining and press.digit == remaining[0]:
                remaining.pop(0)
                continue
            kept.append((press, dur))
        self._pre_join = kept

    def _flush_pre_join(self) -> None:
        buffered, self._pre_join = self._pre_join, []
        for press, duration_ms in buffered:
            self._publish_dtmf(press)
            if duration_ms is not None or press not in self._open_presses:
                self._publish_detail(press, duration_ms, pre_join=True)
        if buffered:
            log.info("call %s: published %d digit(s) pressed before joining", self.call_id, len(buffered))

    def _publish_dtmf(self, press: _Press) -> None:
        if self.participant is None or press.published:
            return
        press.published = True
        self.published_from_phone.append(press.digit)
        self._dtmf_counts[0] += 1
        routed = self.participant.publish_dtmf(press.code, press.digit)
        if routed.dropped:
            log.warning("call %s: DTMF %s not delivered: %s", self.call_id, press.digit, routed.dropped)

    def _publish_detail(self, press: _Press, duration_ms: int | None, *, pre_join: bool) -> None:
        if self.participant is None:
            return
        payload = dtmf_detail(
            digit=press.digit, code=press.code, method=press.method, duration_ms=duration_ms,
            start=press.wall_start, call_id=self.call_id, identity=self.identity, pre_join=pre_join,
        )
        self.participant.publish_data(payload, topic=DTMF_TOPIC, reliable=True)

    # ---- ending

    async def close(self, reason: str, *, hangup: bool, leave: bool = True) -> None:
        """End the bridge once: status hangup, leave the room, hang up the phone as asked."""
        if self.closed:
            return
        await self.set_status("hangup")
        self.closed = True
        if leave and self.participant is not None and self.participant.active:
            try:
                await self.participant.leave()
            except Exception as exc:
                log.info("call %s: leaving the room failed: %s", self.call_id, exc)
        if hangup:
            try:
                await self.leg.hangup()
            except Exception as exc:
                log.info("call %s: hangup failed: %s", self.call_id, exc)
        log.info("call %s ended: %s; DTMF from the phone %s, to the phone %s", self.call_id, reason,
                 _digits_summary(self.published_from_phone, self._dtmf_counts[0]),
                 _digits_summary(self.relayed_to_phone, self._dtmf_counts[1]))
        if self._on_closed is not None:
            self._on_closed(self)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        self._track(asyncio.ensure_future(coro))

    def _track(self, task: asyncio.Future[Any]) -> None:
        if task.done():
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _pause_char(step: Any) -> str:
    seconds = getattr(step, "seconds", 0.5)
    return "W" if seconds >= 1.0 else "w"


def _digits_summary(recent: deque[str], count: int) -> str:
    """``'1234#' (5)``; beyond what ``recent`` keeps, the earlier ones are shown as ``...``."""
    if not count:
        return "none"
    text = "".join(recent)
    return f"{'...' if count > len(text) else ''}{text!r} ({count})"
