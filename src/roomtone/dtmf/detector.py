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

Speed: per tick, one matrix product and a few dozen operations over all channels, then a few
hundred small array operations on just the windows that pass the cheap tests and the channels
with a digit starting, sounding or ending. The digit state machine is a lookup table (one gather
per 5 ms window for all those channels; the onsets, ends and levels that go with it are read off
the step flags for all windows of the tick at once), so there is no Python loop over windows or
channels, only over the events themselves. With numba installed (a dependency, but optional
here) the window checks and the state machine run instead as compiled loops
(:mod:`roomtone.dtmf._detector_kernels`), once :func:`load_kernels` has been called (a server
does that at start-up; ``ROOMTONE_DTMF_NUMBA=0`` keeps the numpy path). Both paths do the same IEEE operations in the same order and give identical events.
The bank serves 1,000 channels faster than spandsp's per-core C code: with the kernels, about
1.4-1.6x on speech and music and on DTMF-heavy traffic; numpy only, 1.2-1.3x and about 0.8x
(see BENCHMARKS.md).
Run it with one BLAS thread per process (``OPENBLAS_NUM_THREADS=1``): the matrix is small, and
OpenBLAS threads contending for a busy core made it 20x slower here.

Thresholds were chosen on the development set of ``benchmarks/dtmf_detector.py`` only (its own
seeds, voices and texts); the evaluation set there is kept apart.

Public API: :class:`DtmfDetector` (one channel: ``feed(int16 frame) -> list[DtmfEvent]``,
``flush()``), :class:`DtmfDetectorBank` (``feed(2-D array or list of per-channel frames)``,
``flush()``), :func:`detect` (whole signal -> list of :class:`DetectedDigit`), :func:`load_kernels`
(use the compiled kernels from now on; call it at start-up).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
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
_COLS4 = np.arange(_WINDOW)[:, None]
_TONES8 = np.arange(8)
_GROUP_BASE = np.array([[0], [4]])  # first tone of the low and of the high group
_RING = _HIST + 16  # sub-blocks kept per channel: history + room for 4 ticks of 20 ms (3.2 KB a channel)
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


# Flags a state-machine step can raise (see _transition_table).
_FRESH, _IS_CUR, _FIRST_MISS, _CONFIRM, _ENDED = 1, 2, 4, 8, 16
_NO_STEP = 17  # input column for "this channel has no sub-block at this step" (ragged feeds)
_INPUTS = 18  # decision + 1 (0 = no valid window, 1..16 = key code + 1), and _NO_STEP
_FLAG_SHIFT = 32
_STATE_MASK = (1 << _FLAG_SHIFT) - 1
# the flags that write each register: candidate onset, reference energy, end estimate, onset
_new_tuple = tuple.__new__
_REG_FLAGS = np.array([_FRESH, _IS_CUR | _CONFIRM, _FIRST_MISS, _CONFIRM], dtype=np.int64)


class _StateTable(NamedTuple):
    step: I64  #: at state + input: next state | flags << _FLAG_SHIFT
    cur: I64  #: at state (+ any input): the digit sounding (-1: none)
    miss: I64  #: at state (+ any input): consecutive windows without it


_TABLES: dict[tuple[int, int], _StateTable] = {}


