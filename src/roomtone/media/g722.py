"""G.722 (64 kbit/s mode) through FFmpeg's codec in PyAV.

Why PyAV: it is already installed (aiortc depends on it), FFmpeg's ``g722`` encoder and decoder are
maintained and widely deployed, and they run in C. The PyPI ``g722`` package (sippy's libg722
bindings) would also fit but adds a dependency for nothing PyAV lacks. Writing ADPCM sub-band code
in Python would be slower and a new source of bugs.

RTP facts (RFC 3551 §4.5.2): G.722 samples at 16 kHz but its RTP clock is 8000 Hz (a historical
error kept for compatibility), so a 20 ms frame is 320 samples, 160 bytes and 160 timestamp units.

Encoder and decoder are stateful (ADPCM), so each call leg keeps its own pair.
"""

from __future__ import annotations

import fractions
import logging

import av
import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
RTP_CLOCK_RATE = 8000
#: samples per RTP timestamp unit
SAMPLES_PER_TICK = SAMPLE_RATE // RTP_CLOCK_RATE


class G722Encoder:
    """int16 PCM at 16 kHz in, G.722 bytes out (one byte per two samples)."""

    def __init__(self) -> None:
        self._ctx = av.CodecContext.create("g722", "w")
        self._ctx.format = "s16"  # type: ignore[attr-defined]
        self._ctx.layout = "mono"  # type: ignore[attr-defined]
        self._ctx.sample_rate = SAMPLE_RATE  # type: ignore[attr-defined]
        self._ctx.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._pts = 0

    def encode(self, pcm: np.ndarray) -> bytes:
        """Encode an even number of int16 samples; returns ``len(pcm) // 2`` bytes."""
        samples = np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1)
        if samples.shape[1] % 2:
            raise ValueError("G.722 encodes an even number of samples")
        if samples.shape[1] == 0:
            return b""
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        self._pts += samples.shape[1]
        return b"".join(bytes(p) for p in self._ctx.encode(frame))  # type: ignore[attr-defined]


class G722Decoder:
    """G.722 bytes in, int16 PCM at 16 kHz out (two samples per byte)."""

    def __init__(self) -> None:
        self._ctx = av.CodecContext.create("g722", "r")
        self._ctx.format = "s16"  # type: ignore[attr-defined]
        self._ctx.layout = "mono"  # type: ignore[attr-defined]
        self._ctx.sample_rate = SAMPLE_RATE  # type: ignore[attr-defined]

    def decode(self, payload: bytes) -> np.ndarray:
        if not payload:
            return np.zeros(0, dtype=np.int16)
        try:
            frames = self._ctx.decode(av.Packet(payload))  # type: ignore[attr-defined]
        except av.error.FFmpegError as exc:  # G.722 accepts any bytes, but be safe
            log.warning("G.722 decode failed (%s); concealing %d bytes as silence", exc, len(payload))
            return np.zeros(len(payload) * 2, dtype=np.int16)
        parts = [f.to_ndarray().reshape(-1) for f in frames]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(parts).astype(np.int16, copy=False)
