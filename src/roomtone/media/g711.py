"""G.711 µ-law and A-law: lookup-table codecs on numpy arrays, and WAV files that carry them.

Why our own: the stdlib ``audioop`` module is deprecated and removed in Python 3.13, and the
codec is a pure table lookup once the tables exist. The tables are built at import, vectorised,
from the segment rules of ITU-T G.711 (11/1988), §2 (A-law, Tables 1a/1b) and §3 (µ-law,
Tables 2a/2b), following the widely used reference formulation of Sun Microsystems' public-domain
``g711.c`` (16-bit linear input scaled to 14 bits for µ-law and 13 bits for A-law). The tests check
every one of the 65,536 inputs against ``audioop`` (same reference), so the bytes we put on the
wire are the bytes every other G.711 implementation expects.

Public API (the RTP layer and the DTMF detector share it):

* ``ulaw_encode(pcm) -> bytes`` / ``alaw_encode(pcm) -> bytes``: ``pcm`` is an int16 numpy array
  (any shape, flattened) or little-endian 16-bit PCM ``bytes``.
* ``ulaw_decode(data) -> np.ndarray[int16]`` / ``alaw_decode(data)``: ``data`` is ``bytes``,
  ``bytearray``, ``memoryview`` or a uint8 numpy array.
* ``encode(pcm, codec)`` / ``decode(data, codec)`` with ``codec`` in ``{"ulaw", "alaw"}`` (aliases
  ``"pcmu"``/``"pcma"``), and ``roundtrip(pcm, codec)`` for tests of "audio over a G.711 call".
* ``read_wav(path) -> WavAudio`` and ``write_wav(path, samples, rate, encoding)``: WAV files in
  16-bit linear PCM (format tag 1, via the stdlib ``wave`` module), A-law (tag 6) or µ-law (tag 7).
  The stdlib ``wave`` module only understands tag 1, so tags 6/7 are parsed here (RIFF layout as
  in Microsoft's "Multimedia Programming Interface and Data Specifications 1.0", WAVE_FORMAT_ALAW /
  WAVE_FORMAT_MULAW, with the ``fact`` chunk that non-PCM WAV files carry).
"""

from __future__ import annotations

import logging
import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Codec = Literal["ulaw", "alaw"]
Encoding = Literal["pcm16", "ulaw", "alaw"]

_CODEC_ALIASES: dict[str, Codec] = {
    "ulaw": "ulaw", "mulaw": "ulaw", "pcmu": "ulaw", "u-law": "ulaw", "µ-law": "ulaw",
    "alaw": "alaw", "pcma": "alaw", "a-law": "alaw",
}


class G711Error(ValueError):
    """Input that cannot be encoded or decoded (wrong type, odd byte count, unknown codec)."""