def _transition_table(on: int, off: int) -> _StateTable:
    """The digit state machine as a lookup table, so a step for many channels is one ``take``.

    A channel's discrete state is (digit sounding, candidate digit, candidate run, misses): a
    finite set, and a step's outcome depends only on it and the window's decision. Building every
    transition once (with the rules written out below, element-wise over all state/input pairs)
    replaces about thirty array operations per 5 ms step by one gather. The sample positions and
    levels that go with a state (onsets, end estimate, reference energy) are kept outside the table
    and follow from the flags each step raises.
    """
    key = (on, off)
    if key in _TABLES:
        return _TABLES[key]
    cur1, cand1, run, miss, k = np.meshgrid(np.arange(17), np.arange(17), np.arange(on), np.arange(off),
                                            np.arange(_INPUTS), indexing="ij")
    cur, cand, d = cur1 - 1, cand1 - 1, k - 1
    is_cur = (cur >= 0) & (d == cur)
    other = (d >= 0) & (d != cur)
    same = other & (d == cand)
    fresh = other & ~same
    new_run = np.where(same, run + 1, np.where(other, 1, 0))
    new_cand = np.where(other, d, -1)
    active = cur >= 0
    first_miss = active & ~is_cur & (miss == 0)
    new_miss = np.where(is_cur, 0, np.where(active, miss + 1, 0))
    confirm = new_run >= on  # a new digit starts (ending the one sounding, if any)
    ended = active & ((new_miss >= off) | confirm)
    nxt_cur = np.where(confirm, new_cand, np.where(ended, -1, cur))
    nxt_cand = np.where(confirm, -1, new_cand)
    nxt_run = np.where(confirm, 0, new_run)
    nxt_miss = np.where(ended, 0, new_miss)
    flags = (fresh * _FRESH) | (is_cur * _IS_CUR) | (first_miss * _FIRST_MISS) | (confirm * _CONFIRM) | (
        ended * _ENDED)
    # a state is stored as its row offset in the table (state number * _INPUTS): one add per step
    state = (((cur1 * 17 + cand1) * on + run) * off + miss).astype(np.int64) * _INPUTS
    nxt = ((((nxt_cur + 1) * 17 + (nxt_cand + 1)) * on + nxt_run) * off + nxt_miss) * _INPUTS
    step = np.where(k == _NO_STEP, state, nxt | (flags.astype(np.int64) << _FLAG_SHIFT)).reshape(-1)
    table = _StateTable(step.astype(np.int64), cur.reshape(-1), miss.reshape(-1))
    _TABLES[key] = table
    return table


_ACCEL_DEFAULT = os.environ.get("ROOMTONE_DTMF_NUMBA", "1") not in ("0", "no", "off", "false")
_kernel_module: ModuleType | None = None
_kernel_tried = False


def _kernels() -> ModuleType | None:
    """Import and compile (or load from numba's cache) :mod:`roomtone.dtmf._detector_kernels`, once;
    None without numba or if compiling fails (the numpy path is then used)."""
    global _kernel_module, _kernel_tried
    if not _kernel_tried:
        _kernel_tried = True
        try:
            kern = importlib.import_module("roomtone.dtmf._detector_kernels")
            _warm_up(kern)
            _kernel_module = kern
        except Exception as exc:  # numba missing, or too old/new for this code
            log.info("DTMF detector: numba kernels unavailable (%s: %s); using the numpy path",
                     type(exc).__name__, exc)
    return _kernel_module


def load_kernels() -> bool:
    """Load the compiled kernels; from then on every bank and detector in this process uses them.
    Returns True if they are in use (False: numba missing or failing, or ``ROOMTONE_DTMF_NUMBA=0``).

    Banks never load them by themselves: loading blocks for 0.3-0.5 s (numba's import and its
    on-disk cache) or about 3 s (first compile), which inside a running audio loop drops frames and
    digits. A server calls this once at start-up, before audio flows; one-shot tools need not."""
    return _ACCEL_DEFAULT and _kernels() is not None


