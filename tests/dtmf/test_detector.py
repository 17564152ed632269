"""The in-band detector against the ITU-T Q.24 reception requirements, on generated tones.

Each requirement is tested on both sides of its limit, at every key, so a detector that accepts
everything or nothing fails."""

from __future__ import annotations

import numpy as np
import pytest

from roomtone.dtmf import DtmfError
from roomtone.dtmf.detector import DetectorConfig, DtmfDetector, DtmfDetectorBank, detect
from roomtone.dtmf.tones import ToneGenerator, dbm0_to_peak
from roomtone.media import g711

KEYS = "0123456789*#ABCD"


def one_tone(digit: str, ms: float, rate: int = 8000, lead_ms: float = 37.0, **kw) -> np.ndarray:
    gen = ToneGenerator(sample_rate=rate, **kw)
    return np.concatenate([gen.silence(lead_ms / 1000), gen.tone(digit, ms / 1000), gen.silence(0.15)])


def digits(x: np.ndarray, rate: int = 8000) -> str:
    return "".join(d.digit for d in detect(x, rate))


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_every_key_at_every_rate_with_accurate_times(rate: int) -> None:
    gen = ToneGenerator(sample_rate=rate)
    lead = gen.silence(0.0123)
    audio, placed = gen.sequence(KEYS, tone_seconds=0.06, gap_seconds=0.06)
    found = detect(np.concatenate([lead, audio]), rate)
    assert "".join(d.digit for d in found) == KEYS
    for d, p in zip(found, placed, strict=True):
        assert abs(d.start - p.start / rate) < 0.004  # onset within 4 ms
        assert abs(d.duration - 0.06) < 0.008


@pytest.mark.parametrize("digit", list(KEYS))
def test_frequency_deviation_accept_1_5_reject_3_5(digit: str) -> None:
    for dev in [(0.015, 0.015), (-0.015, -0.015), (0.015, -0.015), (-0.015, 0.015)]:
        assert digits(one_tone(digit, 60, deviation=dev)) == digit, dev
    for dev in [(0.035, 0.0), (-0.035, 0.0), (0.0, 0.035), (0.0, -0.035), (0.035, -0.035)]:
        assert digits(one_tone(digit, 60, deviation=dev)) == "", dev


@pytest.mark.parametrize("digit", list(KEYS))
def test_twist_levels_and_durations(digit: str) -> None:
    assert digits(one_tone(digit, 60, low_dbm0=-10, high_dbm0=-18)) == digit  # -8 dB twist
    assert digits(one_tone(digit, 60, low_dbm0=-14, high_dbm0=-10)) == digit  # +4 dB twist
    assert digits(one_tone(digit, 60, low_dbm0=-10, high_dbm0=-22)) == ""  # -12 dB
    assert digits(one_tone(digit, 60, low_dbm0=-18, high_dbm0=-10)) == ""  # +8 dB
    assert digits(one_tone(digit, 60, low_dbm0=-3, high_dbm0=-3)) == digit
    assert digits(one_tone(digit, 60, low_dbm0=-36, high_dbm0=-36)) == digit
    assert digits(one_tone(digit, 60, low_dbm0=-55, high_dbm0=-55)) == ""
    for lead in (0.0, 2.5, 4.9):  # every alignment to the 5 ms analysis grid
        assert digits(one_tone(digit, 40, lead_ms=lead)) == digit
        assert digits(one_tone(digit, 23, lead_ms=lead)) == ""


@pytest.mark.parametrize("digit", list("159#D"))
def test_a_10ms_interruption_is_one_digit_and_a_40ms_pause_is_two(digit: str) -> None:
    gen = ToneGenerator()
    broken = np.concatenate([gen.silence(0.03), gen.tone(digit, 0.05), gen.silence(0.01), gen.tone(digit, 0.05),
                             gen.silence(0.1)])
    found = detect(broken)
    assert [d.digit for d in found] == [digit]
    assert found[0].duration == pytest.approx(0.11, abs=0.008)
    gen = ToneGenerator()
    two = np.concatenate([gen.silence(0.03), gen.tone(digit, 0.05), gen.silence(0.04), gen.tone(digit, 0.05),
                          gen.silence(0.1)])
    assert digits(two) == digit * 2


