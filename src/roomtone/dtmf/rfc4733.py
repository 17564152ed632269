"""RFC 4733 telephone-event: payload codec, Sender and Receiver state machines (sans-IO).

Nothing here touches a socket or a clock. Callers feed ``now`` (seconds on any monotonic clock)
and packets; the objects return payloads to send, digit events, and the next time they need to
be polled (``next_deadline()``).

Payload codec
    :func:`parse_event` -> :class:`TelephoneEvent` or :class:`EventError` (never raises);
    :meth:`TelephoneEvent.serialize`.

Sender (one per call leg)
    ``Sender(config)`` keeps a queue. ``enqueue("12w3")`` never blocks and returns a
    :class:`SendHandle` whose ``done`` / ``cancelled`` state can be polled, or observed with
    ``add_done_callback`` (an asyncio adapter resolves a Future from it). ``poll(now)`` returns the
    :class:`EventPacket` objects due by ``now``; ``next_deadline()`` says when to poll again.

    The Sender works in RTP clock terms but does not own the RTP header: each
    :class:`EventPacket` carries the payload, the marker bit and the RTP ``timestamp`` of the
    event (segment) start, computed from a clock mapping ``(time_origin, timestamp_origin)``. A
    media session that also sends audio calls :meth:`Sender.sync` with its own mapping (the audio
    timestamp at some instant), then stamps SSRC and the next sequence number from the audio
    stream onto each packet, so telephone-events and audio share one SSRC, sequence space and
    timeline. ``Sender.active`` tells the session when an event is on the wire (to mute audio).

    Per RFC 4733: marker on the first packet of an event only; one timestamp per event; growing
    duration (each packet covers the tone through the end of its packet interval); the end packet
    repeated ``end_repeats`` times (default 3), one packet interval apart so a short burst of loss
    does not take all of them; events longer than the 16-bit duration field are split into
    segments (§2.5.1.3): each segment is the largest multiple of the packet interval that fits in
    0xFFFF samples, the next segment's timestamp is the previous one plus that length, and it
    carries no marker. Defaults: 160 ms tone, 120 ms gap, volume 10 (-10 dBm0), 20 ms packets,
    8000 Hz; 16000 and 48000 Hz work the same (at 48 kHz a tone longer than 1.36 s is segmented).

Receiver (one per call leg, any number of SSRCs)
    ``Receiver(clock_rate)``; ``receive(now, ssrc=..., timestamp=..., payload=..., marker=...,
    sequence=...)`` (or ``receive_rtp(now, RtpPacket)``) returns a list of :class:`DigitStarted`,
    :class:`DigitEnded` and :class:`Anomaly`; ``poll(now)`` ends events whose end packets were all
    lost (after ``end_timeout`` seconds without a packet) and ``next_deadline()`` says when.

    Events are keyed on (SSRC, timestamp, event code). ``started`` is emitted exactly once, on the
    first packet of a new key whether or not the marker is set; ``ended`` exactly once, on the first
    end packet, or when the event is superseded (a newer event begins, the SSRC changes) or times
    out. Keys recently finished are remembered per SSRC, so repeated or late end packets, reordered
    updates and a late end of an earlier digit arriving after a new digit began are absorbed. A
    new code on the previous timestamp is a new key press (timestamp reuse). A packet for the same
    code whose timestamp continues the open event (0xF000..0xFFFF samples after its segment start)
    is a long-event segment, not a new digit. All timestamp arithmetic wraps at 2**32.

What cannot be recovered (honest limits, exercised in tests/dtmf/test_rfc4733_channel.py)
    * Every packet of a key press lost: the digit never existed for us. With 8 + 3 packets per
      default digit this needs 11 losses in a row; at 20 % random loss that is about 2e-8 per digit.
    * A key press whose packets are all delayed past the start of the next digit arrives "late":
      it is reported (``late=True``) after the newer digit, i.e. out of order, rather than dropped.
    * All end packets lost and the update packets stop: the end is inferred from the timeout (or
      from the next digit), so the reported duration is the last one seen, which can be short.
    * A sender that reuses the same timestamp *and* the same code for a second press, without a
      marker, is indistinguishable from a retransmission of the first press; with the marker and
      a newer sequence number it is recognised.
    * A network outage longer than ``end_timeout`` in the middle of one long press ends the event
      by timeout; later packets of that same press are absorbed, never reported as a second digit.
"""

from __future__ import annotations

