"""In-band DTMF detection: a streaming per-channel detector and a batched bank of many channels.

Requirements (ITU-T Q.24 (11/1988) "Multifrequency push-button signal reception", §4 and its
Annex A table of administrations' values; ETSI ES 201 235-3 (DTMF receivers) states the same
numbers): accept a frequency deviation of ±1.5% and reject ±3.5%; accept twist (high-group level
minus low-group level) from −8 dB to +4 dB; accept each tone from −3 to −36 dBm0 and reject at
−55 dBm0 and below; accept tones of 40 ms and longer, reject 23 ms and shorter; bridge a single
interruption of up to 10 ms; work with a signal-to-noise ratio of 15 dB; and do not respond to
speech and music ("talk-off", Q.24 §4.4 and Bellcore/Telcordia TR-TSY-000181's talk-off test).
The digital level reference (0 dBm0) is G.711's, see :data:`roomtone.dtmf.tones.DBM0_PEAK`.

Why our own detector, and how it differs from the Goertzel-block design of spandsp
(``dtmf.c``, Steve Underwood) and Asterisk (``dsp.c``), which run 8 Goertzel filters over
non-overlapping 102-sample blocks and judge each block by energy ratios alone:

* **Frequency is measured, not inferred from energy.** Audio is cut into 5 ms sub-blocks; for each
  we take the complex DFT at the eight Q.23 frequencies (one matrix product for all channels).
  Over a 20 ms window (4 sub-blocks, advanced every 5 ms) the phase advance between consecutive
  sub-blocks, ``sum P[k+1]·conj(P[k])``, rotated by the nominal advance, has an angle proportional
  to the frequency error (phase-difference / "instantaneous frequency" estimation, as in
  Kay, "A fast and accurate single frequency estimator", IEEE Trans. ASSP 37(12), 1989). A tone is
  accepted if its error is under 2.0% (Q.24: accept 1.5%, reject 3.5%; the estimate is precise
  enough that the margin is spent on rejecting speech), without the energy-ratio compromise a
  fixed Goertzel bin forces. The two tones' errors must also agree to within 3.5%: a musical
  octave (a note and its own 2nd harmonic) looks like keys C or 6 with errors about 4% apart.
* **Cross-talk-free correlators**: each tone's 5 ms correlator is the minimum-norm vector with unit
  gain at its frequency and nulls at its image and at the other group's four frequencies, so a
  strong low tone cannot bend the phase of a weak high tone (large twist).
* **Purity, steadiness and coverage**: the two tones must carry most of the window's energy
  (speech and music spread theirs over many harmonics), their phase advances must be coherent
  (``|sum P[k+1]·conj(P[k])|`` close to ``sum |P[k]|^2``), and they must fill at least 15 ms of the
  20 ms window (judged from the sub-blocks' signal energies, which also place onsets and ends to
  a few samples).
* **Timing by counting windows**: a digit starts after 5 consecutive valid windows with the same
  digit (a tone must last about 35 ms: Q.24's 40 ms pass and 23 ms fail are 5 ms either side) and
  ends after 7 consecutive windows without it (about 25 ms of silence, so a 10 ms break is bridged).
* **Exactly the same results batched and alone.** The correlators are rounded to integers (the
  largest coefficient 2^14) and the samples are int16, so every DFT value and energy is an
  integer below 2^53: the
  float64 matrix product is exact whatever order BLAS sums in. Everything after that is
  element-wise IEEE arithmetic in a fixed order (no transcendental functions: the arctangent is
  a rational approximation; no reductions of inexact values), so a channel's decisions do not
  depend on which other channels share the batch, or on how its audio was split into frames.
  The per-channel :class:`DtmfDetector` *is* a bank of one channel.

Speed: one matrix product per tick plus about forty array operations, whatever the number of
channels; the bank serves 1,000 channels of speech at roughly spandsp's per-core C speed (see
BENCHMARKS.md). Run it with one BLAS thread per process (``OPENBLAS_NUM_THREADS=1``): the matrix
is small, and OpenBLAS threads contending for a busy core made it 20x slower here.

Thresholds were chosen on the development set of ``benchmarks/dtmf_detector.py`` only (its own
seeds, voices and texts); the evaluation set there is kept apart.

Public API: :class:`DtmfDetector` (one channel: ``feed(int16 frame) -> list[DtmfEvent]``,
``flush()``), :class:`DtmfDetectorBank` (``feed(2-D array or list of per-channel frames)``,
``flush()``), :func:`detect` (whole signal -> list of :class:`DetectedDigit`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from roomtone.dtmf.digits import CANONICAL, DtmfError
from roomtone.dtmf.tones import DBM0_PEAK, FREQUENCIES, KEYPAD

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_BASIS_SCALE = 2.0**14
_WINDOW = 4  # sub-blocks per analysis window
_HIST = _WINDOW - 1
_FULL = 0.85  # a sub-block with this share of the reference energy counts as full


@dataclass(frozen=True)
class DetectorConfig:
    """Decision thresholds. Defaults were chosen on the benchmark's development set."""

    max_deviation: float = 0.02  #: relative frequency error accepted (Q.24: 1.5% pass, 3.5% fail)
    min_level_dbm0: float = -45.0  #: per tone (Q.24: −36 pass, −55 fail)
    max_deviation_spread: float = 0.035  #: |high error − low error| (Q.24 extremes: 3%; an octave: ~4%)
    max_reverse_twist_db: float = 5.5  #: high group louder than low (Q.24: +4 dB pass)
    max_normal_twist_db: float = 9.5  #: high group quieter than low (Q.24: −8 dB pass)
    min_purity: float = 0.8  #: share of window energy in the two tones
    min_coherence: float = 0.5  #: |sum P[k+1] conj P[k]| / sum |P[k]|^2 per tone
    min_coverage: float = 3.0  #: sub-blocks (of 4) that the tone pair must fill
    on_windows: int = 5  #: consecutive valid windows to start a digit
    off_windows: int = 7  #: consecutive invalid windows to end it


