"""In-band DTMF on a call: tones into the outgoing audio, the detector on the received audio.

The tone generator and the detector live in :mod:`roomtone.dtmf` (pure DSP). This module adapts
them to a media session's 20 ms frame clock:

* :class:`InbandDtmfSender` renders a queued digit sequence frame by frame (phase-continuous, so a
  tone split across frames has no clicks), replacing the outgoing audio while it plays.
* :class:`StreamingInband` is one call's detector; :class:`InbandBank` runs many calls' detectors
  in one numpy pass per tick (how one core serves a thousand calls). Both report
  ``("started"|"ended", code, start_sample, duration_samples)`` tuples with sample indices counted
  from the first frame fed, which is what :meth:`RtpSession.finish_tick` consumes.
"""

from __future__ import annotations

import numpy as np

from roomtone.dtmf.detector import DtmfDetector, DtmfDetectorBank, DtmfEvent
from roomtone.dtmf.digits import Pause, Step, code_for
from roomtone.dtmf.tones import DEFAULT_HIGH_DBM0, DEFAULT_LOW_DBM0, ToneGenerator

InbandReport = tuple[str, int, int, int]


class InbandDtmfSender:
    """Renders steps (tones and pauses) as 20 ms frames of int16 audio.

    ``volume`` (dB below 0 dBm0, like the RFC 4733 field) sets the high-group tone level with the
    low group 2 dB below; None keeps the Q.23 defaults (-7/-5 dBm0).
    """

    def __init__(self, steps: list[Step], sample_rate: int, tone_ms: int, gap_ms: int,
                 volume: int | None = None) -> None:
        if volume is None:
            low, high = DEFAULT_LOW_DBM0, DEFAULT_HIGH_DBM0
        else:
            low, high = -float(volume) - 2.0, -float(volume)
        self._gen = ToneGenerator(sample_rate=sample_rate, low_dbm0=low, high_dbm0=high)
        self._steps = list(steps)
        self._tone_s = tone_ms / 1000
        self._gap_s = gap_ms / 1000
        self._buf = np.zeros(0, dtype=np.int16)
        self.tones_sent = 0
        self._tones_rendered = 0
        self._tone_ends: list[int] = []  # sample index where each rendered tone ends
        self._played = 0
        self.finished = not self._steps

    def _render_next(self) -> None:
        step = self._steps.pop(0)
        if isinstance(step, Pause):
            part = self._gen.silence(step.seconds)
        else:
            tone = self._gen.tone(step.code, self._tone_s)
            gap = self._gen.silence(self._gap_s) if self._steps else np.zeros(0, dtype=np.int16)
            self._tone_ends.append(self._played + len(self._buf) + len(tone))
            part = np.concatenate((tone, gap))
        self._buf = np.concatenate((self._buf, part))

    def next_frame(self, n: int) -> np.ndarray:
        while len(self._buf) < n and self._steps:
            self._render_next()
        frame = self._buf[:n]
        self._buf = self._buf[n:]
        self._played += len(frame)
        while self._tone_ends and self._tone_ends[0] <= self._played:
            self._tone_ends.pop(0)
            self.tones_sent += 1
        if len(frame) < n:
            frame = np.concatenate((frame, np.zeros(n - len(frame), dtype=np.int16)))
        if not self._steps and not len(self._buf):
            self.finished = True
        return frame


def _report(ev: DtmfEvent, base: int) -> InbandReport:
    if ev.kind == "started":
        return ("started", code_for(ev.digit), ev.start - base, 0)
    end = ev.end if ev.end is not None else ev.emitted_at
    return ("ended", code_for(ev.digit), ev.start - base, end - ev.start)


