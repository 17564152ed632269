"""A jitter buffer for received RTP audio (sans-IO: fed packets and the current time).

Why our own: aiortc's ``JitterBuffer`` is tied to its video frame assembly and its own clock; a
call needs a tiny, predictable object that a shared 20 ms media tick can drain for a thousand calls.

Model (fixed playout delay, re-based when the stream jumps):

* The first packet sets the playout clock: a frame with RTP timestamp ``T`` is due at
  ``base_time + (T - base_ts) / clock_rate``, where ``base_time = arrival + delay``.
* :meth:`JitterBuffer.pop` returns, in timestamp order, every frame due by ``now``. A hole in
  front of a later buffered frame comes out as a lost frame (``payload is None``) so the consumer can
  conceal it and keep its sample position; when nothing is buffered (silence suppression, end of a
  talk spurt) nothing comes out and the position is kept.
* A packet whose frame was already played out is *late* and dropped (counted). A duplicate is dropped
  (counted).
* Re-basing (counted in ``resyncs``): a packet far from the expected timestamp (a new talk spurt after
  DTX, a sender that restarted its clock or SSRC, a timestamp jump of more than ``max_jump``), or a
  packet arriving after its due time into an empty buffer (underrun: the sender's clock is slower than
  ours, or it paused) restarts the playout clock at this packet, rebuilding the cushion. A buffer that grew beyond ``max_delay`` (sender clock faster than
  ours) drops its oldest frames.

Adaptive delay (on by default): a late packet means the network's jitter exceeds the cushion, so
the delay grows by ``step`` (20 ms, one frame of silence in the playout) up to ``max_delay``; each
re-basing gives one step back, down to the configured delay.

Timestamps are 32-bit and wrap; the buffer unwraps them relative to the expected timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

_WRAP = 1 << 32
_HALF = 1 << 31


@dataclass(slots=True)
class JitterFrame:
    """One frame handed to the decoder. ``payload is None`` means lost (conceal it)."""

    timestamp: int  # RTP timestamp (32-bit)
    duration: int  # in RTP timestamp units
    payload: bytes | None
    sequence: int | None = None


@dataclass(slots=True)
class JitterStats:
    received: int = 0
    played: int = 0
    lost: int = 0
    late: int = 0
    duplicate: int = 0
    resyncs: int = 0
    overflow_dropped: int = 0
    delay_increases: int = 0


class JitterBuffer:
    """Reorders received audio frames and releases them at a steady pace.

    ``delay`` and ``max_delay`` are seconds; ``max_jump`` is in RTP timestamp units (default 2 s).
    """

    def __init__(
        self,
        clock_rate: int = 8000,
        delay: float = 0.06,
        max_delay: float = 0.5,
        max_jump: int | None = None,
        adaptive: bool = True,
        step: float = 0.02,
    ) -> None:
        if clock_rate <= 0:
            raise ValueError("clock_rate must be positive")
        if not 0 <= delay <= max_delay:
            raise ValueError("need 0 <= delay <= max_delay")
        self.clock_rate = clock_rate
        self.delay = delay
        self.initial_delay = delay
        self.max_delay = max_delay
        self.adaptive = adaptive
        self.step = step
        self.max_jump = max_jump if max_jump is not None else 2 * clock_rate
        self.stats = JitterStats()
        # unwrapped timestamp -> frame
        self._frames: dict[int, JitterFrame] = {}
        self._base_time = 0.0
        self._base_ts = 0  # unwrapped
        self._next_ts: int | None = None  # unwrapped timestamp of the next frame to play
        self._ssrc: int | None = None

    # -- input -----------------------------------------------------------------------------------
    def push(
        self,
        timestamp: int,
        payload: bytes,
        now: float,
        duration: int,
        sequence: int | None = None,
        ssrc: int | None = None,
    ) -> None:
        """Add one received frame. ``duration`` is the frame length in RTP timestamp units."""
        # Fast path (nearly every packet of a call): same SSRC, the stream under way and this
        # frame due within the cushion, neither late nor a duplicate nor a jump. It does what the
        # general path below does for such a packet, with the unwrap and due-time arithmetic
        # inlined (a media server runs this a thousand times per 20 ms).
        next_ts = self._next_ts
        if next_ts is not None and ssrc == self._ssrc and ssrc is not None:
            diff = (timestamp - next_ts) % _WRAP
            if diff < _HALF and diff <= self.max_jump:
                ts = next_ts + diff
                frames = self._frames
                if ts not in frames:
                    due = self._base_time + (ts - self._base_ts) / self.clock_rate
                    if frames or due >= now:
                        self.stats.received += 1
                        frames[ts] = JitterFrame(timestamp & 0xFFFFFFFF, duration, payload, sequence)
                        if due - now > self.max_delay:
                            self._trim(now)
                        return
        self._push(timestamp, payload, now, duration, sequence, ssrc)

    def _push(self, timestamp: int, payload: bytes, now: float, duration: int, sequence: int | None,
              ssrc: int | None) -> None:
        self.stats.received += 1
        if ssrc is not None and ssrc != self._ssrc:
            if self._ssrc is not None:
                self._frames.clear()
                self._next_ts = None
            self._ssrc = ssrc
        if self._next_ts is None:
            self._rebase(timestamp, now)
            assert self._next_ts is not None
        ts = self._unwrap(timestamp)
        if abs(ts - self._next_ts) > self.max_jump:
            # New talk spurt or a restarted clock: start over from here.
            self._frames.clear()
            self._rebase(timestamp, now)
            ts = self._unwrap(timestamp)
        elif ts < self._next_ts:
            self.stats.late += 1
            if self.adaptive and self._next_ts - ts <= self.max_jump // 4 and \
                    self.delay + self.step <= self.max_delay:
                # the network is jitterier than our cushion: play everything later from now on
                # (one frame of silence now) instead of losing more packets
                self.delay += self.step
                self._base_time += self.step
                self.stats.delay_increases += 1
            return
        elif not self._frames and self._due(ts) < now:
            # Underrun (sender's clock slower than ours, or a pause): rebuild the cushion here.
            self._rebase(timestamp, now)
            ts = self._unwrap(timestamp)
        if ts in self._frames:
            self.stats.duplicate += 1
            return
        self._frames[ts] = JitterFrame(timestamp & 0xFFFFFFFF, duration, payload, sequence)
        if self._due(ts) - now > self.max_delay:
            self._trim(now)

    # -- output ----------------------------------------------------------------------------------
    def pop(self, now: float) -> list[JitterFrame]:
        """Frames due by ``now``, in order; holes before a buffered frame come out as lost."""
        out: list[JitterFrame] = []
        next_ts = self._next_ts
        if next_ts is None or not self._frames:
            return out
        frames = self._frames
        base_time, base_ts, rate = self._base_time, self._base_ts, self.clock_rate
        while frames:
            if base_time + (next_ts - base_ts) / rate > now:  # _due(next_ts), inlined
                break
            frame = frames.pop(next_ts, None)
            if frame is None:
                following = min(frames)
                if following < next_ts:
                    # It starts inside audio already played (frames of uneven lengths overlap):
                    # late, as if it had arrived after its time; never a negative-length frame.
                    del frames[following]
                    self.stats.late += 1
                    continue
                # A hole: conceal up to the next buffered frame, one frame length at a time.
                gap = min(following - next_ts, self._guess_duration())
                out.append(JitterFrame(next_ts & 0xFFFFFFFF, gap, None))
                self.stats.lost += 1
                next_ts += gap
                continue
            out.append(frame)
            self.stats.played += 1
            next_ts += frame.duration or self._guess_duration()
        self._next_ts = next_ts
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`pop` next has something to return (None when empty)."""
        if self._next_ts is None or not self._frames:
            return None
        return self._due(min(self._next_ts, min(self._frames)))

    def __len__(self) -> int:
        return len(self._frames)

    def reset(self) -> None:
        self._frames.clear()
        self._next_ts = None

    # -- internals -------------------------------------------------------------------------------
    def _due(self, ts: int) -> float:
        return self._base_time + (ts - self._base_ts) / self.clock_rate

    def _rebase(self, timestamp: int, now: float) -> None:
        if self._next_ts is not None:
            self.stats.resyncs += 1
            # a fresh start (talk spurt, underrun) is the moment to give back one step of delay
            self.delay = max(self.initial_delay, self.delay - self.step)
        self._base_ts = timestamp
        self._next_ts = timestamp
        self._base_time = now + self.delay

    def _unwrap(self, timestamp: int) -> int:
        """Unwrapped timestamp closest to the expected one."""
        ref = self._next_ts if self._next_ts is not None else timestamp
        diff = (timestamp - ref) % _WRAP
        if diff >= _HALF:
            diff -= _WRAP
        return ref + diff

    def _guess_duration(self) -> int:
        for frame in self._frames.values():
            if frame.duration:
                return frame.duration
        return self.clock_rate // 50

    def _trim(self, now: float) -> None:
        """Sender faster than us: drop the oldest frames until the newest is due within max_delay."""
        newest = max(self._frames)
        assert self._next_ts is not None
        while self._frames and self._due(newest) - now > self.delay:
            oldest = min(self._frames)
            frame = self._frames.pop(oldest)
            self.stats.overflow_dropped += 1
            self._next_ts = oldest + (frame.duration or self._guess_duration())
            self._base_ts, self._base_time = self._next_ts, now
