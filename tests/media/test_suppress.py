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
