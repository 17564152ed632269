"""G.711 tables against the reference implementation in the stdlib ``audioop`` (Python 3.11), and
WAV files in all three encodings against sox, an independent reader."""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from roomtone.media import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def test_ulaw_encode_matches_reference_for_every_sample() -> None:
    assert g711.ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM.astype("<i2").tobytes(), 2)


def test_alaw_encode_matches_reference_for_every_sample() -> None:
    assert g711.alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM.astype("<i2").tobytes(), 2)


def test_decoders_match_reference_for_every_code() -> None:
    assert g711.ulaw_decode(ALL_CODES).astype("<i2").tobytes() == audioop.ulaw2lin(ALL_CODES, 2)
    assert g711.alaw_decode(ALL_CODES).astype("<i2").tobytes() == audioop.alaw2lin(ALL_CODES, 2)


@pytest.mark.parametrize("codec", ["ulaw", "alaw", "PCMU", "pcma"])
def test_bytes_and_arrays_agree_and_decode_is_idempotent(codec: str) -> None:
    rng = np.random.default_rng(1)
    pcm = rng.integers(-32768, 32768, 999).astype(np.int16)
    as_bytes = g711.encode(pcm.astype("<i2").tobytes(), codec)
    assert as_bytes == g711.encode(pcm, codec)
    once = g711.decode(as_bytes, codec)
    assert once.dtype == np.int16 and once.shape == pcm.shape
    # decoded values are exactly representable: a second round trip changes nothing
    assert np.array_equal(g711.roundtrip(once, codec), once)
    # and quantisation error is bounded by the largest G.711 step (1024 for µ-law, 1024 for A-law)
    assert np.max(np.abs(once.astype(int) - pcm.astype(int))) <= 1024


def test_silence_codes() -> None:
    assert g711.ulaw_encode(np.zeros(1, np.int16)) == bytes([g711.ULAW_SILENCE])
    assert g711.alaw_encode(np.zeros(1, np.int16)) == bytes([g711.ALAW_SILENCE])


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(g711.G711Error, match="even number"):
        g711.ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(g711.G711Error, match="int16"):
        g711.alaw_encode(np.zeros(3, np.float32))
    with pytest.raises(g711.G711Error, match="unknown G.711 codec"):
        g711.encode(np.zeros(3, np.int16), "g729")
    with pytest.raises(g711.G711Error, match="uint8"):
        g711.ulaw_decode(np.zeros(3, np.int16))


@pytest.mark.parametrize("encoding", ["pcm16", "ulaw", "alaw"])
def test_wav_round_trip(tmp_path, encoding: str) -> None:
    rng = np.random.default_rng(2)
    pcm = rng.integers(-20000, 20000, 8001).astype(np.int16)
    path = tmp_path / f"x-{encoding}.wav"
    g711.write_wav(path, pcm, 8000, encoding)
    audio = g711.read_wav(path)
    assert audio.sample_rate == 8000 and audio.encoding == encoding
    expected = pcm if encoding == "pcm16" else g711.roundtrip(pcm, encoding)
    assert np.array_equal(audio.samples, expected)


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed (scripts/install-test-deps.sh installs it)")
@pytest.mark.parametrize("encoding,sox_enc", [("ulaw", "u-law"), ("alaw", "a-law")])
def test_sox_reads_our_g711_wav_and_we_read_sox(tmp_path, encoding: str, sox_enc: str) -> None:
    t = np.arange(4000) / 8000
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    ours = tmp_path / "ours.wav"
    g711.write_wav(ours, pcm, 8000, encoding)
    # sox decodes our file to raw PCM: must equal our own decode
    raw = subprocess.run(["sox", str(ours), "-t", "raw", "-e", "signed-integer", "-b", "16", "-"],
                         check=True, capture_output=True).stdout
    assert np.array_equal(np.frombuffer(raw, "<i2"), g711.roundtrip(pcm, encoding))
    # sox encodes: we must read its header and codes
    src = tmp_path / "src.wav"
    g711.write_wav(src, pcm, 8000)
    theirs = tmp_path / "theirs.wav"
    subprocess.run(["sox", "-D", str(src), "-e", sox_enc, str(theirs)], check=True)
    audio = g711.read_wav(theirs)
    assert audio.encoding == encoding
    # sox rounds to the nearest level where G.711's reference truncates, so compare decodes only
    raw = subprocess.run(["sox", str(theirs), "-t", "raw", "-e", "signed-integer", "-b", "16", "-"],
                         check=True, capture_output=True).stdout
    assert np.array_equal(audio.samples, np.frombuffer(raw, "<i2"))
    assert np.max(np.abs(audio.samples.astype(int) - g711.roundtrip(pcm, encoding))) <= 256  # one step at |x| < 8192


def test_read_wav_rejects_garbage(tmp_path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"hello world, not a wav")
    with pytest.raises(g711.WavError, match="not a RIFF"):
        g711.read_wav(bad)


def test_write_wav_to_a_bad_path_raises_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI turns the OSError into one line; nothing may print a stray traceback after it.
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    for encoding in ("pcm16", "ulaw"):
        with pytest.raises(OSError):
            g711.write_wav(tmp_path / "missing" / "x.wav", np.zeros(80, dtype=np.int16), 8000, encoding)
    gc.collect()
    assert unraisable == []
