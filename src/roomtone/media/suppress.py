"""Tone suppression: mute DTMF spans in the received audio handed onward (to a room, to STT).

Speech recognisers transcribe DTMF beeps as noise words, so a call can mute each key press in the
audio it passes on. Positions are absolute sample indices of the decoded stream.

* RFC 4733 events say where a press starts in the RTP clock before its audio leaves the jitter
  buffer, so their spans can be muted with no extra delay.
* The in-band detector knows a tone only after hearing tens of milliseconds of it. To mute from the
  onset, the onward audio is delayed by ``delay_samples`` (default 40 ms at the call's rate); a
  shorter delay lets the first part of each tone through, and 0 disables the delay line.

``margin_samples`` widens every span at both ends (default 10 ms) to take the tone's edges too.
Muting ramps over a few samples to avoid clicks.

A span opened by :meth:`ToneSuppressor.mute` with no end is closed by :meth:`ToneSuppressor.close`,
best with the handle ``mute`` returned (positions computed at the start and at the end of a press
may differ, e.g. when the peer sends events but no audio). ``max_open_samples`` bounds a span left
open (a lost end): it stops muting after that many samples instead of muting the call forever.
"""

from __future__ import annotations

from collections import deque

import numpy as np

_RAMP = 16


class ToneSuppressor:
    def __init__(self, delay_samples: int = 320, margin_samples: int = 80,
                 max_open_samples: int | None = None) -> None:
        if delay_samples < 0 or margin_samples < 0:
            raise ValueError("delay and margin must be >= 0")
        self.delay_samples = delay_samples
        self.margin_samples = margin_samples
        self.max_open_samples = max_open_samples
        self._spans: deque[list[int | None]] = deque()  # [start, end or None while open]
        self._pending = np.zeros(delay_samples, dtype=np.int16)  # the delay line
        self._frames: deque[np.ndarray] | None = None  # the same, as whole frames
        self._out_pos = -delay_samples  # sample index of the next sample handed onward
        self.muted_samples = 0

    def mute(self, start: int, end: int | None = None) -> list[int | None]:
        """Mute ``[start, end)`` (end None: until :meth:`close`); returns the span's handle."""
        span: list[int | None] = [max(0, start - self.margin_samples),
                                  None if end is None else end + self.margin_samples]
        self._spans.append(span)
        return span

    def close(self, start: int, end: int, span: list[int | None] | None = None) -> None:
        """End the open span ``span`` (from :meth:`mute`), else the open one that began near
        ``start``; add the span if none is open."""
        if span is not None and span[1] is None:
            span[1] = end + self.margin_samples
            return
        lo = max(0, start - self.margin_samples)
        for span in self._spans:
            if span[1] is None and abs((span[0] or 0) - lo) <= 4 * self.margin_samples + 1:
                span[1] = end + self.margin_samples
                return
        self.mute(start, end)

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Push ``len(frame)`` new samples; get as many delayed samples back, tones muted."""
        frames = self._frames
        if frames is not None and not self._spans:
            # the steady state (whole-frame delay line, nothing to mute): what the code below
            # does in that case, without its bookkeeping
            n = len(frame)
            if n and self.delay_samples % n == 0:
                frames.append(frame)
                self._out_pos += n
                return frames.popleft()
        return self._process(frame)

    def _process(self, frame: np.ndarray) -> np.ndarray:
        n = len(frame)
        spans = self._spans
        if self.delay_samples:
            if n and self.delay_samples % n == 0:
                # whole-frame delay line: no copying, just a queue of frames
                if self._frames is None:
                    self._frames = deque(np.zeros((self.delay_samples // n, n), dtype=np.int16))
                self._frames.append(frame)
                out = self._frames.popleft()
                if spans:
                    out = out.copy()
            else:
                if self._frames is not None:  # frame size changed: back to a sample delay line
                    self._pending = np.concatenate(list(self._frames)) if self._frames else self._pending
                    self._frames = None
                joined = np.concatenate((self._pending, frame.astype(np.int16, copy=False)))
                out = joined[:n].copy()
                self._pending = joined[n:]
        else:
            out = frame.astype(np.int16, copy=bool(spans))
        lo, hi = self._out_pos, self._out_pos + n
        self._out_pos = hi
        if not spans:
            return out
        limit = self.max_open_samples
        if limit is not None:  # an open span that outlived the limit (its end was lost) ends there
            for span in spans:
                if span[1] is None and hi - (span[0] or 0) > limit:
                    span[1] = (span[0] or 0) + limit
        for span in spans:
            s, e = span[0] or 0, span[1]
            if s >= hi or (e is not None and e <= lo):
                continue
            a = max(s, lo) - lo
            b = n if e is None else min(e, hi) - lo
            if b > a:
                out[a:b] = 0
                self.muted_samples += b - a
                # short fades at the edges of the muted span to avoid clicks
                if a >= 1 and s > lo:
                    k = min(_RAMP, a)
                    out[a - k:a] = (out[a - k:a] * np.linspace(1.0, 0.0, k)).astype(np.int16)
                if e is not None and e < hi:
                    k = min(_RAMP, n - b)
                    out[b:b + k] = (out[b:b + k] * np.linspace(0.0, 1.0, k)).astype(np.int16)
        # forget spans that are over, wherever they sit (an open one ahead must not pin them)
        if any(e is not None and e <= hi for _, e in spans):
            self._spans = deque(span for span in spans if span[1] is None or span[1] > hi)
        return out
