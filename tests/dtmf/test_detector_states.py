"""The bank's digit state machine (a lookup table plus "latest write" registers, all windows of a
call at once) against a plain window-by-window reference of the same rules, on random decision
sequences: long runs, short runs, breaks, digit changes, ragged calls and calls of any length."""

from __future__ import annotations

import numpy as np
import pytest

from roomtone.dtmf.detector import _FULL, _WINDOW, DetectorConfig, DtmfDetectorBank
from roomtone.dtmf.digits import CANONICAL


class Reference:
    """One channel, one window at a time, written straight from the rules in the module docstring."""

    def __init__(self, s: int, on: int, off: int) -> None:
        self.s, self.on, self.off = s, on, off
        self.cur, self.onset, self.cand, self.cand_onset = -1, 0, -1, 0
        self.run, self.miss, self.end_est, self.ref = 0, 0, 0, 0.0
        self.windows = 0

    def step(self, d: int, lead: float, ref: float, e: list[float], ch: int) -> list[tuple]:
        s = self.s
        now = (self.windows + 1) * s
        self.windows += 1
        out: list[tuple] = []
        is_cur = self.cur >= 0 and d == self.cur
        other = d >= 0 and d != self.cur
        same = other and d == self.cand
        run = self.run + 1 if same else (1 if other else 0)
        if other and not same:
            self.cand_onset = now - _WINDOW * s + int(np.rint(lead * s))
        active = self.cur >= 0
        if active and not is_cur and self.miss == 0:  # first miss: where did the tone stop?
            rr = self.ref if self.ref > 0 else 1.0
            f = [min(x / rr, 1.0) for x in e]
            tail = (1.0 - f[3]) + (f[3] < _FULL) * ((1.0 - f[2]) + (f[2] < _FULL) * (
                (1.0 - f[1]) + (f[1] < _FULL) * (1.0 - f[0])))
            self.end_est = now - int(np.rint(tail * s))
        self.miss = 0 if is_cur else (self.miss + 1 if active else 0)
        if is_cur:
            self.ref = ref
        self.run, self.cand = run, (d if other else -1)
        confirm = run >= self.on
        if active and (self.miss >= self.off or confirm):
            end = min(self.end_est, self.cand_onset) if confirm else self.end_est
            out.append(("ended", CANONICAL[self.cur], self.onset, max(end, self.onset + 1), now, ch))
            self.cur, self.miss = -1, 0
        if confirm:
            out.append(("started", CANONICAL[self.cand], self.cand_onset, None, now, ch))
            self.cur, self.onset, self.ref = self.cand, self.cand_onset, ref
            self.run, self.cand = 0, -1
        return out


def decisions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Runs of one key or of nothing, lengths 1-12 windows: starts, breaks, changes, near misses."""
    out = np.empty(n, dtype=np.int64)
    pos = 0
    while pos < n:
        k = int(rng.integers(1, 13))
        out[pos:pos + k] = -1 if rng.random() < 0.45 else int(rng.integers(0, 16))
        pos += k
    return out


@pytest.mark.parametrize("seed", range(12))
def test_state_machine_matches_window_by_window_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    channels = int(rng.integers(1, 40))
    cfg = DetectorConfig(on_windows=int(rng.choice([1, 2, 5, 5, 9])), off_windows=int(rng.choice([1, 3, 7, 7])))
    bank = DtmfDetectorBank(channels, 8000, cfg)
    s = bank.block
    refs = [Reference(s, cfg.on_windows, cfg.off_windows) for _ in range(channels)]
    total = 600
    dec = np.stack([decisions(rng, total) for _ in range(channels)])  # (channels, windows)
    done = np.zeros(channels, dtype=np.int64)
    got: list[tuple] = []
    want: list[tuple] = []
    while (done < total).any():
        m = int(rng.choice([1, 2, 4, 4, 4, 7, 40]))
        ragged = rng.random() < 0.3
        counts = np.minimum(rng.integers(0, m + 1, channels) if ragged else np.full(channels, m), total - done)
        if not ragged and (counts != m).any():
            ragged = True
        energy = rng.uniform(0.0, 2e9, (m + _HIST_ROWS, channels)) * (rng.random((m + _HIST_ROWS, channels)) < 0.9)
        lead_all = rng.uniform(0.0, 1.0, (m, channels))
        ref_all = rng.uniform(1e8, 2e9, (m, channels))
        win = np.arange(m)[:, None]
        d_call = np.full((m, channels), -1, dtype=np.int64)
        for c in range(channels):
            d_call[:counts[c], c] = dec[c, done[c]:done[c] + counts[c]]
        j, ch = np.nonzero((d_call >= 0) & (win < counts[None, :]))
        got += [tuple(e[:5]) + (e.channel,) for e in bank._run_states(
            m, j, ch, d_call[j, ch], lead_all[j, ch], ref_all[j, ch], energy, counts if ragged else None)]
        bank._blocks += counts
        events: list[tuple[int, int, tuple]] = []
        for c in range(channels):
            for k in range(int(counts[c])):
                for ev in refs[c].step(int(d_call[k, c]), float(lead_all[k, c]), float(ref_all[k, c]),
                                       [float(energy[k + i, c]) for i in range(_WINDOW)], c):
                    events.append((k, c, ev))
        want += [ev for _, _, ev in sorted(events, key=lambda t: (t[0], t[1]))]  # time, then channel
        done += counts
    assert len(want) > 10
    assert got == want
    # and the state left behind: flush closes the same digits
    flushed = {e.channel: (e.digit, e.start) for e in bank.flush()}
    assert flushed == {c: (CANONICAL[r.cur], r.onset) for c, r in enumerate(refs) if r.cur >= 0}


_HIST_ROWS = _WINDOW - 1