def test_noise_at_15db_snr_and_g711_round_trips() -> None:
    rng = np.random.default_rng(3)
    gen = ToneGenerator()
    audio, _ = gen.sequence(KEYS, 0.06, 0.06)
    power = (dbm0_to_peak(-7) ** 2 + dbm0_to_peak(-5) ** 2) / 2
    noisy = np.clip(audio + rng.standard_normal(len(audio)) * np.sqrt(power / 10**1.5), -32768, 32767)
    noisy = noisy.astype(np.int16)
    assert digits(noisy) == KEYS
    for codec in ("ulaw", "alaw"):
        assert digits(g711.roundtrip(noisy, codec)) == KEYS
        quiet = ToneGenerator(low_dbm0=-33, high_dbm0=-31).sequence(KEYS, 0.05, 0.05)[0]
        assert digits(g711.roundtrip(quiet, codec)) == KEYS


def test_no_digits_in_noise_or_chords() -> None:
    rng = np.random.default_rng(4)
    assert digits((rng.standard_normal(8000 * 5) * 3000).astype(np.int16)) == ""
    # a harmonic-rich note whose 2nd and 3rd harmonics sit near DTMF frequencies (348.5 Hz)
    t = np.arange(8000 * 2) / 8000
    note = sum(np.sin(2 * np.pi * k * 348.5 * t) / k for k in range(1, 10))
    assert digits((note * 5000).astype(np.int16)) == ""


def test_streaming_events_and_frames_of_any_length() -> None:
    gen = ToneGenerator()
    audio, placed = gen.sequence("73", 0.08, 0.08)
    det = DtmfDetector()
    events = []
    rng = np.random.default_rng(5)
    pos = 0
    while pos < len(audio):
        n = int(rng.integers(1, 300))
        events += det.feed(audio[pos:pos + n])
        pos += n
    events += det.flush()
    assert [(e.kind, e.digit) for e in events] == [("started", "7"), ("ended", "7"), ("started", "3"), ("ended", "3")]
    for e in events:
        assert e.emitted_at >= (e.end if e.end is not None else e.start)
    assert events[0].start == pytest.approx(placed[0].start, abs=32)
    assert events[1].duration == pytest.approx(0.08, abs=0.008)
    # bytes work too, and give the same result
    det2 = DtmfDetector()
    again = det2.feed(audio.astype("<i2").tobytes()) + det2.flush()
    assert again == events


def test_flush_closes_a_tone_still_sounding() -> None:
    det = DtmfDetector()
    events = det.feed(ToneGenerator().tone("9", 0.2))
    assert [e.kind for e in events] == ["started"]
    closing = det.flush()
    assert [(e.kind, e.digit, e.end) for e in closing] == [("ended", "9", 1600)]


def test_bad_input_errors() -> None:
    with pytest.raises(DtmfError, match="int16"):
        DtmfDetector().feed(np.zeros(10, dtype=np.float32))
    with pytest.raises(DtmfError, match="sample rate"):
        DtmfDetector(4000)
    with pytest.raises(DtmfError, match="even number"):
        DtmfDetector().feed(b"\x00")
    with pytest.raises(DtmfError, match="channels"):
        DtmfDetectorBank(2).feed(np.zeros((3, 160), np.int16))
    with pytest.raises(DtmfError, match="channels must be"):
        DtmfDetectorBank(0)


def test_config_thresholds_are_used() -> None:
    x = one_tone("5", 60, low_dbm0=-40, high_dbm0=-40)
    assert digits(x) == "5"
    assert detect(x, 8000, DetectorConfig(min_level_dbm0=-35)) == []
