"""Test-side media helpers for the phone harnesses: tone WAVs, WAV reading, a Goertzel check.

Tones come from roomtone's generator (:class:`roomtone.dtmf.tones.ToneGenerator`) and pcaps for
SIPp from :mod:`tests.pcaps`. :func:`detect_dtmf` is deliberately NOT roomtone's detector: it is a plain Goertzel check per
20 ms block, an independent check of what a real phone (pjsua2, baresip) played or recorded. Its
frequencies and keypad come from :mod:`roomtone.dtmf.tones` (``FREQUENCIES``, ``KEYPAD``) rather
than a second private table: that table is pinned to ITU-T Q.23 by literal values in
tests/dtmf/test_tones.py, and what the harness tests measure with it are the phones' generators
(and, for a WAV baresip plays, whether the tones survive the phones' media path), not whether
roomtone's generator uses the right frequencies.

:func:`read_wav` stays separate from :func:`roomtone.media.g711.read_wav` because it must read
recordings still being written (PJSIP and baresip leave the RIFF/data sizes at 0 until the call
ends); :func:`write_wav` writes the multichannel files baresip's 48 kHz stereo source wants.
"""

from __future__ import annotations

import struct
import wave

import numpy as np

from roomtone.dtmf.digits import digit_for
from roomtone.dtmf.tones import FREQUENCIES, KEYPAD, ToneGenerator


def tones_wav(path: str, digits: str, rate: int = 8000, channels: int = 1, *, tone_ms: int = 120,
              gap_ms: int = 150, lead_ms: int = 300, tail_ms: int = 500) -> None:
    """A 16-bit WAV: ``lead_ms`` silence, each digit's tone then ``gap_ms``, then ``tail_ms``."""
    gen = ToneGenerator(rate)
    audio, _ = gen.sequence(digits, tone_ms / 1000, gap_ms / 1000)
    audio = np.concatenate((gen.silence(lead_ms / 1000), audio, gen.silence(tail_ms / 1000)))
    write_wav(path, audio.astype(np.float64) / 32768, rate=rate, channels=channels)


def write_wav(path: str, samples: np.ndarray, rate: int = 8000, channels: int = 1) -> None:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, axis=1).reshape(-1)
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """Mono float samples and the rate (first channel), tolerating a header whose sizes were
    never finalised (a recorder still open, as PJSIP's and baresip's are until the call ends)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos, rate, channels, width, data = 12, 0, 1, 2, b""
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        body = raw[pos + 8:pos + 8 + size] if size else raw[pos + 8:]
        if cid == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            width = bits // 8
        elif cid == b"data":
            data = body if size and pos + 8 + size <= len(raw) else raw[pos + 8:]
            break
        pos += 8 + size + (size & 1)
    if width != 2 or not rate:
        raise ValueError(f"{path}: expected 16-bit PCM")
    usable = len(data) - len(data) % (2 * channels)
    samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float64) / 32768.0
    return samples[::channels], rate


def detect_dtmf(samples: np.ndarray, rate: int, block_ms: int = 20, min_blocks: int = 2) -> str:
    """Digits heard, in order: a digit counts once per run of >= ``min_blocks`` matching blocks."""
    n = rate * block_ms // 1000
    count = len(samples) // n
    if count == 0:
        return ""
    blocks = samples[:count * n].reshape(count, n)
    t = np.arange(n) / rate
    basis = np.exp(-2j * np.pi * np.outer(t, np.array(FREQUENCIES)))
    # energy each tone carries in each block (2|X|^2/n equals the sinusoid's share of sum x^2)
    powers = 2 * np.abs(blocks @ basis) ** 2 / n
    energy = np.einsum("ij,ij->i", blocks, blocks) + 1e-12
    out: list[str] = []
    current, run = "", 0
    for i in range(count):
        lo = int(np.argmax(powers[i, :4]))
        hi = int(np.argmax(powers[i, 4:]))
        share = (powers[i, lo] + powers[i, 4 + hi]) / energy[i]
        digit = digit_for(KEYPAD[lo][hi]) if share > 0.6 and energy[i] / n > 1e-5 else ""
        if digit == current:
            run += 1
        else:
            current, run = digit, 1
        if digit and run == min_blocks:
            out.append(digit)
    return "".join(out)