class StreamingInband:
    """One call's in-band detector, fed 20 ms frames."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._det = DtmfDetector(sample_rate)

    def process(self, frame: np.ndarray) -> list[InbandReport]:
        return [_report(ev, 0) for ev in self._det.feed(frame)]


class _Chunk:
    def __init__(self, size: int, sample_rate: int) -> None:
        self.bank = DtmfDetectorBank(size, sample_rate)
        self.size = size
        self.fed = np.zeros(size, dtype=np.int64)  # samples fed per channel so far
        self.base = np.zeros(size, dtype=np.int64)  # stream start of the slot's current owner
        self.owner = [False] * size
        self.quiet = [0] * size  # ticks of silence fed since the slot was freed


class InbandBank:
    """Many calls' detectors at one sample rate, one numpy pass per tick.

    :class:`~roomtone.dtmf.detector.DtmfDetectorBank` has a fixed channel count, so calls share
    fixed-size chunks of channels. A freed channel is fed silence for a few ticks (its state settles,
    any digit left sounding ends and is discarded) before a new call may take it; the new call's
    sample indices are counted from when it joined.
    """

    CHUNK = 64
    QUARANTINE_TICKS = 4  # 80 ms of silence: longer than the detector's 35 ms off-time

    def __init__(self, sample_rate: int, chunk: int = CHUNK) -> None:
        self.sample_rate = sample_rate
        self.chunk = chunk
        self._chunks: list[_Chunk] = []

    def add(self) -> int:
        for ci, c in enumerate(self._chunks):
            for ch in range(c.size):
                if not c.owner[ch] and c.quiet[ch] >= self.QUARANTINE_TICKS:
                    c.owner[ch] = True
                    c.base[ch] = c.fed[ch]
                    return ci * self.chunk + ch
        c = _Chunk(self.chunk, self.sample_rate)
        c.quiet = [self.QUARANTINE_TICKS] * c.size
        self._chunks.append(c)
        c.owner[0] = True
        return (len(self._chunks) - 1) * self.chunk

    def remove(self, slot: int) -> None:
        c = self._chunks[slot // self.chunk]
        c.owner[slot % self.chunk] = False
        c.quiet[slot % self.chunk] = 0

    def process(self, slots: list[int], frames: list[np.ndarray]) -> list[list[InbandReport]]:
        """Feed one frame per listed slot (all the same length); events per slot, in order."""
        results: list[list[InbandReport]] = [[] for _ in slots]
        by_chunk: dict[int, list[int]] = {}
        for i, slot in enumerate(slots):
            by_chunk.setdefault(slot // self.chunk, []).append(i)
        n = len(frames[0]) if frames else 0
        for ci, c in enumerate(self._chunks):
            idx = by_chunk.get(ci)
            if idx is None and all(q >= self.QUARANTINE_TICKS for q, o in zip(c.quiet, c.owner, strict=True)
                                   if not o):
                continue  # nothing to feed and nothing settling
            channel_of = {slots[i] % self.chunk: i for i in (idx or [])}
            uniform = all(len(frames[i]) == n for i in (idx or []))
            silent_ok = len(channel_of) == sum(c.owner)  # every live channel has a frame
            if uniform and n == 0:
                continue  # nothing new anywhere (the detector bank must not be fed empty blocks)
            if uniform and silent_ok:
                block = np.zeros((c.size, n), dtype=np.int16)
                for ch, i in channel_of.items():
                    block[ch] = frames[i]
                events = c.bank.feed(block)
                fed = np.full(c.size, n, dtype=np.int64)
            else:
                ragged: list[np.ndarray | None] = []
                fed = np.zeros(c.size, dtype=np.int64)
                for ch in range(c.size):
                    if ch in channel_of:
                        ragged.append(frames[channel_of[ch]])
                    elif not c.owner[ch]:
                        ragged.append(np.zeros(n, dtype=np.int16))
                    else:
                        ragged.append(None)
                    last = ragged[-1]
                    fed[ch] = 0 if last is None else len(last)
                events = c.bank.feed(ragged)
            c.fed += fed
            for ch in range(c.size):
                if not c.owner[ch] and c.quiet[ch] < self.QUARANTINE_TICKS:
                    c.quiet[ch] += 1
            for ev in events:
                target = channel_of.get(ev.channel)
                if target is not None and c.owner[ev.channel]:
                    results[target].append(_report(ev, int(c.base[ev.channel])))
        return results
