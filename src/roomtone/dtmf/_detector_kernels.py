"""Compiled (numba) kernels for :class:`roomtone.dtmf.detector.DtmfDetectorBank`: the checks on the
windows that passed the cheap tests, and the digit state machine.

Why: on DTMF-heavy traffic these two stages are a few hundred small numpy operations per audio
tick (each a few microseconds of call overhead on a few hundred elements), which kept the bank
below spandsp's speed. Here they are plain loops compiled by numba. This module is optional:
the detector imports it lazily on first use and keeps its numpy path when numba is missing or
fails to compile.

The two paths must decide identically, so every floating-point expression below is written in
the same order as its numpy counterpart in ``detector.py`` (same operands, same association,
multiplication by a reciprocal where numpy does that, ``bool * float`` kept as a multiplication).
numba compiles without fast-math, so LLVM neither reorders nor fuses (no FMA contraction) them;
``tests/dtmf/test_detector_accel.py`` compares both paths event for event.
"""

from __future__ import annotations

import logging
from typing import Any

import numba
import numpy as np

log = logging.getLogger(__name__)

# must match detector.py
_WINDOW = 4
_FULL = 0.85
_FRESH, _IS_CUR, _FIRST_MISS, _CONFIRM, _ENDED = 1, 2, 4, 8, 16
_FLAG_SHIFT = 32
_STATE_MASK = (1 << _FLAG_SHIFT) - 1
_HALF_PI = np.pi / 2


def _atan(x: float) -> float:
    """detector._atan for one value (same operations, same order)."""
    big = abs(x) > 1
    y = 1.0 / x if big else x
    y2 = y * y
    a = y * (0.9998660 + y2 * (-0.3302995 + y2 * (0.1801410 + y2 * (-0.0851330 + y2 * 0.0208351))))
    if big:
        return (_HALF_PI if x > 0 else -_HALF_PI) - a
    return a


def _windows(valid: Any, q: Any, dft: Any, energy: Any, consts: Any, tan2_half: Any, code_table: Any,
             coh2: float, min_coverage: float, max_spread: float,
             out_j: Any, out_ch: Any, out_code: Any, out_lead: Any, out_ref: Any) -> int:
    """DtmfDetectorBank._windows: fills the ``out_*`` arrays (row-major window order), returns the count."""
    m, c = valid.shape
    n = 0
    for jj in range(m):
        for ch in range(c):
            if not valid[jj, ch]:
                continue
            # coverage
            w0 = energy[jj, ch]
            w1 = energy[jj + 1, ch]
            w2 = energy[jj + 2, ch]
            w3 = energy[jj + 3, ch]
            a = max(w0, w1)
            b = min(w0, w1)
            cc = max(w2, w3)
            d = min(w2, w3)
            r = (max(a, cc) + max(min(a, cc), max(b, d))) * 0.5
            inv = 1.0 / (r if r > 0 else 1.0)
            f0 = min(w0 * inv, 1.0)
            f1 = min(w1 * inv, 1.0)
            f2 = min(w2 * inv, 1.0)
            f3 = min(w3 * inv, 1.0)
            if not f0 + f1 + f2 + f3 >= min_coverage:
                continue
            lead = 1.0 - f3
            lead = (1.0 - f2) + (1.0 if f2 < _FULL else 0.0) * lead
            lead = (1.0 - f1) + (1.0 if f1 < _FULL else 0.0) * lead
            lead = (1.0 - f0) + (1.0 if f0 < _FULL else 0.0) * lead
            # strongest tone of each group (first on ties, like argmax)
            t_lo = 0
            for t in range(1, 4):
                if q[jj, t, ch] > q[jj, t_lo, ch]:
                    t_lo = t
            t_hi = 4
            for t in range(5, 8):
                if q[jj, t, ch] > q[jj, t_hi, ch]:
                    t_hi = t
            ok = True
            near_both = True
            ur_lo = ui_lo = ur_hi = ui_hi = 0.0
            for g in range(2):
                t = t_lo if g == 0 else t_hi
                qt = np.float64(q[jj, t, ch])
                re0 = dft[jj, t, ch]
                re1 = dft[jj + 1, t, ch]
                re2 = dft[jj + 2, t, ch]
                re3 = dft[jj + 3, t, ch]
                im0 = dft[jj, t + 8, ch]
                im1 = dft[jj + 1, t + 8, ch]
                im2 = dft[jj + 2, t + 8, ch]
                im3 = dft[jj + 3, t + 8, ch]
                zr = (re1 * re0 + im1 * im0) + (re2 * re1 + im2 * im1) + (re3 * re2 + im3 * im2)
                zi = (im1 * re0 - re1 * im0) + (im2 * re1 - re2 * im1) + (im3 * re2 - re3 * im2)
                rot_c = consts[0, t]
                rot_s = consts[1, t]
                tan2 = consts[2, t]
                ur = zr * rot_c + zi * rot_s
                ui = zi * rot_c - zr * rot_s
                ui2 = ui * ui
                ur2 = ur * ur
                if not ((ur > 0) and (ui2 <= tan2 * ur2) and (ur2 + ui2 >= coh2 * (qt * qt))):
                    ok = False
                if not ui2 <= tan2_half[t] * ur2:
                    near_both = False
                if g == 0:
                    ur_lo, ui_lo = ur, ui
                else:
                    ur_hi, ui_hi = ur, ui
            if ok and not near_both:
                dev_lo = _atan_jit(ui_lo / (ur_lo if ur_lo > 0 else 1.0)) / consts[3, t_lo]
                dev_hi = _atan_jit(ui_hi / (ur_hi if ur_hi > 0 else 1.0)) / consts[3, t_hi]
                ok = abs(dev_hi - dev_lo) <= max_spread
            if not ok:
                continue
            out_j[n] = jj
            out_ch[n] = ch
            out_code[n] = code_table[t_lo, t_hi - 4]
            out_lead[n] = lead
            out_ref[n] = r
            n += 1
    return n


