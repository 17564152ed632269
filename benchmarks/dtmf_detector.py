"""In-band DTMF detection: roomtone's detector beside spandsp's, on one test set, in one run.

    python benchmarks/dtmf_detector.py                 # evaluation set (the reported numbers)
    python benchmarks/dtmf_detector.py --set dev       # development set (where thresholds were chosen)
    python benchmarks/dtmf_detector.py --quick         # fewer trials, shorter talk-off material
    python benchmarks/dtmf_detector.py --speed-only --speech-minutes 1 --music-minutes 1
                                                       # throughput only, same mixes (about 15 s)

The test set is built here, at run time, from seeds (nothing is downloaded or stored):

* Q.24 categories (ITU-T Q.24 §4; see ``roomtone.dtmf.detector``): nominal tones; frequency
  deviation ±1.5% (accept) and ±3.5% (reject); twist −8 dB and +4 dB (accept); levels −3..−36 dBm0
  (accept) and −55..−65 dBm0 (reject); 40 ms tones (accept) and 23 ms / 20 ms tones (reject); one
  10 ms interruption inside a tone (one digit); white noise at 15 dB SNR; µ-law and A-law round
  trips with noise; 16 kHz and 48 kHz audio; fast dialling (10 digits per second).
* Talk-off material: speech synthesised by ``espeak-ng`` in several voices, speeds and pitches,
  resampled to 8 kHz by ``sox`` (half of it also through a µ-law round trip), and synthetic music
  (piano-, organ-, string- and flute-like timbres, chords, bass, melody, percussion).

Development and evaluation sets never share material: different seeds, different espeak-ng
voices and different texts (dev reads the GPL-2 text, eval the Apache-2.0 and Artistic licence
texts from /usr/share/common-licenses). roomtone's thresholds (``DetectorConfig``) were chosen by
looking at the development set only; the evaluation set is what BENCHMARKS.md reports.

Both detectors see the same samples. spandsp (``libspandsp2``, ctypes, its defaults) works at
8 kHz only, so for the 16/48 kHz categories it gets the same audio resampled to 8 kHz by sox.
spandsp reports a digit when it has decided, without a start time; its onset estimate is its
report time minus its median report latency on the development set's nominal tones.

Speed is CPU time per core (``time.process_time``, BLAS limited to one thread): one channel fed
20 ms frames, and 1,000 channels fed 20 ms ticks (roomtone's batched bank; spandsp has no batch
mode, so its anchor is its best case, the C code run over a long buffer in one call). The bank is
timed on both of its paths: with the numba kernels (``load_kernels()``, as a server calls at
start-up) and numpy only.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # per-core figures; must precede numpy
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _spandsp import SpandspDtmf  # noqa: E402
from roomtone.dtmf import detector as detector_module  # noqa: E402
from roomtone.dtmf.detector import DetectorConfig, DtmfDetector, DtmfDetectorBank, load_kernels  # noqa: E402
from roomtone.dtmf.tones import DBM0_PEAK, ToneGenerator, dbm0_to_peak  # noqa: E402
from roomtone.media import g711  # noqa: E402

DIGITS = list("0123456789*#ABCD")
SETS = {
    "dev": {"seed": 1001, "voices": ["en-us", "de", "es+f2", "fr-fr+m3", "ru+f4"],
            "texts": ["/usr/share/common-licenses/GPL-2"]},
    "eval": {"seed": 2002, "voices": ["en-gb+m1", "it+f3", "pt+m5", "nl+f1", "pl", "sv+m2", "hi"],
             "texts": ["/usr/share/common-licenses/Apache-2.0", "/usr/share/common-licenses/Artistic"]},
}


@dataclass
class Trial:
    category: str
    audio: np.ndarray
    rate: int
    expected: str  # digits expected, in order ("" = must reject)
    onsets: list[int] = field(default_factory=list)  # true onsets (samples at ``rate``)
    accept: bool = True


# ---------------------------------------------------------------- test set

def _noise(rng: np.random.Generator, n: int, rms: float) -> np.ndarray:
    return rng.standard_normal(n) * rms


def _clip16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def _one_tone(rng: np.random.Generator, rate: int, digit: str, ms: float, low: float = -7.0,
              high: float = -5.0, dev: tuple[float, float] = (0.0, 0.0),
              gap_ms: float | None = None) -> tuple[np.ndarray, int]:
    """Silence, one tone (optionally with a break in the middle), silence. Returns audio, onset."""
    gen = ToneGenerator(sample_rate=rate, low_dbm0=low, high_dbm0=high, deviation=dev)
    lead = gen.silence(rng.uniform(0.03, 0.2))
    if gap_ms is None:
        body = gen.tone(digit, ms / 1000)
    else:
        body = np.concatenate((gen.tone(digit, ms / 1000), gen.silence(gap_ms / 1000), gen.tone(digit, ms / 1000)))
    tail = gen.silence(0.15)
    return np.concatenate((lead, body, tail)), len(lead)


def make_trials(set_name: str, n: int, speech: np.ndarray | None = None) -> list[Trial]:
    """The Q.24 categories; with ``speech`` (this set's own), also digits pressed over speech."""
    rng = np.random.default_rng(SETS[set_name]["seed"])
    trials: list[Trial] = []

    def add(cat: str, audio: np.ndarray, digit: str, onset: int, rate: int = 8000, accept: bool = True) -> None:
        trials.append(Trial(cat, audio, rate, digit if accept else "", [onset] if accept else [], accept))

    def pick() -> str:
        return str(rng.choice(DIGITS))

    for _ in range(n):
        d = pick()
        a, on = _one_tone(rng, 8000, d, rng.uniform(50, 100))
        add("nominal", a, d, on)
    for _ in range(n):
        d = pick()
        dev = [(1, 1), (1, 0), (0, 1), (1, -1)][rng.integers(4)]
        sign = rng.choice([-1, 1], 2)
        a, on = _one_tone(rng, 8000, d, 60, dev=(0.015 * dev[0] * sign[0], 0.015 * dev[1] * sign[1]))
        add("freq ±1.5% accept", a, d, on)
    for _ in range(n):
        d = pick()
        dev = [(1, 1), (1, 0), (0, 1), (1, -1)][rng.integers(4)]
        sign = rng.choice([-1, 1], 2)
        a, on = _one_tone(rng, 8000, d, 60, dev=(0.035 * dev[0] * sign[0], 0.035 * dev[1] * sign[1]))
        add("freq ±3.5% reject", a, d, on, accept=False)
    for _ in range(n):
        d = pick()
        twist = float(rng.choice([-8.0, 4.0]))
        low = rng.uniform(-28.0, -7.0)
        a, on = _one_tone(rng, 8000, d, 60, low=low, high=low + twist)
        add("twist -8/+4 dB", a, d, on)
    for _ in range(n):
        d = pick()
        level = float(rng.choice([-3.0, -36.0])) if rng.random() < 0.5 else rng.uniform(-36, -3)
        a, on = _one_tone(rng, 8000, d, 60, low=level, high=level)
        add("level -3..-36 dBm0", a, d, on)
    for _ in range(n):
        d = pick()
        level = rng.uniform(-65, -55)
        a, on = _one_tone(rng, 8000, d, 60, low=level, high=level)
        add("level <=-55 dBm0 reject", a, d, on, accept=False)
    for _ in range(n):
        d = pick()
        a, on = _one_tone(rng, 8000, d, 40)
        add("duration 40 ms", a, d, on)
    for _ in range(n):
        d = pick()
        a, on = _one_tone(rng, 8000, d, float(rng.choice([20.0, 23.0])))
        add("duration <=23 ms reject", a, d, on, accept=False)
    for _ in range(n):
        d = pick()
        a, on = _one_tone(rng, 8000, d, rng.uniform(40, 60), gap_ms=10)
        add("10 ms interruption", a, d, on)
    for _ in range(n):
        d = pick()
        a, on = _one_tone(rng, 8000, d, rng.uniform(50, 80))
        tone_power = (dbm0_to_peak(-7) ** 2 + dbm0_to_peak(-5) ** 2) / 2
        noisy = a + _noise(rng, len(a), np.sqrt(tone_power / 10 ** 1.5))
        add("noise SNR 15 dB", _clip16(noisy), d, on)
    for codec in ("ulaw", "alaw"):
        for _ in range(n):
            d = pick()
            low = rng.uniform(-30, -7)
            a, on = _one_tone(rng, 8000, d, rng.uniform(45, 80), low=low, high=low + rng.uniform(-3, 3))
            tone_power = dbm0_to_peak(low) ** 2
            noisy = a + _noise(rng, len(a), np.sqrt(tone_power / 10 ** 2.0))
            add(f"{codec} round trip", g711.roundtrip(_clip16(noisy), codec), d, on)
    for rate in (16000, 48000):
        for _ in range(max(n // 2, 8)):
            d = pick()
            low = rng.uniform(-25, -7)
            a, on = _one_tone(rng, rate, d, rng.uniform(45, 80), low=low, high=low + 2)
            add(f"{rate // 1000} kHz", a, d, on, rate=rate)
    for _ in range(n):
        # Q.24's corners at once: ±1.5% on both tones, twist -8 or +4 dB, white noise at 15 dB SNR
        d = pick()
        sign = rng.choice([-1, 1], 2)
        twist = float(rng.choice([-8.0, 4.0]))
        low = rng.uniform(-25.0, -10.0)
        a, on = _one_tone(rng, 8000, d, rng.uniform(45, 80), low=low, high=low + twist,
                          dev=(0.015 * sign[0], 0.015 * sign[1]))
        tone_power = (dbm0_to_peak(low) ** 2 + dbm0_to_peak(low + twist) ** 2) / 2
        add("corner: ±1.5%+twist+15 dB", _clip16(a + _noise(rng, len(a), np.sqrt(tone_power / 10 ** 1.5))), d, on)
    if speech is not None:
        for _ in range(n):
            # a key pressed while the caller (or the far end) is talking: speech 10-20 dB below
            d = pick()
            a, on = _one_tone(rng, 8000, d, rng.uniform(60, 100))
            start = int(rng.integers(0, len(speech) - len(a)))
            talk = speech[start:start + len(a)].astype(np.float64)
            rms = np.sqrt(np.mean(talk * talk)) or 1.0
            tone_power = (dbm0_to_peak(-7) ** 2 + dbm0_to_peak(-5) ** 2) / 2
            talk *= np.sqrt(tone_power / 10 ** (rng.uniform(1.0, 2.0))) / rms
            add("digit over speech", _clip16(a + talk), d, on)
    for _ in range(max(n // 4, 8)):
        seq = "".join(rng.choice(DIGITS, 10))
        gen = ToneGenerator()
        lead = gen.silence(0.1)
        audio, placed = gen.sequence(seq, 0.05, 0.05)
        trials.append(Trial("dialling 10 digits/s", np.concatenate((lead, audio)), 8000, seq,
                            [p.start for p in placed]))
    return trials


# ---------------------------------------------------------------- talk-off material

def _sox_to_8k(path_in: str, codec: str | None = None) -> np.ndarray:
    out = subprocess.run(["sox", "-D", path_in, "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1",
                          "-r", "8000", "-"], check=True, capture_output=True).stdout
    x = np.frombuffer(out, "<i2").astype(np.int16)
    return g711.roundtrip(x, codec) if codec else x


def resample(x: np.ndarray, rate: int, to: int = 8000) -> np.ndarray:
    """Resample int16 audio with sox (used to give spandsp 8 kHz audio)."""
    if rate == to:
        return x
    out = subprocess.run(["sox", "-D", "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", str(rate),
                          "-", "-t", "raw", "-r", str(to), "-"], input=x.astype("<i2").tobytes(),
                         check=True, capture_output=True).stdout
    return np.frombuffer(out, "<i2").astype(np.int16)


def make_speech(set_name: str, seconds: float) -> np.ndarray:
    cfg = SETS[set_name]
    rng = np.random.default_rng(cfg["seed"] + 7)
    text = " ".join(Path(p).read_text(errors="ignore") for p in cfg["texts"]).split()
    parts: list[np.ndarray] = []
    total = 0
    i = 0
    with tempfile.TemporaryDirectory() as tmp:
        while total < seconds * 8000:
            voice = cfg["voices"][i % len(cfg["voices"])]
            start = int(rng.integers(0, max(1, len(text) - 400)))
            chunk = " ".join(text[start:start + int(rng.integers(80, 200))])
            wav = f"{tmp}/s{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(rng.integers(130, 220))),
                            "-p", str(int(rng.integers(20, 90))), "-w", wav, chunk], check=True,
                           capture_output=True)
            x = _sox_to_8k(wav).astype(np.float64)
            rms = np.sqrt(np.mean(x * x)) or 1.0
            level = rng.uniform(-30, -10)  # speech level, dBm0-ish RMS
            x = x / rms * DBM0_PEAK / np.sqrt(2) * 10 ** (level / 20)
            y = _clip16(x)
            if i % 2:
                y = g711.roundtrip(y, "ulaw")
            parts.append(y)
            total += len(y)
            i += 1
    return np.concatenate(parts)[: int(seconds * 8000)]


def make_music(set_name: str, seconds: float, rate: int = 8000) -> np.ndarray:
    """Synthetic music: chords, bass and melody with harmonic timbres, vibrato, and percussion."""
    rng = np.random.default_rng(SETS[set_name]["seed"] + 13)
    n_total = int(seconds * rate)
    out = np.zeros(n_total)
    pos = 0
    timbres = {
        "piano": ([1, 0.5, 0.33, 0.25, 0.2, 0.15, 0.1, 0.08], 4.0, 0.0),
        "organ": ([1, 0.7, 0.5, 0.4, 0.2, 0.3], 0.0, 0.0),
        "strings": ([1 / k for k in range(1, 12)], 0.5, 0.006),
        "flute": ([1, 0.25, 0.1, 0.05], 0.3, 0.005),
    }
    while pos < n_total:
        piece = int(rng.uniform(8, 20) * rate)
        piece = min(piece, n_total - pos)
        beat = int(rate * 60 / rng.uniform(70, 160))
        key = int(rng.integers(0, 12))
        scale = [0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.6 else [0, 2, 3, 5, 7, 8, 10]
        mel_timbre = str(rng.choice(list(timbres)))
        acc_timbre = str(rng.choice(["piano", "organ", "strings"]))
        buf = np.zeros(piece + rate)
        t = 0
        while t < piece:
            dur = beat * int(rng.choice([1, 2, 4]))
            root = key + scale[int(rng.integers(0, 7))]
            chord = [root + 48, root + 48 + scale[2] - scale[0] + (0 if rng.random() < 0.5 else -1), root + 55]
            for midi in chord:
                _note(buf, t, dur, midi, timbres[acc_timbre], rate, rng, 0.25)
            _note(buf, t, dur, root + 36, timbres["piano"], rate, rng, 0.35)
            mt = t
            while mt < t + dur:
                md = beat // int(rng.choice([1, 2, 4]))
                midi = key + 60 + scale[int(rng.integers(0, 7))] + 12 * int(rng.integers(0, 3))
                _note(buf, mt, md, midi, timbres[mel_timbre], rate, rng, 0.4)
                mt += md
            if rng.random() < 0.7:  # percussion: a short decaying noise burst on the beat
                k = int(0.08 * rate)
                burst = rng.standard_normal(k) * np.exp(-np.arange(k) / (0.015 * rate)) * 0.5
                buf[t:t + k] += burst
            t += dur
        buf = buf[:piece]
        rms = np.sqrt(np.mean(buf * buf)) or 1.0
        level = rng.uniform(-28, -10)
        out[pos:pos + piece] = buf / rms * DBM0_PEAK / np.sqrt(2) * 10 ** (level / 20)
        pos += piece
    return _clip16(out)


def _note(buf: np.ndarray, start: int, length: int, midi: int, timbre: tuple, rate: int,
          rng: np.random.Generator, gain: float) -> None:
    harmonics, decay, vibrato = timbre
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    n = min(length, len(buf) - start)
    if n <= 0:
        return
    t = np.arange(n) / rate
    env = np.minimum(1.0, t / 0.01) * (np.exp(-decay * t) if decay else 1.0)
    env *= np.minimum(1.0, (n - np.arange(n)) / (0.01 * rate))
    phase_mod = vibrato * f0 / 5.0 * np.sin(2 * np.pi * 5.0 * t) if vibrato else 0.0
    sig = np.zeros(n)
    for k, amp in enumerate(harmonics, start=1):
        if k * f0 >= rate / 2:
            break
        sig += amp * np.sin(2 * np.pi * k * f0 * t + k * phase_mod + rng.uniform(0, 2 * np.pi))
    buf[start:start + n] += gain * env * sig


# ---------------------------------------------------------------- running the detectors

def run_roomtone(x: np.ndarray, rate: int, config: DetectorConfig | None) -> list[tuple[str, int]]:
    det = DtmfDetector(rate, config)
    events = det.feed(x) + det.flush()
    return [(e.digit, e.start) for e in events if e.kind == "started"]


def run_spandsp(x: np.ndarray) -> list[tuple[str, int]]:
    sp = SpandspDtmf(chunk=40)
    sp.feed(x)
    sp.close()
    return [(d.digit, d.reported_at) for d in sp.digits]


@dataclass
class Outcome:
    passed: dict[str, list[bool]] = field(default_factory=dict)
    onset_err: list[float] = field(default_factory=list)  # ms
    latencies: list[int] = field(default_factory=list)  # samples, for spandsp's fitted latency


def evaluate(trials: list[Trial], which: str, config: DetectorConfig | None, latency: float) -> Outcome:
    out = Outcome()
    for tr in trials:
        if which == "roomtone":
            got = run_roomtone(tr.audio, tr.rate, config)
            scale = 1.0
        else:
            x = resample(tr.audio, tr.rate) if tr.rate != 8000 else tr.audio
            got = [(d, int(t - latency)) for d, t in run_spandsp(x)]
            scale = tr.rate / 8000
        ok = "".join(d for d, _ in got) == tr.expected
        out.passed.setdefault(tr.category, []).append(ok)
        if ok and tr.accept:
            for (_, est), true in zip(got, tr.onsets, strict=True):
                err_samples = est * scale - true
                out.onset_err.append(abs(err_samples) / tr.rate * 1000)
                out.latencies.append(int(round(est * scale - true + latency * scale)))
    return out


def talk_off(x: np.ndarray, which: str, config: DetectorConfig | None) -> int:
    return len(run_roomtone(x, 8000, config) if which == "roomtone" else run_spandsp(x))


def throughput(material: np.ndarray, channels: int, ticks: int, repeats: int = 3) -> dict[str, float]:
    """CPU samples/s per core: single channel 20 ms frames, and a 1,000-channel bank."""
    frame = 160
    res: dict[str, float] = {}
    single = material[: frame * 1500]  # 30 s
    best = {"ours_single": 0.0, "sp_single": 0.0, "sp_c": 0.0, "ours_bank": 0.0, "ours_bank_numpy": 0.0,
            "sp_loop": 0.0}
    rng = np.random.default_rng(5)
    starts = rng.integers(0, len(material) - frame * ticks, channels)
    bank_in = np.stack([material[s:s + frame * ticks] for s in starts])
    for _ in range(repeats):
        det = DtmfDetector(8000)
        t0 = time.process_time()
        for k in range(0, len(single) - frame + 1, frame):
            det.feed(single[k:k + frame])
        best["ours_single"] = max(best["ours_single"], len(single) / (time.process_time() - t0))
        sp = SpandspDtmf(chunk=frame)
        t0 = time.process_time()
        sp.feed(single)
        best["sp_single"] = max(best["sp_single"], len(single) / (time.process_time() - t0))
        sp.close()
        long = np.tile(single, 4)
        sp = SpandspDtmf()
        t0 = time.process_time()
        sp.feed_raw(long)
        best["sp_c"] = max(best["sp_c"], len(long) / (time.process_time() - t0))
        sp.close()
        ticks_in = [np.ascontiguousarray(bank_in[:, k * frame:(k + 1) * frame]) for k in range(ticks)]
        # the default path (numba kernels when they load), and the numpy-only path
        for key, accel in (("ours_bank", True), ("ours_bank_numpy", False)):
            bank = DtmfDetectorBank(channels, 8000)
            bank._accel = accel and bank._accel
            t0 = time.process_time()
            for tick in ticks_in:
                bank.feed(tick)
            best[key] = max(best[key], channels * frame * ticks / (time.process_time() - t0))
        sps = [SpandspDtmf(chunk=frame) for _ in range(channels)]
        t0 = time.process_time()
        for tick in ticks_in[: max(ticks // 5, 1)]:
            for ch, sp in enumerate(sps):
                sp.feed(tick[ch])
        best["sp_loop"] = max(best["sp_loop"], channels * frame * max(ticks // 5, 1) / (time.process_time() - t0))
        for sp in sps:
            sp.close()
    res.update(best)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=["dev", "eval"], default="eval")
    ap.add_argument("--quick", action="store_true", help="fewer trials and less talk-off material")
    ap.add_argument("--trials", type=int, help="trials per category (default 150, quick 40)")
    ap.add_argument("--speech-minutes", type=float, help="default 60, quick 3")
    ap.add_argument("--music-minutes", type=float, help="default 60, quick 3")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--speed-only", action="store_true",
                    help="throughput only (the mixes use the first 60 s of speech and 30 s of music, "
                         "so --speech-minutes 1 --music-minutes 1 gives the same numbers faster)")
    ap.add_argument("--repeats", type=int, default=3, help="throughput runs per mix (best is reported)")
    ap.add_argument("--config", action="append", default=[], metavar="NAME=VALUE",
                    help="override a DetectorConfig field (for exploring on the dev set)")
    args = ap.parse_args(argv)
    n = args.trials or (40 if args.quick else 150)
    speech_min = args.speech_minutes if args.speech_minutes is not None else (3 if args.quick else 60)
    music_min = args.music_minutes if args.music_minutes is not None else (3 if args.quick else 60)
    overrides = {}
    for item in args.config:
        k, _, v = item.partition("=")
        overrides[k] = type(getattr(DetectorConfig(), k))(v)
    config = DetectorConfig(**overrides) if overrides else None

    t_start = time.time()
    # spandsp's report latency, fitted on the development set's nominal tones only
    dev_nominal = [t for t in make_trials("dev", 40) if t.category == "nominal"]
    fit = evaluate(dev_nominal, "spandsp", None, 0.0)
    sp_latency = float(np.median(fit.latencies)) if fit.latencies else 0.0

    speech = make_speech(args.set, speech_min * 60)
    music = make_music(args.set, music_min * 60)
    trials = make_trials(args.set, n, speech)
    if args.speed_only:
        speed(args, speech, music, trials)
        print(f"(run took {time.time() - t_start:.0f} s)")
        return 0
    ours = evaluate(trials, "roomtone", config, 0.0)
    theirs = evaluate(trials, "spandsp", None, sp_latency)

    hours_speech = len(speech) / 8000 / 3600
    hours_music = len(music) / 8000 / 3600
    to = {w: (talk_off(speech, w, config), talk_off(music, w, config)) for w in ("roomtone", "spandsp")}

    print(f"# DTMF detector benchmark: {args.set} set, {n} trials per category "
          f"(fewer for 16/48 kHz and dialling), speech {speech_min:g} min, music {music_min:g} min")
    print(f"{'category':28s} {'trials':>6s} {'roomtone':>9s} {'spandsp':>9s}")
    for cat in ours.passed:
        a = ours.passed[cat]
        b = theirs.passed[cat]
        print(f"{cat:28s} {len(a):6d} {100 * np.mean(a):8.1f}% {100 * np.mean(b):8.1f}%")
    all_a = [v for vs in ours.passed.values() for v in vs]
    all_b = [v for vs in theirs.passed.values() for v in vs]
    print(f"{'all categories':28s} {len(all_a):6d} {100 * np.mean(all_a):8.1f}% {100 * np.mean(all_b):8.1f}%")
    for label, idx, hours in (("speech", 0, hours_speech), ("music", 1, hours_music)):
        print(f"{'false digits/hour ' + label:28s} {'':6s} {to['roomtone'][idx] / hours:9.1f} "
              f"{to['spandsp'][idx] / hours:9.1f}   ({to['roomtone'][idx]} vs {to['spandsp'][idx]} "
              f"in {hours * 60:.0f} min)")
    for label, q in (("onset error median (ms)", 50), ("onset error p95 (ms)", 95)):
        print(f"{label:28s} {'':6s} {np.percentile(ours.onset_err, q):9.2f} "
              f"{np.percentile(theirs.onset_err, q):9.2f}")
    print(f"(spandsp onset = report time - {sp_latency / 8:.1f} ms, its median latency on dev nominal tones)")
    if not args.no_speed:
        speed(args, speech, music, trials)
    print(f"(run took {time.time() - t_start:.0f} s)")
    return 0


def speed(args: argparse.Namespace, speech: np.ndarray, music: np.ndarray, trials: list[Trial]) -> None:
    """Throughput of both detectors on the two mixes (CPU time per core, best of ``--repeats``)."""
    tones = np.concatenate([t.audio for t in trials if t.rate == 8000])[: 8000 * 30]
    wanted = DtmfDetectorBank(1)._accel
    earlier = detector_module._kernel_tried
    t0 = time.perf_counter()
    loaded = load_kernels()  # as a server does at start-up
    if not wanted:
        state = "off (ROOMTONE_DTMF_NUMBA=0)"
    elif not loaded:
        state = "not available (numpy path)"
    else:
        state = "on" + ("" if earlier else
                        f", loaded in {time.perf_counter() - t0:.2f} s (from numba's cache, or compiled)")
    print(f"compiled kernels (numba): {state}")
    mixes = {
        # what most calls carry: speech and music, no DTMF
        "speech+music": np.concatenate((speech[: 8000 * 60], music[: 8000 * 30])),
        # a DTMF-heavy mix: 60 s speech, 30 s music, 30 s of trials (about 12% of time tone)
        "busy mix": np.concatenate((speech[: 8000 * 60], music[: 8000 * 30], tones)),
    }
    for name, material in mixes.items():
        sp = throughput(material, 1000, 50, args.repeats)
        print(f"{'samples/s/core ' + name:28s}")
        print(f"{'  1 channel, 20 ms frames':28s} {'':6s} {sp['ours_single'] / 1e6:8.2f}M "
              f"{sp['sp_single'] / 1e6:8.2f}M  ratio {sp['ours_single'] / sp['sp_single']:.2f} "
              f"(spandsp via ctypes per frame)")
        print(f"{'  1000 channels, 20 ms ticks':28s} {'':6s} {sp['ours_bank'] / 1e6:8.2f}M "
              f"{sp['sp_c'] / 1e6:8.2f}M  ratio {sp['ours_bank'] / sp['sp_c']:.2f} "
              f"(spandsp: C over one long buffer; via a Python loop over channels: "
              f"{sp['sp_loop'] / 1e6:.2f}M)")
        print(f"{'    numpy path only':28s} {'':6s} {sp['ours_bank_numpy'] / 1e6:8.2f}M "
              f"{sp['sp_c'] / 1e6:8.2f}M  ratio {sp['ours_bank_numpy'] / sp['sp_c']:.2f} "
              f"(the bank without numba, ROOMTONE_DTMF_NUMBA=0)")


if __name__ == "__main__":
    sys.exit(main())