class DtmfEvent(NamedTuple):
    """A digit ``started`` or ``ended`` on ``channel``. Times are sample indices from the start of
    that channel's stream; ``emitted_at`` is the sample at which the detector decided.
    (A named tuple: a busy bank makes tens of thousands of these a second.)"""

    kind: Literal["started", "ended"]
    digit: str
    start: int
    end: int | None
    emitted_at: int
    sample_rate: int
    channel: int = 0

    @property
    def start_seconds(self) -> float:
        return self.start / self.sample_rate

    @property
    def duration(self) -> float | None:
        """Seconds, on ``ended`` events."""
        return None if self.end is None else (self.end - self.start) / self.sample_rate


@dataclass(frozen=True, slots=True)
class DetectedDigit:
    """One key press found by :func:`detect`: ``start`` and ``duration`` in seconds."""

    digit: str
    start: float
    duration: float


# code for (row, column) of the keypad, used as a lookup on argmax indices
_CODE_TABLE = np.array(KEYPAD, dtype=np.int64)
_LOW_OF_CODE = np.full(16, -1, dtype=np.int64)
_HIGH_OF_CODE = np.full(16, -1, dtype=np.int64)
for _r, _row in enumerate(KEYPAD):
    for _c, _code in enumerate(_row):
        _LOW_OF_CODE[_code] = _r
        _HIGH_OF_CODE[_code] = 4 + _c


def _tone_basis(s: int, omega: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float]:
    """Integer correlators for the eight tones over one sub-block, and their common gain.

    A plain DFT bin over 5 ms is 200 Hz wide, so the other group's tone leaks into it (941 Hz
    into 1209 Hz's bin at about −14 dB), enough to bend phases when the twist is large. Each
    tone's correlator is instead the minimum-norm vector with unit response at its own frequency
    and zero response at its mirror image and at the four frequencies of the other group (both
    signs): a real pair of tones then yields each tone's phasor with no cross-talk.
    """
    n = np.arange(s)
    rows = np.empty((16, s))
    low, high = omega[:4], omega[4:]
    cplx: list[npt.NDArray[np.complex128]] = []
    for i, w in enumerate(omega):
        others = high if i < 4 else low
        freqs = np.concatenate(([w, -w], others, -others))
        cmat = np.exp(1j * np.outer(freqs, n))  # constraints: cmat @ b = target
        target = np.zeros(len(freqs), dtype=complex)
        target[0] = 1.0
        b = cmat.conj().T @ np.linalg.solve(cmat @ cmat.conj().T, target)
        cplx.append(b)
    k = _BASIS_SCALE / float(max(np.max(np.abs(np.r_[b.real, b.imag])) for b in cplx))
    for i, b in enumerate(cplx):
        rows[i] = np.rint(k * b.real)
        rows[8 + i] = np.rint(k * b.imag)
    return rows, k


