"""DTMF tone generation, and the one table of DTMF frequencies that the detector shares.

Sources:

* ITU-T Recommendation Q.23 (11/1988), "Technical features of push-button telephone sets":
  the 4x4 keypad of low-group (697, 770, 852, 941 Hz) and high-group (1209, 1336, 1477, 1633 Hz)
  frequencies, one of each per key.
* ITU-T Recommendation Q.24 (11/1988), "Multifrequency push-button signal reception", and
  ETSI ES 201 235-2 (DTMF transmitters): the sender's default levels used here, −7 dBm0 for the
  low-group tone and −5 dBm0 for the high-group tone (the high group 2 dB stronger, "pre-emphasis",
  because lines attenuate it more).
* ITU-T G.711 (11/1988) for the digital reference level: a sine wave at 0 dBm0 is 3.14 dB below
  the largest sine the A-law coder can carry (3.17 dB for µ-law). With 16-bit linear samples we
  take full scale 32768, so 0 dBm0 is a sine of peak ``32768 * 10**(-3.14/20)`` ≈ 22,827
  (:data:`DBM0_PEAK`). The detector uses the same constant to turn levels into thresholds.

Pauses in a sequence come from :mod:`roomtone.dtmf.digits` (``w``/``,`` 0.5 s, ``W`` 1 s).
Flash (``R``, event 16) is a hook signal with no tone, so it cannot be generated in-band.

The oscillators are phase-continuous: each of the eight frequencies is a running phase
accumulator that keeps advancing through gaps and across calls, so splitting one sequence into
several calls produces the same samples, and no tone ever starts with a phase jump mid-signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from roomtone.dtmf.digits import CANONICAL, DtmfError, Pause, code_for, parse_sequence

#: Q.23 low-group (row) and high-group (column) frequencies in Hz.
LOW_GROUP: tuple[float, ...] = (697.0, 770.0, 852.0, 941.0)
HIGH_GROUP: tuple[float, ...] = (1209.0, 1336.0, 1477.0, 1633.0)
#: every DTMF frequency, low group first: index 0-3 are rows, 4-7 columns.
FREQUENCIES: tuple[float, ...] = LOW_GROUP + HIGH_GROUP

#: the Q.23 keypad as event codes (digits.py): KEYPAD[row][column].
KEYPAD: tuple[tuple[int, ...], ...] = tuple(
    tuple(code_for(ch) for ch in row) for row in ("123A", "456B", "789C", "*0#D")
)

#: event code (0-15) -> (row index, column index).
ROW_COLUMN: dict[int, tuple[int, int]] = {
    code: (r, c) for r, row in enumerate(KEYPAD) for c, code in enumerate(row)
}

#: peak amplitude of a 0 dBm0 sine in 16-bit linear PCM (see the module docstring).
DBM0_PEAK: float = 32768.0 * 10 ** (-3.14 / 20)

SUPPORTED_RATES = (8000, 16000, 48000)

DEFAULT_LOW_DBM0 = -7.0
DEFAULT_HIGH_DBM0 = -5.0
DEFAULT_TONE_SECONDS = 0.1
DEFAULT_GAP_SECONDS = 0.1


def tone_frequencies(digit: str | int) -> tuple[float, float]:
    """(low, high) frequencies in Hz for a digit character or event code 0-15."""
    code = code_for(digit) if isinstance(digit, str) else digit
    if code not in ROW_COLUMN:
        name = CANONICAL[code] if isinstance(code, int) and 0 <= code < len(CANONICAL) else code
        raise DtmfError(f"DTMF key {name!r} has no in-band tone (flash is a hook signal)")
    r, c = ROW_COLUMN[code]
    return LOW_GROUP[r], HIGH_GROUP[c]


def dbm0_to_peak(level_dbm0: float) -> float:
    """Peak amplitude (16-bit linear) of a sine at ``level_dbm0``."""
    return DBM0_PEAK * 10 ** (level_dbm0 / 20)


@dataclass(frozen=True)
class PlacedTone:
    """Where a tone landed in generated audio: the ground truth for tests and benchmarks."""

    digit: str
    start: int  #: first sample
    length: int  #: samples
    sample_rate: int

    @property
    def start_seconds(self) -> float:
        return self.start / self.sample_rate

    @property
    def duration(self) -> float:
        return self.length / self.sample_rate


@dataclass
class ToneGenerator:
    """Phase-continuous DTMF generator producing int16 PCM.

    ``low_dbm0`` / ``high_dbm0`` are the per-tone levels; ``deviation`` shifts every low- and
    high-group frequency by a relative amount (e.g. ``(0.015, -0.015)``), for testing receivers.
    """

    sample_rate: int = 8000
    low_dbm0: float = DEFAULT_LOW_DBM0
    high_dbm0: float = DEFAULT_HIGH_DBM0
    deviation: tuple[float, float] = (0.0, 0.0)
    _phase: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(len(FREQUENCIES)), repr=False)
    _position: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.sample_rate, int) or not 4000 <= self.sample_rate <= 192000:
            raise DtmfError(f"sample rate {self.sample_rate!r} Hz is not supported (4000-192000)")
        for name in ("low_dbm0", "high_dbm0"):
            level = getattr(self, name)
            if not -100 <= level <= 3.14:
                raise DtmfError(f"{name}={level!r}: levels must be between -100 and +3.14 dBm0")

    @property
    def position(self) -> int:
        """Samples generated so far."""
        return self._position

    def _advance(self, n: int) -> npt.NDArray[np.float64]:
        """Phases (radians) of all eight oscillators for the next ``n`` samples; advances them."""
        scale = np.array([1 + self.deviation[0]] * 4 + [1 + self.deviation[1]] * 4)
        step = 2 * np.pi * np.asarray(FREQUENCIES) * scale / self.sample_rate
        phases = self._phase[:, None] + step[:, None] * np.arange(n)[None, :]
        self._phase = np.mod(self._phase + step * n, 2 * np.pi)
        self._position += n
        return phases

    def tone(self, digit: str | int, seconds: float = DEFAULT_TONE_SECONDS) -> npt.NDArray[np.int16]:
        """One key's tone pair for ``seconds``."""
        code = code_for(digit) if isinstance(digit, str) else digit
        tone_frequencies(code)  # validates, naming the key
        r, c = ROW_COLUMN[code]
        n = self._samples(seconds)
        phases = self._advance(n)
        signal = (dbm0_to_peak(self.low_dbm0) * np.sin(phases[r])
                  + dbm0_to_peak(self.high_dbm0) * np.sin(phases[4 + c]))
        return np.clip(np.rint(signal), -32768, 32767).astype(np.int16)

    def silence(self, seconds: float) -> npt.NDArray[np.int16]:
        n = self._samples(seconds)
        self._advance(n)
        return np.zeros(n, dtype=np.int16)

    def sequence(
        self,
        text: str,
        tone_seconds: float = DEFAULT_TONE_SECONDS,
        gap_seconds: float = DEFAULT_GAP_SECONDS,
    ) -> tuple[npt.NDArray[np.int16], list[PlacedTone]]:
        """Render ``"123#w456"``: each key ``tone_seconds`` long followed by ``gap_seconds`` of
        silence; pause characters add their silence. Returns the audio and where each tone is."""
        parts: list[npt.NDArray[np.int16]] = []
        placed: list[PlacedTone] = []
        for step in parse_sequence(text):
            if isinstance(step, Pause):
                parts.append(self.silence(step.seconds))
                continue
            start = self._position
            parts.append(self.tone(step.code, tone_seconds))
            placed.append(PlacedTone(step.digit, start, self._position - start, self.sample_rate))
            parts.append(self.silence(gap_seconds))
        audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        return audio, placed

    def _samples(self, seconds: float) -> int:
        if not 0 <= seconds <= 3600:
            raise DtmfError(f"duration {seconds!r} s is out of range (0-3600 s)")
        return int(round(seconds * self.sample_rate))


def generate(
    text: str,
    sample_rate: int = 8000,
    tone_seconds: float = DEFAULT_TONE_SECONDS,
    gap_seconds: float = DEFAULT_GAP_SECONDS,
    low_dbm0: float = DEFAULT_LOW_DBM0,
    high_dbm0: float = DEFAULT_HIGH_DBM0,
) -> npt.NDArray[np.int16]:
    """int16 PCM for a digit sequence such as ``"123#w456"`` (the generator's entry point)."""
    gen = ToneGenerator(sample_rate=sample_rate, low_dbm0=low_dbm0, high_dbm0=high_dbm0)
    audio, _ = gen.sequence(text, tone_seconds, gap_seconds)
    return audio