def _segment(values: npt.NDArray[np.int64], ends: list[int]) -> npt.NDArray[np.int64]:
    """Index of the first segment end >= value (8 when beyond the last), as in G.711's tables."""
    return np.searchsorted(np.asarray(ends, dtype=np.int64), values, side="left").astype(np.int64)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    x = np.arange(-32768, 32768, dtype=np.int64)
    pcm = x >> 2  # 14-bit magnitude domain
    negative = pcm < 0
    mask = np.where(negative, 0x7F, 0xFF)
    pcm = np.where(negative, -pcm, pcm)
    pcm = np.minimum(pcm, 8159) + 0x21  # clip, then add the bias (0x84 >> 2)
    seg = _segment(pcm, [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    code = (np.minimum(seg, 7) << 4) | ((pcm >> (np.minimum(seg, 7) + 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int64) & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t = t << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    x = np.arange(-32768, 32768, dtype=np.int64)
    pcm = x >> 3  # 13-bit domain
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    pcm = np.where(negative, -pcm - 1, pcm)
    seg = _segment(pcm, [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    segc = np.minimum(seg, 7)
    mant = np.where(segc < 2, (pcm >> 1) & 0xF, (pcm >> np.maximum(segc, 1)) & 0xF)
    code = (segc << 4) | mant
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int64) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


#: int16 sample + 32768 -> code byte.
ULAW_ENCODE_TABLE: npt.NDArray[np.uint8] = _build_ulaw_encode()
ALAW_ENCODE_TABLE: npt.NDArray[np.uint8] = _build_alaw_encode()
#: code byte -> int16 sample.
ULAW_DECODE_TABLE: npt.NDArray[np.int16] = _build_ulaw_decode()
ALAW_DECODE_TABLE: npt.NDArray[np.int16] = _build_alaw_decode()
for _t in (ULAW_ENCODE_TABLE, ALAW_ENCODE_TABLE, ULAW_DECODE_TABLE, ALAW_DECODE_TABLE):
    _t.setflags(write=False)

#: the µ-law and A-law codes for digital silence (what an idle G.711 channel carries).
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5


def _pcm_array(pcm: npt.ArrayLike | bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        raw = bytes(pcm)
        if len(raw) % 2:
            raise G711Error(f"16-bit PCM must have an even number of bytes, got {len(raw)}")
        return np.frombuffer(raw, dtype="<i2").astype(np.int16, copy=False)
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        if arr.dtype.kind not in "iu":
            raise G711Error(f"PCM samples must be int16, got dtype {arr.dtype}")
        if arr.size and (arr.min() < -32768 or arr.max() > 32767):
            raise G711Error("PCM samples out of the int16 range")
        arr = arr.astype(np.int16)
    return arr.reshape(-1)


def _code_array(data: npt.ArrayLike | bytes | bytearray | memoryview) -> npt.NDArray[np.uint8]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(data), dtype=np.uint8)
    arr = np.asarray(data)
    if arr.dtype != np.uint8:
        raise G711Error(f"G.711 codes must be bytes or a uint8 array, got dtype {arr.dtype}")
    return arr.reshape(-1)


def ulaw_encode_array(pcm: npt.ArrayLike | bytes) -> npt.NDArray[np.uint8]:
    """µ-law codes as a uint8 array (same shape as a numpy input)."""
    shape = np.shape(pcm) if not isinstance(pcm, (bytes, bytearray, memoryview)) else (-1,)
    return ULAW_ENCODE_TABLE[_pcm_array(pcm).astype(np.int32) + 32768].reshape(shape)


def alaw_encode_array(pcm: npt.ArrayLike | bytes) -> npt.NDArray[np.uint8]:
    """A-law codes as a uint8 array (same shape as a numpy input)."""
    shape = np.shape(pcm) if not isinstance(pcm, (bytes, bytearray, memoryview)) else (-1,)
    return ALAW_ENCODE_TABLE[_pcm_array(pcm).astype(np.int32) + 32768].reshape(shape)


def ulaw_encode(pcm: npt.ArrayLike | bytes) -> bytes:
    """Encode int16 samples (array or little-endian bytes) to µ-law bytes."""
    return ULAW_ENCODE_TABLE[_pcm_array(pcm).astype(np.int32) + 32768].tobytes()


def alaw_encode(pcm: npt.ArrayLike | bytes) -> bytes:
    """Encode int16 samples (array or little-endian bytes) to A-law bytes."""
    return ALAW_ENCODE_TABLE[_pcm_array(pcm).astype(np.int32) + 32768].tobytes()


def ulaw_decode(data: npt.ArrayLike | bytes) -> npt.NDArray[np.int16]:
    """Decode µ-law bytes (or a uint8 array) to int16 samples."""
    return ULAW_DECODE_TABLE[_code_array(data)]


def alaw_decode(data: npt.ArrayLike | bytes) -> npt.NDArray[np.int16]:
    """Decode A-law bytes (or a uint8 array) to int16 samples."""
    return ALAW_DECODE_TABLE[_code_array(data)]


def codec_name(codec: str) -> Codec:
    """Normalise a codec name (``"PCMU"``, ``"mulaw"``, ``"alaw"``...) or raise :class:`G711Error`."""
    try:
        return _CODEC_ALIASES[codec.lower()]
    except (KeyError, AttributeError):
        raise G711Error(f"unknown G.711 codec {codec!r}: expected ulaw (PCMU) or alaw (PCMA)") from None


def encode(pcm: npt.ArrayLike | bytes, codec: str) -> bytes:
    return ulaw_encode(pcm) if codec_name(codec) == "ulaw" else alaw_encode(pcm)


def decode(data: npt.ArrayLike | bytes, codec: str) -> npt.NDArray[np.int16]:
    return ulaw_decode(data) if codec_name(codec) == "ulaw" else alaw_decode(data)


def roundtrip(pcm: npt.ArrayLike, codec: str) -> npt.NDArray[np.int16]:
    """What ``pcm`` sounds like after one G.711 encode/decode (as at the far end of a call)."""
    arr = np.asarray(pcm)
    return decode(encode(arr, codec), codec).reshape(arr.shape)


# ---------------------------------------------------------------- WAV files

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_ALAW = 6
_WAVE_FORMAT_MULAW = 7
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class WavError(ValueError):
    """A WAV file this module cannot read: the message says what is wrong with it."""


@dataclass(frozen=True)
class WavAudio:
    """Decoded WAV contents: mono int16 samples (first channel of multichannel files)."""

    samples: npt.NDArray[np.int16]
    sample_rate: int
    encoding: Encoding
    channels: int = 1


def read_wav(path: str | Path) -> WavAudio:
    """Read a 16-bit PCM, µ-law or A-law WAV file. Multichannel files yield their first channel.

    Raises :class:`WavError` naming the problem (not RIFF/WAVE, unsupported format tag or sample
    width, truncated chunks).
    """
    raw = Path(path).read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise WavError(f"{path}: not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    data: bytes | None = None
    while pos + 8 <= len(raw):
        cid = raw[pos:pos + 4]
        (size,) = struct.unpack_from("<I", raw, pos + 4)
        body = raw[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise WavError(f"{path}: fmt chunk too short ({len(body)} bytes)")
            tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                (tag,) = struct.unpack_from("<H", body, 24)  # first two bytes of the SubFormat GUID
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if len(body) < size:
                log.warning("%s: data chunk truncated (%d of %d bytes)", path, len(body), size)
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None:
        raise WavError(f"{path}: no fmt chunk")
    if data is None:
        raise WavError(f"{path}: no data chunk")
    tag, channels, rate, bits = fmt
    if channels < 1 or rate <= 0:
        raise WavError(f"{path}: bad fmt chunk ({channels} channels, {rate} Hz)")
    if tag == _WAVE_FORMAT_PCM:
        if bits != 16:
            raise WavError(f"{path}: {bits}-bit PCM is not supported (16-bit only)")
        usable = len(data) - len(data) % (2 * channels)
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
        encoding: Encoding = "pcm16"
    elif tag in (_WAVE_FORMAT_MULAW, _WAVE_FORMAT_ALAW):
        if bits != 8:
            raise WavError(f"{path}: G.711 WAV must have 8 bits per sample, not {bits}")
        usable = len(data) - len(data) % channels
        codes = np.frombuffer(data[:usable], dtype=np.uint8)
        encoding = "ulaw" if tag == _WAVE_FORMAT_MULAW else "alaw"
        samples = ulaw_decode(codes) if encoding == "ulaw" else alaw_decode(codes)
    else:
        raise WavError(f"{path}: WAV format tag {tag} is not supported (PCM 1, A-law 6, µ-law 7)")
    if channels > 1:
        samples = np.ascontiguousarray(samples.reshape(-1, channels)[:, 0])
    return WavAudio(samples=samples, sample_rate=rate, encoding=encoding, channels=channels)


def write_wav(path: str | Path, samples: npt.ArrayLike, sample_rate: int, encoding: str = "pcm16") -> None:
    """Write mono int16 ``samples`` as 16-bit PCM (``"pcm16"``), µ-law or A-law WAV."""
    pcm = _pcm_array(samples)
    if encoding == "pcm16":
        # open the file first: wave.open(name) on a bad path leaves a half-built Wave_write whose
        # __del__ prints "Exception ignored ... AttributeError" after our clear error (CPython 3.11)
        with Path(path).open("wb") as fh, wave.open(fh, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(pcm.astype("<i2").tobytes())
        return
    codec = codec_name(encoding)
    payload = ulaw_encode(pcm) if codec == "ulaw" else alaw_encode(pcm)
    tag = _WAVE_FORMAT_MULAW if codec == "ulaw" else _WAVE_FORMAT_ALAW
    # Non-PCM fmt chunks carry cbSize (0) and the file a fact chunk with the sample count.
    fmt = struct.pack("<HHIIHHH", tag, 1, int(sample_rate), int(sample_rate), 1, 8, 0)
    fact = struct.pack("<I", len(payload))
    pad = b"\x00" if len(payload) & 1 else b""
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
            + b"data" + struct.pack("<I", len(payload)) + payload + pad)
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
