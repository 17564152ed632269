"""The numba kernels (``roomtone.dtmf._detector_kernels``) and the numpy path give identical results.

The bank uses the compiled kernels for the per-window checks and the digit state machine once
``load_kernels()`` has loaded them (numba is a dependency, so here it must); the numpy path stays
for installs without numba, with ``ROOMTONE_DTMF_NUMBA=0``, and until the kernels are loaded. Both compute the same IEEE operations in the same order,
so the events, and the windows' intermediate values, must be equal bit for bit: on random DTMF
mixtures (uniform ticks and ragged frames) and on the benchmark's kind of busy mix (speech,
music and Q.24 trials). The other detector tests are also run once more with the kernels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from roomtone.dtmf import detector as det
from roomtone.dtmf.detector import DtmfDetectorBank, DtmfEvent
from tests.dtmf.test_detector_bank import signal

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import dtmf_detector as bench  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def kernels() -> None:
    assert det.load_kernels(), "numba is a dependency: the compiled kernels must load"


def run_bank(xs: np.ndarray, accel: bool, ragged_seed: int | None = None, tick: int = 160) -> list[DtmfEvent]:
    bank = DtmfDetectorBank(xs.shape[0], 8000)
    bank._accel = accel
    events: list[DtmfEvent] = []
    if ragged_seed is None:
        for k in range(0, xs.shape[1], tick):
            events += bank.feed(xs[:, k:k + tick])
    else:
        rng = np.random.default_rng(ragged_seed)
        pos = np.zeros(xs.shape[0], dtype=np.int64)
        while (pos < xs.shape[1]).any():
            frames: list[Any] = []
            for c in range(xs.shape[0]):
                n = int(rng.integers(0, 500)) if rng.random() > 0.1 else 0
                frames.append(None if n == 0 else xs[c, pos[c]:pos[c] + n])
                pos[c] += n
            events += bank.feed(frames)
    return events + bank.flush()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_mixtures_uniform_ticks(seed: int) -> None:
    xs = np.stack([signal(1000 * seed + c, seconds=2.5) for c in range(48)])
    fast = run_bank(xs, True, tick=[160, 80, 320][seed - 1])
    slow = run_bank(xs, False, tick=[160, 80, 320][seed - 1])
    assert len(slow) > 20  # the signals do hold digits
    assert fast == slow


@pytest.mark.parametrize("seed", [4, 5])
def test_random_mixtures_ragged_frames(seed: int) -> None:
    xs = np.stack([signal(1000 * seed + c, seconds=2.0) for c in range(32)])
    fast = run_bank(xs, True, ragged_seed=seed)
    slow = run_bank(xs, False, ragged_seed=seed)
    assert len(slow) > 30
    assert fast == slow


@pytest.fixture(scope="module")
def busy_mix() -> np.ndarray:
    """The benchmark's busy mix in small: its dev-set speech, music and Q.24 trials (8 kHz)."""
    speech = bench.make_speech("dev", 12)
    music = bench.make_music("dev", 8)
    trials = bench.make_trials("dev", 6, speech)
    tones = np.concatenate([t.audio for t in trials if t.rate == 8000])[: 8000 * 20]
    return np.concatenate((speech, music, tones))


def test_busy_mix_events_and_windows_identical(busy_mix: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    frame, ticks, channels = 160, 150, 200
    rng = np.random.default_rng(5)
    starts = rng.integers(0, len(busy_mix) - frame * ticks, channels)
    xs = np.stack([busy_mix[s:s + frame * ticks] for s in starts])
    slow = run_bank(xs, False)
    # the compiled path, with each tick's windows also checked against the numpy code bit for bit
    compared = {"ticks": 0, "windows": 0}
    kern = det._kernel_module
    assert kern is not None
    real = kern.windows

    def checked(valid: Any, q: Any, dft: Any, energy: Any, *args: Any) -> int:
        n = real(valid, q, dft, energy, *args)
        out_j, out_ch, out_code, out_lead, out_ref = args[-5:]
        bank = DtmfDetectorBank(valid.shape[1], 8000)
        j, ch, code, lead, ref = bank._windows(valid, q, dft, energy)
        assert n == len(j)
        np.testing.assert_array_equal(out_j[:n], j)
        np.testing.assert_array_equal(out_ch[:n], ch)
        np.testing.assert_array_equal(out_code[:n], code)
        assert out_lead[:n].tobytes() == lead.tobytes()  # bit for bit
        assert out_ref[:n].tobytes() == ref.tobytes()
        compared["ticks"] += 1
        compared["windows"] += n
        return n

    monkeypatch.setattr(kern, "windows", checked)
    fast = run_bank(xs, True)
    assert compared["ticks"] == ticks
    assert compared["windows"] > 1000  # digits were heard, so the checks ran on many windows
    assert len(slow) > 100
    assert fast == slow


def test_falls_back_to_numpy_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(det, "_kernel_tried", False)
    monkeypatch.setattr(det, "_kernel_module", None)
    monkeypatch.setitem(sys.modules, "roomtone.dtmf._detector_kernels", None)  # import fails
    assert det._kernels() is None
    xs = np.stack([signal(77 + c, seconds=1.0) for c in range(4)])
    bank = DtmfDetectorBank(4, 8000)
    assert bank._accel  # wants the kernels, gets the numpy path
    events = run_bank(xs, True)
    monkeypatch.undo()
    assert events == run_bank(xs, False)


def test_other_detector_tests_pass_with_the_kernels() -> None:
    """In a normal test run nothing calls load_kernels(), so the other detector tests exercise the
    numpy path; here they run again in a process that loaded the kernels first."""
    files = sorted(str(p) for p in Path(__file__).parent.glob("test_detector*.py") if p.name != Path(__file__).name)
    code = ("import sys, pytest\n"
            "from roomtone.dtmf import detector\n"
            "assert detector.load_kernels()\n"
            f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *{files!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def test_only_load_kernels_loads_numba() -> None:
    """Feeding never loads numba (that would stall a running audio loop); load_kernels() does,
    and then banks use the kernels."""
    code = ("import sys\n"
            "from roomtone.dtmf import detect, detector\n"
            "from roomtone.dtmf.tones import ToneGenerator\n"
            "audio, _ = ToneGenerator().sequence('159', 0.07, 0.07)\n"
            "print(''.join(d.digit for d in detect(audio)), 'numba' in sys.modules)\n"
            "print(detector.load_kernels(), 'numba' in sys.modules)\n"
            "calls = []\n"
            "real = detector._kernel_module.states\n"
            "detector._kernel_module.states = lambda *a: calls.append(1) or real(*a)\n"
            "print(''.join(d.digit for d in detect(audio)), len(calls) > 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["159 False", "True True", "159 True"]
