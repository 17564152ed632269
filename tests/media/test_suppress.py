"""Tone suppression: detected spans muted in the delayed onward audio, speech left alone."""

from __future__ import annotations

import numpy as np

from roomtone.media.suppress import ToneSuppressor


def run(sup: ToneSuppressor, signal: np.ndarray, events: dict[int, tuple[str, int, int]]) -> np.ndarray:
    out = []
    for i in range(0, len(signal), 160):
        if i in events:
            kind, s, e = events[i]
            if kind == "mute":
                sup.mute(s, e if e >= 0 else None)
            else:
                sup.close(s, e)
        out.append(sup.process(signal[i:i + 160]))
    return np.concatenate(out)


def test_span_reported_late_is_still_muted_from_onset_thanks_to_the_delay():
    sig = np.full(1600, 1000, dtype=np.int16)
    sup = ToneSuppressor(delay_samples=320, margin_samples=0)
    # tone samples 480..960; the detector reports the onset at 800 and the end at 1120
    out = run(sup, sig, {800: ("mute", 480, -1), 1120: ("close", 480, 960)})
    assert len(out) == len(sig)
    shifted = out[320:]  # undo the delay line
    assert np.all(shifted[480:960] == 0)
    assert np.all(shifted[:480 - 16] == 1000) and np.all(shifted[960 + 16:] == 1000)


def test_no_delay_passes_audio_through_unchanged_without_spans():
    sig = (np.arange(800) % 100).astype(np.int16)
    sup = ToneSuppressor(delay_samples=0)
    assert np.array_equal(run(sup, sig, {}), sig)
    assert sup.muted_samples == 0


def test_close_by_handle_ends_the_span_even_when_the_position_moved():
    sig = np.full(3200, 1000, dtype=np.int16)
    sup = ToneSuppressor(delay_samples=0, margin_samples=0)
    out = [sup.process(sig[:800])]
    span = sup.mute(800)  # open at 800
    out.append(sup.process(sig[800:1600]))
    sup.close(1600 + 4000, 1600, span)  # a start far from the span's: the handle decides
    out += [sup.process(sig[i:i + 160]) for i in range(1600, 3200, 160)]
    got = np.concatenate(out)
    assert np.all(got[800:1600] == 0)
    assert np.all(got[1600 + 16:] == 1000)  # the press ended at 1600 (800 + its 800 samples)
    assert not sup._spans


def test_an_open_span_whose_end_was_lost_stops_muting_and_pins_nothing():
    sig = np.full(16000, 1000, dtype=np.int16)
    sup = ToneSuppressor(delay_samples=0, margin_samples=0, max_open_samples=1600)
    sup.mute(160)  # never closed
    out = []
    for i in range(0, len(sig), 160):
        if i in (3200, 6400, 9600):  # later presses, each opened and closed
            sup.mute(i, i + 320)
        out.append(sup.process(sig[i:i + 160]))
    got = np.concatenate(out)
    assert np.all(got[160:1760] == 0)
    assert np.all(got[1760 + 16:3200 - 16] == 1000)  # unmuted after max_open_samples
    assert np.all(got[9600:9920] == 0) and np.all(got[9920 + 16:] == 1000)
    assert not sup._spans  # nothing left behind an open span