def _atan(x: F64) -> F64:
    """arctan from + − × ÷ only (Abramowitz & Stegun 4.4.49, error < 1e-5 rad on |x| <= 1).

    numpy's own arctan may take different SIMD code paths for different array lengths; plain
    arithmetic keeps every channel's result independent of the batch it is computed in.
    """
    big = np.abs(x) > 1
    y = np.where(big, 1.0 / np.where(big, x, 1.0), x)
    y2 = y * y
    a = y * (0.9998660 + y2 * (-0.3302995 + y2 * (0.1801410 + y2 * (-0.0851330 + y2 * 0.0208351))))
    return np.where(big, np.where(x > 0, np.pi / 2, -np.pi / 2) - a, a)


class DtmfDetectorBank:
    """DTMF detection for ``channels`` independent audio streams at one sample rate.

    ``feed(frames)`` takes either a 2-D int16 array ``(channels, n)`` (the fast path: one audio
    tick for every call) or a sequence of 1-D int16 arrays, one per channel, of any lengths
    (``None`` or an empty array for a channel with nothing new). It returns the events of this
    call in order (by sub-block time, then channel). Results are identical to running one
    :class:`DtmfDetector` per channel on the same samples, however they are framed.
    """

    def __init__(self, channels: int, sample_rate: int = 8000, config: DetectorConfig | None = None):
        if not isinstance(channels, int) or channels < 1:
            raise DtmfError(f"channels must be a positive integer, got {channels!r}")
        if not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 96000:
            raise DtmfError(
                f"sample rate {sample_rate!r} Hz is not supported: use 8000-96000 Hz "
                "(8000, 16000, 22050, 44100 and 48000 are tested)"
            )
        self.channels = channels
        self.sample_rate = sample_rate
        self.config = cfg = config or DetectorConfig()
        # 5 ms sub-block (to within half a sample at rates such as 22050 or 44100 Hz: the
        # correlators and the nominal phase advance use the exact block length)
        self.block = s = round(sample_rate / 200)
        omega = 2 * np.pi * np.asarray(FREQUENCIES) / sample_rate
        self._basis_t, gain = _tone_basis(s, omega)  # (16, s) integers
        # nominal phase advance per sub-block: un-rotate the measured advance by it
        self._rot_c = np.cos(omega * s)
        self._rot_s = np.sin(omega * s)
        self._tan2 = np.tan(omega * s * cfg.max_deviation) ** 2
        self._advance = omega * s
        # a sine of peak a at a tone's frequency gives a phasor of magnitude gain * a / 2
        peak_min = DBM0_PEAK * 10 ** (cfg.min_level_dbm0 / 20)
        self._min_power = (gain * peak_min / 2) ** 2
        # phasor power -> energy of that sine over one sub-block (a^2 s / 2)
        self._power_to_energy = 2.0 * s / gain**2
        self._rev_twist = 10 ** (cfg.max_reverse_twist_db / 10)
        self._norm_twist = 10 ** (-cfg.max_normal_twist_db / 10)
        self._coh2 = cfg.min_coherence**2
        self.reset()

    def reset(self) -> None:
        """Forget all audio and state (as if just created)."""
        c = self.channels
        self._pending = np.zeros((c, self.block), dtype=np.int16)
        self._npending = np.zeros(c, dtype=np.int64)
        self._blocks = np.zeros(c, dtype=np.int64)  # sub-blocks processed per channel
        self._h_re = np.zeros((_HIST, 8, c))  # last 3 sub-blocks' DFTs, time-major
        self._h_im = np.zeros((_HIST, 8, c))
        self._h_pw = np.zeros((_HIST, 8, c), dtype=np.float32)
        self._h_e = np.zeros((_HIST, c))
        self._cur = np.full(c, -1, dtype=np.int64)
        self._onset = np.zeros(c, dtype=np.int64)
        self._cand = np.full(c, -1, dtype=np.int64)
        self._cand_onset = np.zeros(c, dtype=np.int64)
        self._run = np.zeros(c, dtype=np.int64)
        self._miss = np.zeros(c, dtype=np.int64)
        self._end_est = np.zeros(c, dtype=np.int64)
        self._ref = np.zeros(c)

    def reset_channels(self, channels: Sequence[int] | npt.ArrayLike) -> None:
        """Make ``channels`` as good as new (a new call taking over a slot): their audio, digit
        state and sample count are forgotten; a digit still sounding there is dropped without
        an ``ended`` event. The other channels are untouched."""
        ix = np.asarray(channels, dtype=np.int64).reshape(-1)
        if ix.size and (ix.min() < 0 or ix.max() >= self.channels):
            raise DtmfError(f"channel index out of range 0-{self.channels - 1}: {ix.tolist()}")
        self._h_re = self._h_re.copy()  # history may be a view of a previous call's arrays
        self._h_im = self._h_im.copy()
        self._h_pw = self._h_pw.copy()
        self._h_e = self._h_e.copy()
        for arr in (self._h_re, self._h_im, self._h_pw):
            arr[:, :, ix] = 0.0
        self._h_e[:, ix] = 0.0
        for state, value in ((self._npending, 0), (self._blocks, 0), (self._cur, -1), (self._onset, 0),
                             (self._cand, -1), (self._cand_onset, 0), (self._run, 0), (self._miss, 0),
                             (self._end_est, 0)):
            state[ix] = value
        self._ref[ix] = 0.0

    # ------------------------------------------------------------------ input

    def feed(self, frames: npt.ArrayLike | Sequence[npt.ArrayLike | None]) -> list[DtmfEvent]:
        """Process new samples for every channel; return the events they produced."""
        s = self.block
        if isinstance(frames, np.ndarray) and frames.ndim == 2:
            if frames.shape[0] != self.channels:
                raise DtmfError(f"expected {self.channels} channels, got an array of shape {frames.shape}")
            arr = _as_int16(frames)
            if not self._npending.any() and arr.shape[1] % s == 0:
                m = arr.shape[1] // s
                blocks = arr.reshape(self.channels, m, s)
                return self._process(blocks, None)
            chans: list[npt.NDArray[np.int16]] = list(arr)
        else:
            if isinstance(frames, np.ndarray) and frames.ndim == 1 and self.channels == 1:
                frames = [frames]
            if len(frames) != self.channels:  # type: ignore[arg-type]
                raise DtmfError(f"expected {self.channels} per-channel frames, got {len(frames)}")  # type: ignore[arg-type]
            chans = [np.zeros(0, np.int16) if f is None else _as_int16(f).reshape(-1) for f in frames]  # type: ignore[union-attr]
        # ragged path: join each channel's pending samples with its new ones
        counts = np.zeros(self.channels, dtype=np.int64)
        joined: list[npt.NDArray[np.int16]] = []
        for ch, x in enumerate(chans):
            p = int(self._npending[ch])
            buf = np.concatenate((self._pending[ch, :p], x)) if p else x
            joined.append(buf)
            counts[ch] = len(buf) // s
        mmax = int(counts.max())
        blocks3 = np.zeros((self.channels, mmax, s), dtype=np.int16)
        for ch, buf in enumerate(joined):
            k = int(counts[ch])
            if k:
                blocks3[ch, :k] = buf[: k * s].reshape(k, s)
            rest = buf[k * s:]
            self._pending[ch, : len(rest)] = rest
            self._npending[ch] = len(rest)
        if mmax == 0:
            return []
        return self._process(blocks3, counts)

    def flush(self) -> list[DtmfEvent]:
        """End of stream: close digits still sounding (their end is the last sample seen)."""
        events: list[DtmfEvent] = []
        for ch in np.nonzero(self._cur >= 0)[0].tolist():
            now = int(self._blocks[ch]) * self.block + int(self._npending[ch])
            end = int(self._end_est[ch]) if self._miss[ch] > 0 else now
            events.append(DtmfEvent("ended", CANONICAL[int(self._cur[ch])], int(self._onset[ch]), end, now,
                                    self.sample_rate, ch))
        self._cur[:] = -1
        self._cand[:] = -1
        self._run[:] = 0
        self._miss[:] = 0
        return events

    # ------------------------------------------------------------------ analysis

    def _process(self, blocks: npt.NDArray[np.int16], counts: I64 | None) -> list[DtmfEvent]:
        """Analyse ``blocks`` (channels, m, s); ``counts`` = valid sub-blocks per channel (None: all).

        Arrays are time-major, ``(sub-block, tone, channel)``, so the sliding window sums and the
        per-tone arithmetic run on long contiguous rows. Cheap tests (level, twist, purity,
        coverage) run on every window; the phase tests only on the few windows that pass them.
        Each window's arithmetic is the same whichever subset it is computed in, so neither the
        gating nor the batch can change a result.
        """
        c, m, s = blocks.shape
        x = blocks.transpose(1, 0, 2).astype(np.float64)  # (m, c, s)
        dft = np.matmul(self._basis_t, x.transpose(0, 2, 1))  # (m, 16, c), exact integers < 2^53
        new_e = np.einsum("kcs,kcs->kc", x, x)  # (m, c), exact integer sums
        new_re, new_im = dft[:, :8], dft[:, 8:]
        d32 = dft.astype(np.float32)  # tone powers in single precision: half the memory traffic
        re32, im32 = d32[:, :8], d32[:, 8:]
        pw = np.concatenate((self._h_pw, re32 * re32 + im32 * im32), axis=0)  # (m+3, 8, c)
        energy = np.concatenate((self._h_e, new_e), axis=0)  # (m+3, c)
        h_re, h_im = self._h_re, self._h_im  # phasors before this call, for the phase tests
        if counts is None and m >= _HIST:
            self._h_re, self._h_im = new_re[m - _HIST:], new_im[m - _HIST:]
            self._h_pw, self._h_e = pw[m:], energy[m:]
        else:
            cols = np.arange(c)[None, :]
            rows = (counts[None, :] if counts is not None else m) + np.arange(_HIST)[:, None]  # (3, c)
            re_all = np.concatenate((h_re, new_re), axis=0)
            im_all = np.concatenate((h_im, new_im), axis=0)
            self._h_re = re_all[rows, :, cols].transpose(0, 2, 1).copy()
            self._h_im = im_all[rows, :, cols].transpose(0, 2, 1).copy()
            self._h_pw = pw[rows, :, cols].transpose(0, 2, 1).copy()
            self._h_e = energy[rows, cols]

        q = pw[0:m] + pw[1:m + 1] + pw[2:m + 2] + pw[3:m + 3]  # (m, 8, c)
        q_lo = np.maximum(np.maximum(q[:, 0], q[:, 1]), np.maximum(q[:, 2], q[:, 3]))  # (m, c)
        q_hi = np.maximum(np.maximum(q[:, 4], q[:, 5]), np.maximum(q[:, 6], q[:, 7]))
        e0, e1, e2, e3 = energy[0:m], energy[1:m + 1], energy[2:m + 2], energy[3:m + 3]
        etot = e0 + e1 + e2 + e3
        min_q = self._min_power * 3  # a valid window holds at least 3 sub-blocks of tone
        valid = (q_lo >= min_q) & (q_hi >= min_q)
        valid &= (q_hi <= q_lo * self._rev_twist) & (q_hi >= q_lo * self._norm_twist)
        valid &= (q_lo + q_hi) * self._power_to_energy >= etot * self.config.min_purity
        if counts is not None:
            valid &= np.arange(m)[:, None] < counts[None, :]
        j, ch = np.nonzero(valid)
        # coverage (for the windows still in the running): how many sub-blocks' worth of the
        # window the signal fills. Signal energy grows linearly with the samples covered, and
        # unlike a 5 ms DFT bin it has no leakage from the other tone, so it also places onsets and
        # ends to a few samples. Reference: mean of the two largest sub-block energies (the
        # tones' cross-term makes full sub-blocks vary by about ±10%).
        lead = np.zeros((m, c))  # sub-blocks of the window before the signal starts
        ref = np.zeros((m, c))
        if len(ch):
            w0, w1, w2, w3 = e0[j, ch], e1[j, ch], e2[j, ch], e3[j, ch]
            a, b = np.maximum(w0, w1), np.minimum(w0, w1)
            cc, d = np.maximum(w2, w3), np.minimum(w2, w3)
            r = (np.maximum(a, cc) + np.maximum(np.minimum(a, cc), np.maximum(b, d))) * 0.5
            inv = 1.0 / np.where(r > 0, r, 1.0)
            f0, f1, f2, f3 = (np.minimum(w0 * inv, 1.0), np.minimum(w1 * inv, 1.0),
                              np.minimum(w2 * inv, 1.0), np.minimum(w3 * inv, 1.0))
            cov = f0 + f1 + f2 + f3
            # where the signal starts: the leading sub-blocks' shortfall, up to the first one that
            # is (nearly) full; summing every sub-block's shortfall instead would count the
            # cross-term's ±10% wobble of each full one as a later start
            lead[j, ch] = (1.0 - f0) + (f0 < _FULL) * ((1.0 - f1) + (f1 < _FULL) * ((1.0 - f2) + (f2 < _FULL) * (1.0 - f3)))
            ref[j, ch] = r
            keep = cov >= self.config.min_coverage
            j, ch = j[keep], ch[keep]

        decision = np.full((m, c), -1, dtype=np.int64)
        if len(ch):
            qs = q[j, :, ch].T  # (8, n)
            lo = np.argmax(qs[:4], axis=0)
            hi = 4 + np.argmax(qs[4:], axis=0)
            ok = np.ones(len(ch), dtype=bool)
            devs = []
            # sub-block j+k of the extended sequence: history for j+k < 3, else this call's
            in_hist = [j + k < _HIST for k in range(_WINDOW)]
            hk = [np.minimum(j + k, _HIST - 1) for k in range(_WINDOW)]
            nk = [np.maximum(j + k - _HIST, 0) for k in range(_WINDOW)]
            for t in (lo, hi):
                # the tone's 4 sub-block phasors in this window, oldest first
                r = [np.where(in_hist[k], h_re[hk[k], t, ch], new_re[nk[k], t, ch]) for k in range(_WINDOW)]
                i = [np.where(in_hist[k], h_im[hk[k], t, ch], new_im[nk[k], t, ch]) for k in range(_WINDOW)]
                # phase advance between consecutive sub-blocks: sum of P[k+1] * conj(P[k])
                zr = (r[1] * r[0] + i[1] * i[0]) + (r[2] * r[1] + i[2] * i[1]) + (r[3] * r[2] + i[3] * i[2])
                zi = (i[1] * r[0] - r[1] * i[0]) + (i[2] * r[1] - r[2] * i[1]) + (i[3] * r[2] - r[3] * i[2])
                # un-rotate by the nominal advance: the angle left is the frequency error
                ur = zr * self._rot_c[t] + zi * self._rot_s[t]
                ui = zi * self._rot_c[t] - zr * self._rot_s[t]
                qt = qs[t, np.arange(len(ch))].astype(np.float64)
                ok &= (ur > 0) & (ui * ui <= self._tan2[t] * (ur * ur))
                ok &= ur * ur + ui * ui >= self._coh2 * (qt * qt)
                # relative frequency error of this tone (angle / nominal advance)
                devs.append(_atan(ui / np.where(ur > 0, ur, 1.0)) / self._advance[t])
            # Q.24's worst accepted case has the tones 3% apart in relative error (−1.5%, +1.5%);
            # a musical octave or a note and its 2nd harmonic lands about 4% apart on keys C and 6
            ok &= np.abs(devs[1] - devs[0]) <= self.config.max_deviation_spread
            decision[j[ok], ch[ok]] = _CODE_TABLE[lo[ok], hi[ok] - 4]
        if len(ch) or (self._cur >= 0).any() or (self._run > 0).any():
            # window j covers sub-blocks blocks0+j-3 .. blocks0+j; its end sample:
            events = self._run_states(decision.T, lead, ref, (e0, e1, e2, e3), counts)
        else:
            events = []
        self._blocks += m if counts is None else counts
        return events

    def _run_states(
        self, decision: I64, lead: F64, ref_mc: F64, energies: tuple[F64, F64, F64, F64],
        counts: I64 | None,
    ) -> list[DtmfEvent]:
        """Advance each channel's digit state machine window by window; return the events.

        Only channels with something going on (a valid window in this call, a digit sounding or a
        candidate pending) are touched; for the others nothing would change.
        """
        cfg = self.config
        s = self.block
        need = (decision >= 0).any(axis=1) | (self._cur >= 0) | (self._run > 0)
        # a digit that simply goes on sounding through every window of this call: its state
        # after the loop below would be miss 0, no candidate, reference from the last window
        steady = (self._cur >= 0) & (decision == self._cur[:, None]).all(axis=1)
        if counts is not None:
            steady &= counts == decision.shape[1]
        if steady.any():
            self._miss[steady] = 0
            self._run[steady] = 0
            self._cand[steady] = -1
            self._ref[steady] = ref_mc[-1, steady]
            need &= ~steady
        idx = np.nonzero(need)[0]
        if not len(idx):
            return []
        whole = len(idx) == len(need)
        m = decision.shape[1]
        if not whole:
            decision = decision[idx]
            lead, ref_mc = lead[:, idx], ref_mc[:, idx]
            energies = (energies[0][:, idx], energies[1][:, idx], energies[2][:, idx], energies[3][:, idx])
            counts = None if counts is None else counts[idx]
        # window j of a channel ends at sample (blocks + j + 1) * s; the signal fills the last
        # coverage * s samples of it (the onset estimate if this window starts a digit)
        win_end = (self._blocks[idx][:, None] + np.arange(1, m + 1)[None, :]) * s
        onset_est = win_end - _WINDOW * s + np.rint(lead.T * s).astype(np.int64)
        ref = ref_mc.T
        e_win = np.stack([e.T for e in energies], axis=2)  # (channels, m, 4)
        cur, onset, cand, cand_onset = self._cur[idx], self._onset[idx], self._cand[idx], self._cand_onset[idx]
        run, miss, end_est, ref_pow = self._run[idx], self._miss[idx], self._end_est[idx], self._ref[idx]
        events: list[DtmfEvent] = []
        interesting: npt.NDArray[np.bool_] = np.asarray((decision >= 0).any(axis=0))
        busy = bool((cur >= 0).any() or (run > 0).any())
        j = 0
        while j < m:
            if not busy:
                ahead = np.nonzero(interesting[j:])[0]
                if not len(ahead):
                    break
                j += int(ahead[0])
            live = None if counts is None else (j < counts)
            d = decision[:, j]
            is_cur = (cur >= 0) & (d == cur)
            other = (d >= 0) & (d != cur)
            same = other & (d == cand)
            fresh = other & ~same
            new_run = np.where(same, run + 1, np.where(other, 1, 0))
            new_cand_onset = np.where(fresh, onset_est[:, j], cand_onset)
            new_cand = np.where(other, d, -1)
            active = cur >= 0
            first_miss = active & ~is_cur & (miss == 0)
            if live is not None:
                first_miss &= live
            if first_miss.any():
                ix = np.nonzero(first_miss)[0]
                rr = ref_pow[ix]
                f = np.minimum(e_win[ix, j, :] / np.where(rr > 0, rr, 1.0)[:, None], 1.0)
                # where the tone stops: the trailing sub-blocks' shortfall, back to the first
                # (nearly) full one
                tail = (1.0 - f[:, 3]) + (f[:, 3] < _FULL) * ((1.0 - f[:, 2]) + (f[:, 2] < _FULL) * (
                    (1.0 - f[:, 1]) + (f[:, 1] < _FULL) * (1.0 - f[:, 0])))
                end_est = end_est.copy()
                end_est[ix] = win_end[ix, j] - np.rint(tail * s).astype(np.int64)
            new_miss = np.where(is_cur, 0, np.where(active, miss + 1, 0))
            new_ref = np.where(is_cur, ref[:, j], ref_pow)
            confirm = new_run >= cfg.on_windows
            ended = active & ((new_miss >= cfg.off_windows) | confirm)
            if live is not None:
                # channels without a sub-block at step j keep their state
                new_run = np.where(live, new_run, run)
                new_cand_onset = np.where(live, new_cand_onset, cand_onset)
                new_cand = np.where(live, new_cand, cand)
                new_miss = np.where(live, new_miss, miss)
                new_ref = np.where(live, new_ref, ref_pow)
                confirm &= live
                ended &= live
            run, cand, cand_onset, miss, ref_pow = new_run, new_cand, new_cand_onset, new_miss, new_ref
            if ended.any() or confirm.any():
                ks = np.nonzero(ended | confirm)[0]
                em, cm = ended[ks], confirm[ks]
                # a digit replaced by another one ends where the new one starts
                ends = np.where(cm, np.minimum(end_est[ks], cand_onset[ks]), end_est[ks])
                ends = np.maximum(ends, onset[ks] + 1)
                rate = self.sample_rate
                cols = zip(idx[ks].tolist(), win_end[ks, j].tolist(), cur[ks].tolist(), onset[ks].tolist(),
                           ends.tolist(), cand[ks].tolist(), cand_onset[ks].tolist(), em.tolist(), cm.tolist(),
                           strict=True)
                for ch, now, code, start, end, new_code, new_start, is_end, is_start in cols:
                    if is_end:
                        events.append(DtmfEvent("ended", CANONICAL[code], start, end, now, rate, ch))
                    if is_start:
                        events.append(DtmfEvent("started", CANONICAL[new_code], new_start, None, now, rate, ch))
                cur = cur.copy()
                onset = onset.copy()
                ke = ks[em]
                cur[ke] = -1
                miss[ke] = 0
                kc = ks[cm]
                cur[kc] = cand[kc]
                onset[kc] = cand_onset[kc]
                ref_pow[kc] = ref[kc, j]
                run[kc] = 0
                cand[kc] = -1
            busy = bool((cur >= 0).any() or (run > 0).any())
            j += 1
        if not busy:
            run = np.zeros_like(run)
            cand = np.full_like(cand, -1)
        if whole:
            self._cur, self._onset, self._cand, self._cand_onset = cur, onset, cand, cand_onset
            self._run, self._miss, self._end_est, self._ref = run, miss, end_est, ref_pow
        else:
            self._cur[idx], self._onset[idx], self._cand[idx], self._cand_onset[idx] = cur, onset, cand, cand_onset
            self._run[idx], self._miss[idx], self._end_est[idx], self._ref[idx] = run, miss, end_est, ref_pow
        return events