def _states(m: int, s: int, nv: int, j: Any, chs: Any, code: Any, lead: Any, ref: Any, energy: Any,
            counts: Any, has_counts: bool, blocks: Any, step: Any, cur_of: Any,
            state: Any, onset: Any, cand_onset: Any, end_est: Any, ref_reg: Any, ev: Any) -> int:
    """DtmfDetectorBank._run_states, one channel-step at a time (time-major, then channel, as the
    numpy path orders its events). Updates the per-channel registers in place and writes events
    to ``ev`` rows ``(started?, channel, key code, start, end, emitted_at)``; returns their count."""
    c = state.shape[0]
    p = 0
    ne = 0
    for k in range(m):
        for ch in range(c):
            if has_counts and k >= counts[ch]:
                continue
            if p < nv and j[p] == k and chs[p] == ch:
                inp = code[p] + 1
                w = p
                p += 1
            else:
                if state[ch] == 0:
                    continue  # idle and nothing heard: stays idle
                inp = 0
                w = -1
            st = state[ch]
            v = step[st + inp]
            flags = v >> _FLAG_SHIFT
            state[ch] = v & _STATE_MASK
            if flags == 0:
                continue
            if flags & _FIRST_MISS:
                rr = ref_reg[ch]
                rd = rr if rr > 0 else 1.0
                f0 = min(energy[k, ch] / rd, 1.0)
                f1 = min(energy[k + 1, ch] / rd, 1.0)
                f2 = min(energy[k + 2, ch] / rd, 1.0)
                f3 = min(energy[k + 3, ch] / rd, 1.0)
                tail = 1.0 - f0
                tail = (1.0 - f1) + (1.0 if f1 < _FULL else 0.0) * tail
                tail = (1.0 - f2) + (1.0 if f2 < _FULL else 0.0) * tail
                tail = (1.0 - f3) + (1.0 if f3 < _FULL else 0.0) * tail
                end_est[ch] = (blocks[ch] + k + 1) * s - np.int64(np.rint(tail * s))
            if flags & _FRESH:
                cand_onset[ch] = (blocks[ch] + k + 1) * s - _WINDOW * s + np.int64(np.rint(lead[w] * s))
            if flags & (_IS_CUR | _CONFIRM):
                ref_reg[ch] = ref[w]
            if flags & (_CONFIRM | _ENDED):
                now = (blocks[ch] + k + 1) * s
                begin = onset[ch]
                end = end_est[ch]
                if flags & _CONFIRM:
                    new_onset = cand_onset[ch]
                    if flags & _ENDED:
                        ev[ne, 0] = 0
                        ev[ne, 1] = ch
                        ev[ne, 2] = cur_of[st]
                        ev[ne, 3] = begin
                        ev[ne, 4] = max(min(end, new_onset), begin + 1)
                        ev[ne, 5] = now
                        ne += 1
                    ev[ne, 0] = 1
                    ev[ne, 1] = ch
                    ev[ne, 2] = inp - 1
                    ev[ne, 3] = new_onset
                    ev[ne, 4] = -1
                    ev[ne, 5] = now
                    ne += 1
                    onset[ch] = new_onset
                else:
                    ev[ne, 0] = 0
                    ev[ne, 1] = ch
                    ev[ne, 2] = cur_of[st]
                    ev[ne, 3] = begin
                    ev[ne, 4] = max(end, begin + 1)
                    ev[ne, 5] = now
                    ne += 1
    return ne


def _jit(fn: Any) -> Any:
    """njit with an on-disk cache when a cache directory is usable (numba raises at decoration
    time otherwise); compiled lazily, on first call."""
    # no fastmath: IEEE operations in the order written, no FMA contraction
    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
    except Exception as exc:  # no writable cache location
        log.info("numba cache unavailable (%s); compiling %s without it", exc, fn.__name__)
        return numba.njit(nogil=True, error_model="numpy")(fn)


_atan_jit = _jit(_atan)
windows = _jit(_windows)
states = _jit(_states)