import logging
import math
import struct
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from roomtone.dtmf.digits import CANONICAL, MAX_EVENT, DtmfError, Pause, Step, Tone, parse_sequence
from roomtone.media.rtp import RtpPacket, seq_newer, ts_add, ts_diff

log = logging.getLogger(__name__)

CLOCK_RATES = (8000, 16000, 48000)
MAX_DURATION = 0xFFFF
_PAYLOAD = struct.Struct("!BBH")


# --- payload codec ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventError:
    """A telephone-event payload that cannot be used. A value: callers log it and drop the packet."""

    reason: str

    def __bool__(self) -> bool:
        return False


class TelephoneEvent(NamedTuple):
    """The 4-byte RFC 4733 §2.3 payload. ``volume`` is the attenuation 0-63 (meaning -dBm0).

    A NamedTuple rather than a dataclass: it is built once per packet, and tuples are cheap."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0
    reserved: bool = False  # the R bit: senders set 0, receivers ignore it

    def serialize(self) -> bytes:
        """Wire bytes. Raises ``ValueError`` for fields out of range (a programming error)."""
        err = validate_event(self)
        if err is not None:
            raise ValueError(err.reason)
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | (0x40 if self.reserved else 0)
                             | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        return CANONICAL[self.event] if self.event <= MAX_EVENT else None


def validate_event(ev: TelephoneEvent) -> EventError | None:
    if not 0 <= ev.event <= 255:
        return EventError(f"event code {ev.event} out of range 0-255")
    if not 0 <= ev.volume <= 63:
        return EventError(f"volume {ev.volume} out of range 0-63")
    if not 0 <= ev.duration <= MAX_DURATION:
        return EventError(f"duration {ev.duration} out of range 0-65535")
    return None


def _parse_fast(payload: bytes) -> TelephoneEvent:
    code, flags, duration = _PAYLOAD.unpack(payload)
    return TelephoneEvent(code, flags >= 0x80, flags & 0x3F, duration, bool(flags & 0x40))


def parse_event(payload: bytes) -> TelephoneEvent | EventError:
    """Read one telephone-event payload; never raises.

    Exactly 4 bytes are required (RTP padding is removed by the RTP parser; redundancy per
    RFC 2198 is a different payload type). Codes above 16 are valid RFC 4733 events (modem and
    line tones) and are returned; the Receiver ignores them with an anomaly.
    """
    if len(payload) != 4:
        return EventError(f"telephone-event payload is {len(payload)} bytes, expected 4")
    code, flags, duration = _PAYLOAD.unpack(payload)
    return TelephoneEvent(code, bool(flags & 0x80), flags & 0x3F, duration, bool(flags & 0x40))


# --- sender ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderConfig:
    clock_rate: int = 8000
    tone_ms: int = 160
    gap_ms: int = 120
    volume: int = 10
    packet_ms: int = 20
    end_repeats: int = 3

    def validate(self) -> None:
        if self.clock_rate not in CLOCK_RATES:
            raise ValueError(f"clock rate {self.clock_rate} not supported; use one of {CLOCK_RATES}")
        if self.packet_ms <= 0 or (self.clock_rate * self.packet_ms) % 1000:
            raise ValueError(f"packet interval {self.packet_ms} ms is not a whole number of samples")
        if self.tone_ms <= 0 or self.gap_ms < 0:
            raise ValueError("tone length must be positive and gap non-negative")
        if not 0 <= self.volume <= 63:
            raise ValueError(f"volume {self.volume} out of range 0-63")
        if self.end_repeats < 1:
            raise ValueError("end_repeats must be at least 1")


class EventPacket(NamedTuple):
    """One packet to send: caller adds SSRC, sequence number and payload type.

    ``timestamp`` is the RTP timestamp of the event (segment) start under the Sender's clock
    mapping; ``send_at`` is when it was due; ``handle`` is the queue entry it belongs to.
    """

    payload: bytes
    marker: bool
    timestamp: int
    event: TelephoneEvent
    send_at: float
    handle: SendHandle


class SendHandle:
    """A queued digit sequence. ``done`` once its last end packet went out (or trailing pause
    elapsed); ``cancelled`` if cancelled first. ``add_done_callback`` runs in ``poll``/``cancel``."""

    __slots__ = ("text", "steps", "tone_ms", "volume", "done", "cancelled", "tones_sent", "finished_at",
                 "_callbacks")

    def __init__(self, text: str, steps: list[Step], tone_ms: int | None = None,
                 volume: int | None = None) -> None:
        self.text = text
        self.steps = steps
        self.tone_ms = tone_ms
        self.volume = volume
        self.done = False
        self.cancelled = False
        self.tones_sent = 0
        self.finished_at: float | None = None
        self._callbacks: list[Callable[[SendHandle], None]] = []

    @property
    def finished(self) -> bool:
        return self.done or self.cancelled

    def add_done_callback(self, fn: Callable[[SendHandle], None]) -> None:
        if self.finished:
            fn(self)
        else:
            self._callbacks.append(fn)

    def _finish(self, now: float | None, cancelled: bool) -> None:
        if self.finished:
            return
        self.cancelled = cancelled
        self.done = not cancelled
        self.finished_at = now
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn(self)
            except Exception:  # a broken callback must not break the call's media
                log.exception("DTMF send-handle callback failed")

    def __repr__(self) -> str:
        state = "done" if self.done else "cancelled" if self.cancelled else "pending"
        return f"<SendHandle {self.text!r} {state} tones_sent={self.tones_sent}>"


@dataclass(slots=True)
class _ActiveTone:
    handle: SendHandle
    code: int
    volume: int
    start: float  # seconds
    start_ts: int  # RTP timestamp of the first segment
    total: int  # samples
    n: int = 1  # packets in the tone (the last one is the end packet, repeated)
    next_k: int = 0  # index of the next update packet
    end_sent: int = 0


class Sender:
    """Per-leg telephone-event sender. See the module docstring for the interface."""

    def __init__(self, config: SenderConfig | None = None, *, time_origin: float | None = None,
                 timestamp_origin: int = 0) -> None:
        self.config = config or SenderConfig()
        self.config.validate()
        self._rate = self.config.clock_rate
        self._psamples = self._rate * self.config.packet_ms // 1000
        self._pseconds = self.config.packet_ms / 1000
        self._segment = (MAX_DURATION // self._psamples) * self._psamples
        self._time_origin = time_origin
        self._ts_origin = timestamp_origin & 0xFFFFFFFF
        self._queue: deque[tuple[SendHandle, int]] = deque()  # (handle, index of next step)
        self._tone: _ActiveTone | None = None
        self._next_start: float | None = None  # earliest start of the next step
        self._after_tone: float | None = None  # earliest start after the last tone (gap only)
        self._last_start_ts: int | None = None

    # clock mapping

    def sync(self, time: float, timestamp: int) -> None:
        """Align with an audio stream: at ``time`` its RTP timestamp is ``timestamp``."""
        self._time_origin = time
        self._ts_origin = timestamp & 0xFFFFFFFF

    def timestamp_at(self, time: float) -> int:
        origin = self._time_origin if self._time_origin is not None else time
        return ts_add(self._ts_origin, round((time - origin) * self._rate))

    # queue

    def enqueue(self, digits: str | Iterable[Step] | int, *, tone_ms: int | None = None,
                volume: int | None = None) -> SendHandle:
        """Queue a digit, code or sequence (``"12w3#"``). Never blocks.

        Raises :class:`~roomtone.dtmf.digits.DtmfError` naming a bad character or code, and
        ``ValueError`` for a bad tone length or volume; nothing is queued then.
        """
        if isinstance(digits, str):
            steps = parse_sequence(digits)
            text = digits
        elif isinstance(digits, int):
            if not 0 <= digits <= MAX_EVENT:
                raise DtmfError(f"unknown DTMF event code {digits!r}: expected 0-16")
            steps = [Tone(digits)]
            text = CANONICAL[digits]
        else:
            steps = list(digits)
            if len(steps) == 1 and isinstance(steps[0], Tone):
                text = steps[0].digit
            else:
                text = "".join(s.digit if isinstance(s, Tone) else f"<{s.seconds}s>" for s in steps)
        if tone_ms is not None and tone_ms <= 0:
            raise ValueError("tone length must be positive")
        if volume is not None and not 0 <= volume <= 63:
            raise ValueError(f"volume {volume} out of range 0-63")
        handle = SendHandle(text, steps, tone_ms, volume)
        self._queue.append((handle, 0))
        return handle

    def cancel(self, handle: SendHandle | None = None, now: float | None = None) -> None:
        """Cancel one queued sequence, or everything when ``handle`` is None.

        A tone already on the wire is cut short, not abandoned: its end packets still go out on the
        next polls so the far end never sees a stuck key.
        """
        when = now
        targets = {id(h) for h, _ in self._queue} if handle is None else {id(handle)}
        if self._tone is not None and id(self._tone.handle) in targets:
            self._truncate()
        for h, _ in list(self._queue):
            if id(h) in targets:
                h._finish(when, cancelled=True)
        if self._tone is None and self._queue and id(self._queue[0][0]) in targets:
            self._next_start = self._after_tone  # a cancelled pause no longer delays what follows
        self._queue = deque(item for item in self._queue if id(item[0]) not in targets)
        if self._tone is not None and id(self._tone.handle) in targets:
            self._tone.handle._finish(when, cancelled=True)

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def active(self) -> bool:
        """True while a tone's packets (including end repeats) are being sent."""
        return self._tone is not None

    # timing

    def next_deadline(self) -> float | None:
        """When ``poll`` must next run; None when idle. A deadline in the past means now."""
        if self._tone is not None:
            return self._tone_time(self._tone)
        if self._queue:
            return self._next_start if self._next_start is not None else -math.inf
        return None


    def poll(self, now: float) -> list[EventPacket]:
        """Packets due by ``now``, oldest first. Updates that a late poll skipped over are not sent:
        durations are cumulative, so the newest update carries the same information."""
        if self._time_origin is None:
            self._time_origin = now
        out: list[EventPacket] = []
        while True:
            tone = self._tone
            if tone is None:
                if not self._start_next(now):
                    break
                continue
            due = self._tone_time(tone)
            if due > now:
                break
            self._emit(tone, now, out)
        return out

    # internals

    def _tone_time(self, tone: _ActiveTone) -> float:
        n = tone.n
        if tone.next_k < n - 1:
            return tone.start + tone.next_k * self._pseconds
        return tone.start + (n - 1 + tone.end_sent) * self._pseconds

    def _n_packets(self, total: int) -> int:
        return max(1, -(-total // self._psamples))

    def _packet(self, tone: _ActiveTone, k: int, end: bool, send_at: float) -> EventPacket:
        covered = tone.total if end else (k + 1) * self._psamples
        seg = (k * self._psamples) // self._segment
        ev = TelephoneEvent(tone.code, end, tone.volume, covered - seg * self._segment)
        payload = _PAYLOAD.pack(tone.code, (0x80 if end else 0) | tone.volume, ev.duration)  # fields valid by construction
        return EventPacket(payload, k == 0 and not tone.end_sent, ts_add(tone.start_ts, seg * self._segment),
                           ev, send_at, tone.handle)

    def _seg(self, k: int) -> int:
        return (k * self._psamples) // self._segment

    def _emit(self, tone: _ActiveTone, now: float, out: list[EventPacket]) -> None:
        n = tone.n
        if tone.next_k < n - 1:
            # A late poll skips updates it overran (durations are cumulative), but never the first
            # packet (marker) nor the first packet of a segment (it introduces the new timestamp).
            k = tone.next_k
            if k > 0:
                while (k + 1 < n - 1 and tone.start + (k + 1) * self._pseconds <= now
                       and self._seg(k + 1) == self._seg(k)):
                    k += 1
            out.append(self._packet(tone, k, False, tone.start + k * self._pseconds))
            tone.next_k = k + 1
            return
        tone.next_k = n - 1
        send_at = tone.start + (n - 1 + tone.end_sent) * self._pseconds
        out.append(self._packet(tone, n - 1, True, send_at))
        tone.end_sent += 1
        if tone.end_sent >= self.config.end_repeats:
            self._tone = None
            self._last_start_ts = tone.start_ts
            handle = tone.handle
            handle.tones_sent += 1
            tone_end = tone.start + tone.total / self._rate
            self._next_start = max(tone_end + self.config.gap_ms / 1000, send_at + self._pseconds)
            self._after_tone = self._next_start
            if self._queue and self._queue[0][0] is handle and self._queue[0][1] >= len(handle.steps):
                self._queue.popleft()
                handle._finish(send_at, cancelled=False)

    def _start_next(self, now: float) -> bool:
        """Start the next step if it is due; return True if the state changed."""
        while self._queue:
            handle, index = self._queue[0]
            if handle.finished:
                self._queue.popleft()
            elif index >= len(handle.steps):
                # only a trailing pause leaves a handle here: done once the pause has elapsed
                if self._next_start is not None and self._next_start > now:
                    return False
                self._queue.popleft()
                handle._finish(self._next_start if self._next_start is not None else now, cancelled=False)
            else:
                break
        if not self._queue:
            return False
        if self._next_start is not None and self._next_start > now:
            return False
        start = now
        handle, index = self._queue[0]
        step = handle.steps[index]
        self._queue[0] = (handle, index + 1)
        if isinstance(step, Pause):
            self._next_start = start + step.seconds
            return True
        tone_ms = handle.tone_ms or self.config.tone_ms
        volume = self.config.volume if handle.volume is None else handle.volume
        start_ts = self.timestamp_at(start)
        if self._last_start_ts is not None and start_ts == self._last_start_ts:
            start_ts = ts_add(start_ts, 1)  # never reuse the previous event's timestamp
        total = max(1, round(self._rate * tone_ms / 1000))
        self._tone = _ActiveTone(handle, step.code, volume, start, start_ts, total, self._n_packets(total))
        return True

    def _truncate(self) -> None:
        """Cut the active tone short after a cancel: end packets follow at once."""
        tone = self._tone
        assert tone is not None
        if tone.next_k == 0 and tone.end_sent == 0:
            self._tone = None  # nothing on the wire yet
            return
        if tone.end_sent:
            return
        tone.total = min(tone.total, tone.next_k * self._psamples)
        tone.n = self._n_packets(tone.total)
        tone.next_k = tone.n - 1


# --- receiver --------------------------------------------------------------------------------

EndReason = Literal["end", "timeout", "superseded", "ssrc_change"]


@dataclass(frozen=True, slots=True)
class DigitStarted:
    ssrc: int
    code: int
    timestamp: int  # RTP timestamp of the first segment
    volume: int
    at: float
    marker: bool  # whether the first packet we saw carried the marker
    late: bool = False  # arrived after a newer event had begun (reported out of order)

    @property
    def digit(self) -> str:
        return CANONICAL[self.code]


@dataclass(frozen=True, slots=True)
class DigitEnded:
    ssrc: int
    code: int
    timestamp: int
    duration: int  # samples, summed over long-event segments
    volume: int
    at: float
    reason: EndReason
    clock_rate: int = 8000
    end_packets: int = 0  # end packets seen so far (repeats arriving later are not counted)
    late: bool = False

    @property
    def digit(self) -> str:
        return CANONICAL[self.code]

    @property
    def seconds(self) -> float:
        return self.duration / self.clock_rate


AnomalyKind = Literal["bad_payload", "non_dtmf_event", "no_marker", "missing_end", "timestamp_reuse",
                      "late_event", "duplicate_start", "timestamp_jump"]


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: AnomalyKind
    ssrc: int
    timestamp: int
    code: int | None
    at: float
    detail: str


ReceiverEvent = DigitStarted | DigitEnded | Anomaly


@dataclass(slots=True)
class _Open:
    code: int
    first_ts: int  # first segment
    seg_ts: int  # current segment
    done_samples: int  # completed segments
    duration: int  # within current segment
    volume: int
    last_at: float
    last_seq: int | None


@dataclass(slots=True)
class _Stream:
    open: _Open | None = None
    # finished (timestamp, code) -> (last sequence seen, ended by a real end packet)
    finished: OrderedDict[tuple[int, int], tuple[int | None, bool]] = field(default_factory=OrderedDict)
    latest_ts: int | None = None
    last_at: float = 0.0


class Receiver:
    """Per-leg telephone-event receiver. See the module docstring for the interface."""

    def __init__(self, clock_rate: int = 8000, *, end_timeout: float = 0.3, memory: int = 32,
                 max_streams: int = 8) -> None:
        if clock_rate <= 0:
            raise ValueError("clock rate must be positive")
        self.clock_rate = clock_rate
        self.end_timeout = end_timeout
        self._memory = memory
        self._max_streams = max_streams
        self._streams: OrderedDict[int, _Stream] = OrderedDict()
        self._current_ssrc: int | None = None

    def receive_rtp(self, now: float, packet: RtpPacket) -> list[ReceiverEvent]:
        return self.receive(now, ssrc=packet.ssrc, timestamp=packet.timestamp, payload=packet.payload,
                            marker=packet.marker, sequence=packet.sequence)

    def next_deadline(self) -> float | None:
        deadlines = [s.open.last_at + self.end_timeout for s in self._streams.values() if s.open]
        return min(deadlines) if deadlines else None

    def poll(self, now: float) -> list[ReceiverEvent]:
        out: list[ReceiverEvent] = []
        for ssrc, stream in self._streams.items():
            self._check_timeout(ssrc, stream, now, out)
        return out

    def flush(self, now: float) -> list[ReceiverEvent]:
        """End every open event now (end of capture, call teardown) as timed out."""
        out: list[ReceiverEvent] = []
        for ssrc, stream in self._streams.items():
            if stream.open is not None:
                self._close(ssrc, stream, now, "timeout", 0, out)
        return out

    def receive(self, now: float, *, ssrc: int, timestamp: int, payload: bytes, marker: bool = False,
                sequence: int | None = None) -> list[ReceiverEvent]:
        out: list[ReceiverEvent] = []
        ev = _parse_fast(payload) if len(payload) == 4 else parse_event(payload)
        if isinstance(ev, EventError):
            log.info("dropping telephone-event from SSRC %08x: %s", ssrc, ev.reason)
            out.append(Anomaly("bad_payload", ssrc, timestamp, None, now, ev.reason))
            return out
        if ev.event > MAX_EVENT:
            log.debug("ignoring non-DTMF telephone-event %d from SSRC %08x", ev.event, ssrc)
            out.append(Anomaly("non_dtmf_event", ssrc, timestamp, ev.event, now,
                               f"event {ev.event} is not a DTMF key (0-16); ignored"))
            return out
        stream = self._stream(ssrc, now, out)
        self._check_timeout(ssrc, stream, now, out)
        stream.last_at = now
        key = (timestamp, ev.event)

        # 1. A key we already finished: repeats of end packets, late updates, or timestamp reuse.
        if key in stream.finished:
            last_seq, had_end = stream.finished[key]
            if (marker and not ev.end and sequence is not None and last_seq is not None
                    and seq_newer(sequence, last_seq) and had_end and stream.open is None):
                out.append(Anomaly("timestamp_reuse", ssrc, timestamp, ev.event, now,
                                   "new key press reuses the previous event's timestamp and code"))
                del stream.finished[key]
            else:
                if sequence is not None and (last_seq is None or seq_newer(sequence, last_seq)):
                    stream.finished[key] = (sequence, had_end)
                return out

        cur = stream.open
        # 2. The open event: an update or its end.
        if cur is not None and timestamp == cur.seg_ts and ev.event == cur.code:
            if (marker and not ev.end and sequence is not None and cur.last_seq is not None
                    and seq_newer(sequence, cur.last_seq)):
                out.append(Anomaly("duplicate_start", ssrc, timestamp, ev.event, now,
                                   "marker bit repeated inside an event"))
            cur.duration = max(cur.duration, ev.duration)
            cur.volume = ev.volume
            cur.last_at = now
            if sequence is not None and (cur.last_seq is None or seq_newer(sequence, cur.last_seq)):
                cur.last_seq = sequence
            if ev.end:
                cur.duration = ev.duration if ev.duration else cur.duration
                self._close(ssrc, stream, now, "end", 1, out)
            return out

        # 3. A long-event segment continuing the open event (RFC 4733 §2.5.1.3).
        if cur is not None and ev.event == cur.code:
            delta = ts_diff(timestamp, cur.seg_ts)
            if 0xF000 <= delta <= MAX_DURATION:
                stream.finished[(cur.seg_ts, cur.code)] = (cur.last_seq, False)
                cur.done_samples += delta
                cur.seg_ts = timestamp
                cur.duration = ev.duration
                cur.volume = ev.volume
                cur.last_at = now
                cur.last_seq = sequence
                stream.latest_ts = timestamp
                if ev.end:
                    self._close(ssrc, stream, now, "end", 1, out)
                return out
        # A segment of an event that already timed out (outage mid-press): absorb it. Only an
        # event that ended without its end packet can continue, and only without the marker (a
        # segment never carries it): otherwise the same key pressed again 0xF000-0xFFFF samples
        # after an earlier press (7.7-8.2 s at 8 kHz) would be swallowed as that press's segment.
        for (fts, fcode), (_, had_end) in reversed(stream.finished.items()):
            if (fcode == ev.event and not had_end and not marker
                    and 0xF000 <= ts_diff(timestamp, fts) <= MAX_DURATION):
                stream.finished[key] = (sequence, ev.end)
                self._trim(stream)
                return out

        # 4. Older than what we have seen: a late event (or a sender timestamp jump).
        if stream.latest_ts is not None:
            age = ts_diff(stream.latest_ts, timestamp)
            if age > 10 * self.clock_rate:
                out.append(Anomaly("timestamp_jump", ssrc, timestamp, ev.event, now,
                                   f"timestamp went back {age} samples; treating as a new timeline"))
                stream.latest_ts = None
                stream.finished.clear()
            elif age > 0:
                out.append(Anomaly("late_event", ssrc, timestamp, ev.event, now,
                                   "packet of an older, unseen event arrived after a newer one"))
                self._late(ssrc, stream, now, key, ev, marker, sequence, out)
                return out

        # 5. A new key press. Whatever was open is over (its end packets were lost).
        if cur is not None:
            if timestamp == cur.seg_ts:
                out.append(Anomaly("timestamp_reuse", ssrc, timestamp, ev.event, now,
                                   f"event {ev.event} reuses the timestamp of event {cur.code}"))
            self._close(ssrc, stream, now, "superseded", 0, out)
        elif any(ts == timestamp for ts, _ in stream.finished):
            out.append(Anomaly("timestamp_reuse", ssrc, timestamp, ev.event, now,
                               f"event {ev.event} reuses the timestamp of an earlier event"))
        if not marker:
            out.append(Anomaly("no_marker", ssrc, timestamp, ev.event, now,
                               f"first packet seen has no marker (duration {ev.duration}): "
                               "marker missing or start packet lost"))
        stream.open = _Open(ev.event, timestamp, timestamp, 0, ev.duration, ev.volume, now, sequence)
        if stream.latest_ts is None or ts_diff(timestamp, stream.latest_ts) > 0:
            stream.latest_ts = timestamp
        out.append(DigitStarted(ssrc, ev.event, timestamp, ev.volume, now, marker))
        if ev.end:
            self._close(ssrc, stream, now, "end", 1, out)
        return out

    # internals

    def _stream(self, ssrc: int, now: float, out: list[ReceiverEvent]) -> _Stream:
        if ssrc == self._current_ssrc:
            return self._streams[ssrc]
        if self._current_ssrc is not None and ssrc != self._current_ssrc:
            old = self._streams.get(self._current_ssrc)
            if old is not None and old.open is not None:
                self._close(self._current_ssrc, old, now, "ssrc_change", 0, out)
        self._current_ssrc = ssrc
        stream = self._streams.get(ssrc)
        if stream is None:
            stream = self._streams[ssrc] = _Stream()
            while len(self._streams) > self._max_streams:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(ssrc)
        return stream

    def _check_timeout(self, ssrc: int, stream: _Stream, now: float, out: list[ReceiverEvent]) -> None:
        # compare against the same sum next_deadline() returns, so polling at it always fires
        if stream.open is not None and now >= stream.open.last_at + self.end_timeout:
            self._close(ssrc, stream, now, "timeout", 0, out)

    def _close(self, ssrc: int, stream: _Stream, now: float, reason: EndReason, end_packets: int,
               out: list[ReceiverEvent]) -> None:
        cur = stream.open
        assert cur is not None
        stream.open = None
        stream.finished[(cur.seg_ts, cur.code)] = (cur.last_seq, reason == "end")
        self._trim(stream)
        if reason != "end":
            out.append(Anomaly("missing_end", ssrc, cur.first_ts, cur.code, now,
                               f"no end packet received; ended by {reason}"))
        out.append(DigitEnded(ssrc, cur.code, cur.first_ts, cur.done_samples + cur.duration, cur.volume,
                              now, reason, self.clock_rate, end_packets))

    def _late(self, ssrc: int, stream: _Stream, now: float, key: tuple[int, int], ev: TelephoneEvent,
              marker: bool, sequence: int | None, out: list[ReceiverEvent]) -> None:
        stream.finished[key] = (sequence, ev.end)
        self._trim(stream)
        out.append(DigitStarted(ssrc, ev.event, key[0], ev.volume, now, marker, late=True))
        out.append(DigitEnded(ssrc, ev.event, key[0], ev.duration, ev.volume, now,
                              "end" if ev.end else "superseded", self.clock_rate, int(ev.end), late=True))

    def _trim(self, stream: _Stream) -> None:
        while len(stream.finished) > self._memory:
            stream.finished.popitem(last=False)