def _warm_up(kern: ModuleType) -> None:
    """Compile (or load from numba's cache) both kernels on a tiny bank of silence, so a failure
    shows here and not halfway through a call."""
    bank = DtmfDetectorBank(1, 8000)
    bank._accel = False
    x = np.zeros((1, 160), dtype=np.int16)
    bank.feed(x)
    bank._compiled(kern, 0, np.zeros((0, 1), dtype=bool), np.zeros((0, 8, 1), dtype=np.float32),
                   bank._ring_dft[:_HIST], bank._ring_e[:_HIST], None)
    bank._compiled(kern, 0, np.zeros((0, 1), dtype=bool), np.zeros((0, 8, 1), dtype=np.float32),
                   bank._ring_dft[:_HIST], bank._ring_e[:_HIST], np.zeros(1, dtype=np.int64))


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
        # tan^2 of half the allowed deviation spread, less 1e-4 rad (10x _atan's error bound);
        # -1 (never "near") if that angle is not in (0, pi/2)
        half = omega * s * cfg.max_deviation_spread / 2 - 1e-4
        usable = (half > 0) & (half < np.pi / 2)
        self._tan2_half_spread = np.where(usable, np.tan(np.where(usable, half, 0.0)) ** 2, -1.0)
        self._tone_consts = np.stack((self._rot_c, self._rot_s, self._tan2, self._advance))  # (4, 8)
        if cfg.on_windows < 1 or cfg.off_windows < 1:
            raise DtmfError("on_windows and off_windows must be at least 1")
        self._table = _transition_table(cfg.on_windows, cfg.off_windows)
        self._accel = _ACCEL_DEFAULT  # use the numba kernels once loaded (tests switch this)
        self.reset()

    def reset(self) -> None:
        """Forget all audio and state (as if just created)."""
        c = self.channels
        self._pending = np.zeros((c, self.block), dtype=np.int16)
        self._npending = np.zeros(c, dtype=np.int64)
        self._blocks = np.zeros(c, dtype=np.int64)  # sub-blocks processed per channel
        # per sub-block, time-major: DFTs (re 0-7, im 8-15), tone powers, energies. Each call's
        # sub-blocks are written after the last 3 of the previous call (its history), so a window
        # spanning both is a plain slice; the last 3 rows move to the front only when full.
        self._ring_dft = np.zeros((_RING, 16, c))
        self._ring_pw = np.zeros((_RING, 8, c), dtype=np.float32)
        self._ring_e = np.zeros((_RING, c))
        self._pos = 0  # history = rows pos .. pos + 2
        self._state = np.zeros(c, dtype=np.int64)  # digit state machine (see _transition_table); 0 = idle
        self._onset = np.zeros(c, dtype=np.int64)  # of the digit sounding
        self._cand_onset = np.zeros(c, dtype=np.int64)  # of the candidate
        self._end_est = np.zeros(c, dtype=np.int64)  # where the digit sounding stopped, after a miss
        self._ref = np.zeros(c)  # its sub-block energy
        # the compiled kernels' scratch (see _compiled), grown on demand
        self._kbuf_j = self._kbuf_ch = self._kbuf_code = np.zeros(0, dtype=np.int64)
        self._kbuf_lead = self._kbuf_ref = np.zeros(0)
        self._kbuf_ev = np.zeros((0, 6), dtype=np.int64)

    def reset_channels(self, channels: Sequence[int] | npt.ArrayLike) -> None:
        """Make ``channels`` as good as new (a new call taking over a slot): their audio, digit
        state and sample count are forgotten; a digit still sounding there is dropped without
        an ``ended`` event. The other channels are untouched."""
        ix = np.asarray(channels, dtype=np.int64).reshape(-1)
        if ix.size and (ix.min() < 0 or ix.max() >= self.channels):
            raise DtmfError(f"channel index out of range 0-{self.channels - 1}: {ix.tolist()}")
        h = slice(self._pos, self._pos + _HIST)
        self._ring_dft[h, :, ix] = 0.0
        self._ring_pw[h, :, ix] = 0.0
        self._ring_e[h, ix] = 0.0
        for state in (self._npending, self._blocks, self._state, self._onset, self._cand_onset, self._end_est):
            state[ix] = 0
        self._ref[ix] = 0.0

    # ------------------------------------------------------------------ input

    @property
    def pending(self) -> bool:
        """Some channel holds samples short of a whole sub-block (then only :meth:`feed` fits)."""
        return bool(self._npending.any())

    def feed_blocks(self, blocks: npt.NDArray[np.int16], counts: npt.NDArray[np.int64]) -> list[DtmfEvent]:
        """Whole sub-blocks, already laid out: ``blocks[c, :counts[c]]`` are channel ``c``'s next
        ``counts[c]`` sub-blocks of :attr:`block` samples (shape ``(channels, m, block)``). For
        callers that assemble uneven amounts per channel without :meth:`feed`'s per-channel
        loop; raises ``ValueError`` while any channel has a partial sub-block pending."""
        if self._npending.any():
            raise ValueError("feed_blocks needs no partial sub-block pending: use feed")
        if blocks.ndim != 3 or blocks.shape[0] != len(counts) or blocks.shape[2] != self.block:
            raise ValueError(f"blocks must be (channels, m, {self.block}) with one count per channel")
        return self._process(blocks, counts)

    def feed(self, frames: npt.ArrayLike | Sequence[npt.ArrayLike | None]) -> list[DtmfEvent]:
        """Process new samples for every channel; return the events they produced."""
        s = self.block
        if isinstance(frames, np.ndarray) and frames.ndim == 2:
            if frames.shape[0] != self.channels:
                raise DtmfError(f"expected {self.channels} channels, got an array of shape {frames.shape}")
            arr = _as_int16(frames)
            if arr.shape[1] == 0:  # an empty tick: nothing new anywhere
                return []
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
        cur = self._table.cur[self._state]
        miss = self._table.miss[self._state]
        for ch in np.nonzero(cur >= 0)[0].tolist():
            now = int(self._blocks[ch]) * self.block + int(self._npending[ch])
            end = int(self._end_est[ch]) if miss[ch] > 0 else now
            events.append(DtmfEvent("ended", CANONICAL[int(cur[ch])], int(self._onset[ch]), end, now,
                                    self.sample_rate, ch))
        self._state[:] = 0
        return events

    # ------------------------------------------------------------------ analysis

    def _process(self, blocks: npt.NDArray[np.int16], counts: I64 | None) -> list[DtmfEvent]:
        """Analyse ``blocks`` (channels, m, s); ``counts`` = valid sub-blocks per channel (None: all).

        Arrays are time-major, ``(sub-block, tone, channel)``, so the sliding window sums and the
        per-tone arithmetic run on long contiguous rows; each is preceded by the last 3 sub-blocks
        of the previous call (written into one buffer, not concatenated). Cheap tests (level,
        twist, purity, coverage) run on every window; the phase tests only on the few windows that
        pass them. Each window's arithmetic is the same whichever subset it is computed in, so
        neither the gating nor the batch can change a result.
        """
        c, m, s = blocks.shape
        ext_m = m + _HIST
        x = blocks.transpose(1, 0, 2).astype(np.float64)  # (m, c, s)
        h = slice(self._pos, self._pos + _HIST)
        in_ring = ext_m <= _RING
        if in_ring:
            if self._pos + ext_m > _RING:  # move the history to the front
                for ring in (self._ring_dft, self._ring_pw, self._ring_e):
                    ring[:_HIST] = ring[h]
                self._pos = 0
            r0 = self._pos
            dft, pw, energy = self._ring_dft[r0:r0 + ext_m], self._ring_pw[r0:r0 + ext_m], self._ring_e[r0:r0 + ext_m]
        else:  # a long stretch of audio in one call
            dft, pw, energy = np.empty((ext_m, 16, c)), np.empty((ext_m, 8, c), dtype=np.float32), np.empty((ext_m, c))
            dft[:_HIST], pw[:_HIST], energy[:_HIST] = self._ring_dft[h], self._ring_pw[h], self._ring_e[h]
        np.matmul(self._basis_t, x.transpose(0, 2, 1), out=dft[_HIST:])  # exact integers < 2^53
        np.einsum("kcs,kcs->kc", x, x, out=energy[_HIST:])  # exact integer sums
        # tone powers in single precision (half the memory traffic): re^2 + im^2 in float32
        sq = dft[_HIST:].astype(np.float32)
        np.multiply(sq, sq, out=sq)
        np.add(sq[:, :8], sq[:, 8:], out=pw[_HIST:])

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
        kern = _kernel_module if self._accel else None
        if kern is not None:
            events = self._compiled(kern, m, valid, q, dft, energy, counts)
        else:
            j, ch, code, lead, ref = self._windows(valid, q, dft, energy)
            events = self._run_states(m, j, ch, code, lead, ref, energy, counts)
        # the last 3 sub-blocks of each channel become the next call's history
        if counts is None and in_ring:
            self._pos += m
        else:
            rows = (m if counts is None else counts[None, :]) + np.arange(_HIST)[:, None]  # (3, c)
            cols = np.arange(c)[None, :]
            h_dft, h_pw, h_e = dft[rows, :, cols], pw[rows, :, cols], energy[rows, cols]  # copies
            self._ring_dft[:_HIST] = h_dft.transpose(0, 2, 1)
            self._ring_pw[:_HIST] = h_pw.transpose(0, 2, 1)
            self._ring_e[:_HIST] = h_e
            self._pos = 0
        self._blocks += m if counts is None else counts
        return events

    def _compiled(self, kern: ModuleType, m: int, valid: npt.NDArray[np.bool_], q: npt.NDArray[np.float32],
                  dft: F64, energy: F64, counts: I64 | None) -> list[DtmfEvent]:
        """``_windows`` + ``_run_states`` by the numba kernels (same arithmetic, same events)."""
        c = self.channels
        nmax = m * c
        if len(self._kbuf_j) < nmax:
            self._kbuf_j = np.empty(nmax, dtype=np.int64)
            self._kbuf_ch = np.empty(nmax, dtype=np.int64)
            self._kbuf_code = np.empty(nmax, dtype=np.int64)
            self._kbuf_lead = np.empty(nmax)
            self._kbuf_ref = np.empty(nmax)
            self._kbuf_ev = np.empty((2 * nmax, 6), dtype=np.int64)
        cfg = self.config
        nv = kern.windows(valid, q, dft, energy, self._tone_consts, self._tan2_half_spread, _CODE_TABLE,
                          self._coh2, float(cfg.min_coverage), float(cfg.max_deviation_spread),
                          self._kbuf_j, self._kbuf_ch, self._kbuf_code, self._kbuf_lead, self._kbuf_ref)
        tab = self._table
        ne = kern.states(m, self.block, nv, self._kbuf_j, self._kbuf_ch, self._kbuf_code, self._kbuf_lead,
                         self._kbuf_ref, energy, self._blocks if counts is None else counts, counts is not None,
                         self._blocks, tab.step, tab.cur, self._state, self._onset, self._cand_onset,
                         self._end_est, self._ref, self._kbuf_ev)
        if not ne:
            return []
        rate = self.sample_rate
        return [_new_tuple(DtmfEvent, ("started", CANONICAL[code], start, None, now, rate, chan)) if started
                else _new_tuple(DtmfEvent, ("ended", CANONICAL[code], start, end, now, rate, chan))
                for started, chan, code, start, end, now in self._kbuf_ev[:ne].tolist()]

    def _windows(self, valid: npt.NDArray[np.bool_], q: npt.NDArray[np.float32], dft: F64, energy: F64,
                 ) -> tuple[I64, I64, I64, F64, F64]:
        """The windows that hold a digit, from those that passed the cheap tests (``valid``):
        their indices ``(j, ch)``, key code, leading shortfall and reference energy."""
        c = self.channels
        flat = np.flatnonzero(valid)  # (window, channel) in row-major order, like np.nonzero
        j = flat // c
        ch = flat - j * c
        # coverage (for the windows still in the running): how many sub-blocks' worth of the
        # window the signal fills. Signal energy grows linearly with the samples covered, and
        # unlike a 5 ms DFT bin it has no leakage from the other tone, so it also places onsets and
        # ends to a few samples. Reference: mean of the two largest sub-block energies (the
        # tones' cross-term makes full sub-blocks vary by about ±10%).
        # (Small arrays are laid out (component, window) so that every operation runs on
        # contiguous rows: numpy is slow on short strided inner loops and small-axis reductions.)
        code = np.zeros(0, dtype=np.int64)
        lead = ref = np.zeros(0)
        if len(ch):
            # the window's 4 sub-block energies, oldest first: (4, n)
            w = energy.reshape(-1)[flat + _COLS4 * c]
            w0, w1, w2, w3 = w
            a, b = np.maximum(w0, w1), np.minimum(w0, w1)
            cc, d = np.maximum(w2, w3), np.minimum(w2, w3)
            r = (np.maximum(a, cc) + np.maximum(np.minimum(a, cc), np.maximum(b, d))) * 0.5
            f = np.minimum(w * (1.0 / np.where(r > 0, r, 1.0)), 1.0)
            keep = f[0] + f[1] + f[2] + f[3] >= self.config.min_coverage
            j, ch, r, flat = j[keep], ch[keep], r[keep], flat[keep]
            f = f[:, keep]
            # where the signal starts: the leading sub-blocks' shortfall, up to the first one that
            # is (nearly) full; summing every sub-block's shortfall instead would count the
            # cross-term's ±10% wobble of each full one as a later start. That is
            # (1-f0) + [f0<FULL] * ((1-f1) + [f1<FULL] * ((1-f2) + [f2<FULL] * (1-f3))):
            short, part = 1.0 - f, f < _FULL
            lead = short[3]
            for i in (2, 1, 0):
                lead = short[i] + part[i] * lead
            ref = r
        if len(ch):
            # the window's 8 tone powers (8, n); its low and high tone (2, n) and their powers
            qs = q.reshape(-1)[(flat + j * (7 * c))[:, None] + _TONES8 * c]  # (n, 8)
            t2 = qs.reshape(-1, 2, 4).argmax(axis=2).T + _GROUP_BASE
            qt = np.empty((2, len(ch)))
            qr = qs.T
            qt[0] = np.maximum(np.maximum(qr[0], qr[1]), np.maximum(qr[2], qr[3]))
            qt[1] = np.maximum(np.maximum(qr[4], qr[5]), np.maximum(qr[6], qr[7]))
            # their 4 sub-block phasors, oldest first: (4 sub-blocks, [re lo, re hi, im lo, im hi], n)
            rows = np.concatenate((t2, t2 + 8)) * c + (flat + j * (15 * c))
            g = dft.reshape(-1)[rows + _COLS4[:, :, None] * (16 * c)]
            re, im = g[:, :2], g[:, 2:]
            # phase advance between consecutive sub-blocks: sum of P[k+1] * conj(P[k])
            tr = re[1:] * re[:-1] + im[1:] * im[:-1]
            ti = im[1:] * re[:-1] - re[1:] * im[:-1]
            zr = tr[0] + tr[1] + tr[2]
            zi = ti[0] + ti[1] + ti[2]
            # un-rotate by the nominal advance: the angle left is the frequency error
            rot_c, rot_s, tan2, advance = self._tone_consts[:, t2]
            ur = zr * rot_c + zi * rot_s
            ui = zi * rot_c - zr * rot_s
            ui2, ur2 = ui * ui, ur * ur
            ok2 = (ur > 0) & (ui2 <= tan2 * ur2)
            ok2 &= ur2 + ui2 >= self._coh2 * (qt * qt)
            ok = ok2[0] & ok2[1]
            # Q.24's worst accepted case has the tones 3% apart in relative error (−1.5%, +1.5%);
            # a musical octave or a note and its 2nd harmonic lands about 4% apart on keys C and 6.
            # Where both tones are within half that spread of nominal (with a margin for the
            # arctangent's error), the test cannot fail and the arctangents are skipped.
            near = ui2 <= self._tan2_half_spread[t2] * ur2
            if (ok & ~(near[0] & near[1])).any():
                # relative frequency error of each tone (angle / nominal advance)
                dev = _atan(ui / np.where(ur > 0, ur, 1.0)) / advance
                ok &= np.abs(dev[1] - dev[0]) <= self.config.max_deviation_spread
            j, ch, lead, ref = j[ok], ch[ok], lead[ok], ref[ok]
            code = _CODE_TABLE[t2[0, ok], t2[1, ok] - 4]

        return j, ch, code, lead, ref

    def _run_states(self, m: int, j: I64, ch: I64, code: I64, lead: F64, ref: F64, energy: F64,
                    counts: I64 | None) -> list[DtmfEvent]:
        """Advance each channel's digit state machine over the ``m`` windows; return the events.

        ``(j, ch)`` are the windows holding a digit (``code``), with their leading shortfall and
        reference energy. Only channels with a valid window or a non-idle state are touched; for
        the others nothing would change. The discrete state advances by table lookup, one gather
        per window for all those channels; the positions and levels that go with it are then read
        off the step flags for every window at once ("the value written at the latest step that
        raised flag F"), so the Python work per call does not grow with the number of channels.
        """
        tab = self._table
        s = self.block
        mark = self._state != 0
        mark[ch] = True
        sel = np.flatnonzero(mark)
        n = len(sel)
        if not n:
            return []
        p = np.searchsorted(sel, ch)
        blocks0 = self._blocks[sel]
        # time-major (window, channel) arrays: rows are the steps of the scan below
        inp = np.zeros((m, n), dtype=np.int64)  # table input: code + 1 (0: no digit here)
        inp[j, p] = code + 1
        # window j ends at sample (blocks + j + 1) * s; the signal fills its last 4 - lead sub-blocks
        onset_est = np.zeros((m, n), dtype=np.int64)
        onset_est[j, p] = (blocks0[p] + j + 1) * s - _WINDOW * s + np.rint(lead * s).astype(np.int64)
        ref_w = np.zeros((m, n))
        ref_w[j, p] = ref
        if counts is not None:
            inp[np.arange(m)[:, None] >= counts[sel][None, :]] = _NO_STEP
        # the discrete state, window by window (skipping stretches where every channel idles)
        st0 = self._state[sel]
        out = np.zeros((m, n), dtype=np.int64)
        table = tab.step
        st = st0
        any_digit: npt.NDArray[np.bool_] | None = None
        k = 0
        while k < m:
            if k > 3 and not st.any():
                if any_digit is None:
                    any_digit = np.asarray(((inp > 0) & (inp < _NO_STEP)).any(axis=1))
                ahead = np.flatnonzero(any_digit[k:])
                if not len(ahead):
                    break
                k += int(ahead[0])
            v = table[st + inp[k]]
            out[k] = v
            st = v & _STATE_MASK
            k += 1
        flags = out >> _FLAG_SHIFT
        # registers (m, n) after each step = the value written at the latest step (of this call)
        # that raised the register's flag, else the value before the call
        last = np.where((flags & _REG_FLAGS[:, None, None]) != 0, np.arange(m)[:, None], -1)  # (4, m, n)
        if m <= 16:  # (numpy's accumulate is slow on short axes)
            for k in range(1, m):
                np.maximum(last[:, k - 1], last[:, k], out=last[:, k])
        else:
            np.maximum.accumulate(last, axis=1, out=last)
        has = last >= 0
        at = np.maximum(last, 0)
        at *= n
        at += np.arange(n)  # flat index into an (m, n) array
        # reference energy: the last window the digit sounded (or started) in
        ref0 = self._ref[sel]
        ref_after = np.where(has[1], ref_w.ravel()[at[1]], ref0)
        # end estimate, at each first miss: the window's trailing sub-blocks' shortfall against the
        # reference, back to the first (nearly) full one
        end_val = np.zeros((m, n), dtype=np.int64)
        fi = np.flatnonzero(flags & _FIRST_MISS)
        if len(fi):
            fj = fi // n
            fc = fi - fj * n
            rr = np.where(fj > 0, ref_after.reshape(-1)[fi - n], ref0[fc])
            c = self.channels
            f = np.minimum(energy.reshape(-1)[fj * c + sel[fc] + _COLS4 * c] / np.where(rr > 0, rr, 1.0), 1.0)
            # (1-f3) + [f3<FULL] * ((1-f2) + [f2<FULL] * ((1-f1) + [f1<FULL] * (1-f0)))
            short, part = 1.0 - f, f < _FULL
            tail = short[0]
            for i in (1, 2, 3):
                tail = short[i] + part[i] * tail
            end_val.reshape(-1)[fi] = (blocks0[fc] + fj + 1) * s - np.rint(tail * s).astype(np.int64)
        end_est = np.where(has[2], end_val.ravel()[at[2]], self._end_est[sel])
        # candidate onset: set where a candidate run starts; a digit's onset: its candidate's
        cand_onset = np.where(has[0], onset_est.ravel()[at[0]], self._cand_onset[sel])
        onset0 = self._onset[sel]
        onset_after = np.where(has[3], cand_onset.ravel()[at[3]], onset0)

        events: list[DtmfEvent] = []
        ei = np.flatnonzero(flags & (_CONFIRM | _ENDED))  # in time order, then channel
        if len(ei):
            ej = ei // n
            ec = ei - ej * n
            # the state and onset before each step k: row k of these
            before = np.concatenate((st0[None], out[:-1] & _STATE_MASK)).reshape(-1)[ei]
            start = np.concatenate((onset0[None], onset_after[:-1])).reshape(-1)[ei]
            rows = zip(sel[ec].tolist(), ((blocks0[ec] + ej + 1) * s).tolist(), tab.cur[before].tolist(),
                       start.tolist(), end_est.reshape(-1)[ei].tolist(), (inp.reshape(-1)[ei] - 1).tolist(),
                       cand_onset.reshape(-1)[ei].tolist(), flags.reshape(-1)[ei].tolist(), strict=True)
            rate = self.sample_rate
            add = events.append
            # (tuple.__new__: the named tuple's own constructor, without its Python-level wrapper)
            for chan, now, cur, begin, end, code_new, begin_new, fl in rows:
                if fl & _CONFIRM:
                    if fl & _ENDED:  # a digit replaced by another one ends where the new one starts
                        add(_new_tuple(DtmfEvent, ("ended", CANONICAL[cur], begin, max(min(end, begin_new), begin + 1),
                                                   now, rate, chan)))
                    add(_new_tuple(DtmfEvent, ("started", CANONICAL[code_new], begin_new, None, now, rate, chan)))
                else:
                    add(_new_tuple(DtmfEvent, ("ended", CANONICAL[cur], begin, max(end, begin + 1), now, rate, chan)))
        self._state[sel] = st
        self._cand_onset[sel] = cand_onset[-1]
        self._ref[sel] = ref_after[-1]
        self._end_est[sel] = end_est[-1]
        self._onset[sel] = onset_after[-1]
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
