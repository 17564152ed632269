"""Test-side media helpers for the phone harnesses: DTMF tone WAVs, a Goertzel check, RTP pcaps.

These exist so the harness tests can prove in-band and pcap paths work without roomtone's own
media code (issue 6 owns the real generator, detector and RTP stack). They are deliberately
simple: clean synthetic tones and a plain Goertzel check per 20 ms block, fine for verifying what
a phone played or recorded, not a production detector.
"""

from __future__ import annotations

import struct
import wave

import dpkt
import numpy as np

_LOW = (697, 770, 852, 941)
_HIGH = (1209, 1336, 1477, 1633)
_KEYS = ("123A", "456B", "789C", "*0#D")
FREQS: dict[str, tuple[int, int]] = {
    _KEYS[r][c]: (_LOW[r], _HIGH[c]) for r in range(4) for c in range(4)
}
EVENT_CODES = {**{str(i): i for i in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}


def dtmf_samples(digits: str, rate: int = 8000, on_ms: int = 120, off_ms: int = 120,
                 amplitude: float = 0.3, lead_ms: int = 200) -> np.ndarray:
    """Float samples in [-1, 1]: ``lead_ms`` silence, then each digit's tone pair and a gap."""
    parts = [np.zeros(rate * lead_ms // 1000)]
    for d in digits:
        lo, hi = FREQS[d.upper()]
        t = np.arange(rate * on_ms // 1000) / rate
        parts.append(amplitude * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)) / 2)
        parts.append(np.zeros(rate * off_ms // 1000))
    parts.append(np.zeros(rate * lead_ms // 1000))
    return np.concatenate(parts)


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
    basis = np.exp(-2j * np.pi * np.outer(t, np.array(_LOW + _HIGH)))
    # energy each tone carries in each block (2|X|^2/n equals the sinusoid's share of sum x^2)
    powers = 2 * np.abs(blocks @ basis) ** 2 / n
    energy = np.einsum("ij,ij->i", blocks, blocks) + 1e-12
    out: list[str] = []
    current, run = "", 0
    for i in range(count):
        lo = int(np.argmax(powers[i, :4]))
        hi = int(np.argmax(powers[i, 4:]))
        share = (powers[i, lo] + powers[i, 4 + hi]) / energy[i]
        digit = _KEYS[lo][hi] if share > 0.6 and energy[i] / n > 1e-5 else ""
        if digit == current:
            run += 1
        else:
            current, run = digit, 1
        if digit and run == min_blocks:
            out.append(digit)
    return "".join(out)


def _ulaw(samples: np.ndarray) -> bytes:
    """G.711 µ-law encode (ITU-T G.711 segment algorithm) for test pcaps."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    mag = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def _packet(payload: bytes, t: float, sport: int = 40000, dport: int = 40002) -> tuple[float, bytes]:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=b"\x7f\x00\x00\x01", dst=b"\x7f\x00\x00\x01", p=dpkt.ip.IP_PROTO_UDP, data=udp)
    ip.len = 20 + udp.ulen
    eth = dpkt.ethernet.Ethernet(src=b"\x00" * 6, dst=b"\x00" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
    return t, bytes(eth)


def _rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def write_pcap(path: str, packets: list[tuple[float, bytes]]) -> None:
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f)
        for t, frame in packets:
            writer.writepkt(frame, ts=t)


def rfc4733_pcap(path: str, digits: str, pt: int = 101, audio_pt: int = 0, on_ms: int = 100,
                 gap_ms: int = 200, ssrc: int = 0x1234ABCD) -> float:
    """A pcap of a PCMU stream (silence) carrying RFC 4733 events; returns its length in seconds.

    Each event: marker on the first packet, duration growing every 20 ms, three end packets
    (RFC 4733 §2.5.1.4), all sharing the event's start timestamp; audio pauses during events.
    """
    packets: list[tuple[float, bytes]] = []
    seq, ts, t = 1, 0, 1.0
    silence = _ulaw(np.zeros(160))

    def audio(ms: int) -> None:
        nonlocal seq, ts, t
        for _ in range(ms // 20):
            packets.append(_packet(_rtp(audio_pt, seq, ts, ssrc, silence), t))
            seq, ts, t = seq + 1, ts + 160, t + 0.02

    audio(gap_ms)
    for i, d in enumerate(digits):
        code = EVENT_CODES[d.upper()]
        start_ts = ts
        steps = on_ms // 20
        for k in range(1, steps + 1):
            body = struct.pack("!BBH", code, 10, 160 * k)
            packets.append(_packet(_rtp(pt, seq, start_ts, ssrc, body, marker=(k == 1)), t))
            seq, t = seq + 1, t + 0.02
        for _ in range(3):
            body = struct.pack("!BBH", code, 0x80 | 10, 160 * steps)
            packets.append(_packet(_rtp(pt, seq, start_ts, ssrc, body), t))
            seq = seq + 1
        ts = start_ts + 160 * steps
        audio(gap_ms if i < len(digits) - 1 else 200)
    write_pcap(path, packets)
    return packets[-1][0] - packets[0][0]


def inband_pcap(path: str, digits: str, audio_pt: int = 0, ssrc: int = 0x5678) -> float:
    """A pcap of PCMU audio with DTMF tones in it; returns its length in seconds."""
    samples = dtmf_samples(digits)
    samples = np.concatenate([samples, np.zeros((-len(samples)) % 160)])
    data = _ulaw(samples)
    packets = [_packet(_rtp(audio_pt, i + 1, i * 160, ssrc, data[i * 160:(i + 1) * 160]), 1.0 + i * 0.02)
               for i in range(len(data) // 160)]
    write_pcap(path, packets)
    return packets[-1][0] - packets[0][0]
