"""Audio codecs a call can carry, behind one small interface.

Each codec knows its SDP name, static payload type (if any), RTP clock rate and audio sample rate,
and makes per-leg encoder/decoder objects (G.722 is stateful; G.711 is a table lookup). 20 ms frames
are the default everywhere (``ptime`` 20): 160 samples at 8 kHz, 320 at 16 kHz.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from roomtone.media import g711


class Encoder(Protocol):
    def encode(self, pcm: np.ndarray) -> bytes: ...


class Decoder(Protocol):
    def decode(self, payload: bytes) -> np.ndarray: ...


class _Ulaw:
    def encode(self, pcm: np.ndarray) -> bytes:
        return g711.ulaw_encode(pcm)

    def decode(self, payload: bytes) -> np.ndarray:
        return g711.ulaw_decode(payload)


class _Alaw:
    def encode(self, pcm: np.ndarray) -> bytes:
        return g711.alaw_encode(pcm)

    def decode(self, payload: bytes) -> np.ndarray:
        return g711.alaw_decode(payload)


def _g722_encoder() -> Encoder:
    from roomtone.media.g722 import G722Encoder

    return G722Encoder()


def _g722_decoder() -> Decoder:
    from roomtone.media.g722 import G722Decoder

    return G722Decoder()


@dataclass(frozen=True, slots=True)
class AudioCodec:
    name: str  # SDP encoding name, upper case
    static_payload_type: int | None
    clock_rate: int  # RTP timestamp units per second
    sample_rate: int  # audio samples per second
    new_encoder: Callable[[], Encoder]
    new_decoder: Callable[[], Decoder]

    @property
    def samples_per_tick(self) -> int:
        """Audio samples per RTP timestamp unit (2 for G.722, else 1)."""
        return self.sample_rate // self.clock_rate

    def frame_samples(self, ptime_ms: int = 20) -> int:
        return self.sample_rate * ptime_ms // 1000

    def frame_ticks(self, ptime_ms: int = 20) -> int:
        return self.clock_rate * ptime_ms // 1000

    def payload_samples(self, payload_len: int) -> int:
        """Samples carried by a payload of this many bytes (1 byte = 1 sample, G.722 = 2)."""
        return payload_len * (2 if self.name == "G722" else 1)


PCMU = AudioCodec("PCMU", 0, 8000, 8000, _Ulaw, _Ulaw)
PCMA = AudioCodec("PCMA", 8, 8000, 8000, _Alaw, _Alaw)
G722 = AudioCodec("G722", 9, 8000, 16000, _g722_encoder, _g722_decoder)

CODECS: dict[str, AudioCodec] = {c.name: c for c in (PCMU, PCMA, G722)}


def codec_by_name(name: str) -> AudioCodec:
    """Codec for an SDP encoding name (case-insensitive); raises ``KeyError`` naming it."""
    try:
        return CODECS[name.upper()]
    except KeyError:
        raise KeyError(f"unsupported audio codec {name!r}; roomtone carries PCMU, PCMA and G722") from None
