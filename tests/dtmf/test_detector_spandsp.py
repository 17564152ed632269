"""Smoke test of the benchmark's anchor: spandsp's DTMF receiver through ctypes
(``benchmarks/_spandsp.py``) hears what our generator sends and reports it when we do."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from roomtone.dtmf import detect
from roomtone.dtmf.tones import ToneGenerator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _spandsp import SpandspDtmf  # noqa: E402


def test_spandsp_wrapper_reports_digits_and_times() -> None:
    audio, placed = ToneGenerator().sequence("159#0D", 0.07, 0.07)
    sp = SpandspDtmf(chunk=40)
    sp.feed(audio)
    sp.close()
    assert "".join(d.digit for d in sp.digits) == "159#0D"
    # spandsp reports after detecting, i.e. some tens of ms after each onset, never before it
    for d, p in zip(sp.digits, placed, strict=True):
        assert p.start < d.reported_at < p.start + 0.07 * 8000
        assert d.ended_at is not None and d.ended_at > d.reported_at
    assert "".join(d.digit for d in detect(audio, 8000)) == "159#0D"


def test_spandsp_rejects_silence_and_noise() -> None:
    sp = SpandspDtmf()
    sp.feed((np.random.default_rng(1).standard_normal(8000) * 1000).astype(np.int16))
    sp.feed(np.zeros(8000, np.int16))
    assert sp.digits == []
