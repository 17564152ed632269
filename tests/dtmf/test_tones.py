"""The DTMF generator: frequencies (measured by FFT), levels in dBm0, durations, pauses,
phase continuity, G.711 compatibility and errors."""

from __future__ import annotations

import numpy as np
import pytest

from roomtone.dtmf import DtmfError
from roomtone.dtmf.tones import (
    DBM0_PEAK,
    FREQUENCIES,
    ROW_COLUMN,
    ToneGenerator,
    generate,
    tone_frequencies,
)


def _peaks(x: np.ndarray, rate: int) -> list[float]:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    top = np.argsort(spec)[::-1]
    found: list[float] = []
    for i in top:
        if all(abs(freqs[i] - f) > 30 for f in found):
            found.append(float(freqs[i]))
        if len(found) == 2:
            break
    return sorted(found)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_each_key_has_its_q23_pair(rate: int, digit: str) -> None:
    x = ToneGenerator(sample_rate=rate).tone(digit, 1.0).astype(float)
    low, high = tone_frequencies(digit)
    got = _peaks(x, rate)
    assert got[0] == pytest.approx(low, abs=1.5) and got[1] == pytest.approx(high, abs=1.5)


def test_keypad_layout_matches_q23() -> None:
    assert tone_frequencies("1") == (697, 1209)
    assert tone_frequencies("5") == (770, 1336)
    assert tone_frequencies("9") == (852, 1477)
    assert tone_frequencies("*") == (941, 1209)
    assert tone_frequencies("0") == (941, 1336)
    assert tone_frequencies("#") == (941, 1477)
    assert tone_frequencies("D") == (941, 1633)
    assert tone_frequencies("a") == (697, 1633)
    assert len(ROW_COLUMN) == 16 and len(FREQUENCIES) == 8


def test_levels_are_per_tone_dbm0() -> None:
    rate = 8000
    x = ToneGenerator(sample_rate=rate, low_dbm0=-7, high_dbm0=-5).tone("1", 1.0).astype(float)
    n = np.arange(len(x))
    for f, level in ((697, -7), (1209, -5)):
        amp = 2 * abs(np.dot(x, np.exp(-2j * np.pi * f * n / rate))) / len(x)
        assert 20 * np.log10(amp / DBM0_PEAK) == pytest.approx(level, abs=0.05)


def test_sequence_durations_gaps_and_pauses() -> None:
    gen = ToneGenerator()
    audio, placed = gen.sequence("12w3", tone_seconds=0.07, gap_seconds=0.03)
    assert [p.digit for p in placed] == ["1", "2", "3"]
    assert [p.length for p in placed] == [560, 560, 560]
    assert placed[1].start == 560 + 240
    assert placed[2].start == 2 * 800 + 4000  # 'w' adds 0.5 s
    assert len(audio) == 3 * 800 + 4000
    assert not audio[560:800].any() and audio[800:1360].any()


def test_phase_continuous_across_calls() -> None:
    one = ToneGenerator().tone("7", 0.2)
    gen = ToneGenerator()
    split = np.concatenate([gen.tone("7", 0.05), gen.tone("7", 0.15)])
    assert np.array_equal(one, split)
    # and the oscillators keep running through silence: a tone after a gap continues the phase
    g1 = ToneGenerator()
    a = np.concatenate([g1.tone("7", 0.05), g1.silence(0.05), g1.tone("7", 0.05)])
    full = ToneGenerator().tone("7", 0.15)
    assert np.array_equal(a[800:], full[800:])


def test_generate_entry_point_and_errors() -> None:
    assert len(generate("1#", tone_seconds=0.05, gap_seconds=0.05)) == 1600
    with pytest.raises(DtmfError, match="no in-band tone"):
        generate("R")
    with pytest.raises(DtmfError, match="unknown DTMF character"):
        generate("12x")
    with pytest.raises(DtmfError, match="sample rate"):
        ToneGenerator(sample_rate=100)
    with pytest.raises(DtmfError, match="levels"):
        ToneGenerator(low_dbm0=10)


def test_loud_tones_do_not_wrap() -> None:
    x = ToneGenerator(low_dbm0=3.0, high_dbm0=3.0).tone("D", 0.1)
    assert x.dtype == np.int16 and x.max() <= 32767 and x.min() >= -32768