class DtmfDetector:
    """Streaming DTMF detector for one channel: ``feed`` int16 frames of any length, get events.

    A thin wrapper over a :class:`DtmfDetectorBank` of one channel, so the two cannot disagree.
    """

    def __init__(self, sample_rate: int = 8000, config: DetectorConfig | None = None):
        self._bank = DtmfDetectorBank(1, sample_rate, config)
        self.sample_rate = sample_rate

    def feed(self, frame: npt.ArrayLike | bytes) -> list[DtmfEvent]:
        """Feed int16 samples (numpy array, or little-endian 16-bit ``bytes``)."""
        if isinstance(frame, (bytes, bytearray, memoryview)):
            if len(frame) % 2:
                raise DtmfError(f"16-bit PCM must have an even number of bytes, got {len(frame)}")
            frame = np.frombuffer(bytes(frame), dtype="<i2")
        x = _as_int16(frame).reshape(-1)
        if not self._bank._npending[0] and len(x) % self._bank.block == 0:
            return self._bank.feed(x[None, :])  # whole sub-blocks: the bank's fast path
        return self._bank.feed([x])

    def flush(self) -> list[DtmfEvent]:
        return self._bank.flush()

    def reset(self) -> None:
        self._bank.reset()


def detect(samples: npt.ArrayLike, sample_rate: int = 8000, config: DetectorConfig | None = None,
           ) -> list[DetectedDigit]:
    """Every DTMF digit in ``samples`` (int16 mono), with ``start`` and ``duration`` in seconds."""
    det = DtmfDetector(sample_rate, config)
    events = det.feed(np.asarray(samples)) + det.flush()
    return [
        DetectedDigit(e.digit, e.start / sample_rate, (e.end - e.start) / sample_rate)
        for e in events if e.kind == "ended" and e.end is not None
    ]


def _as_int16(x: npt.ArrayLike) -> npt.NDArray[np.int16]:
    arr = np.asarray(x)
    if arr.dtype == np.int16:
        return arr
    if arr.dtype.kind not in "iu":
        raise DtmfError(f"samples must be int16 PCM, got dtype {arr.dtype}")
    if arr.size and (arr.min() < -32768 or arr.max() > 32767):
        raise DtmfError("samples out of the int16 range")
    return arr.astype(np.int16)
