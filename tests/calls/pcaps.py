"""RTP captures made with roomtone's own generator, RFC 4733 sender and RTP codec, for SIPp to play.

SIPp's ``play_pcap_audio`` replays the UDP payloads of a libpcap file toward the media address the
callee answered with, keeping the RTP headers as written here.
"""

from __future__ import annotations

import dpkt
import numpy as np

from roomtone.dtmf import rfc4733
from roomtone.dtmf.tones import ToneGenerator
from roomtone.media.g711 import ulaw_encode
from roomtone.media.rtp import RtpPacket

SILENCE = ulaw_encode(np.zeros(160, dtype=np.int16))


def _frame(payload: bytes, sport: int = 40000, dport: int = 40002) -> bytes:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=b"\x7f\x00\x00\x01", dst=b"\x7f\x00\x00\x01", p=dpkt.ip.IP_PROTO_UDP, data=udp)
    ip.len = 20 + udp.ulen
    return bytes(dpkt.ethernet.Ethernet(src=b"\x00" * 6, dst=b"\x00" * 6, type=dpkt.ethernet.ETH_TYPE_IP,
                                        data=ip))


def _write(path: str, packets: list[tuple[float, bytes]]) -> float:
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f)
        for t, rtp_bytes in packets:
            writer.writepkt(_frame(rtp_bytes), ts=t)
    return packets[-1][0] - packets[0][0]


def rfc4733_pcap(path: str, digits: str, *, event_pt: int = 101, tone_ms: int = 100, gap_ms: int = 200,
                 lead_ms: int = 300, ssrc: int = 0x2A2A2A2A) -> float:
    """PCMU silence with telephone-events from :class:`roomtone.dtmf.rfc4733.Sender`, sharing SSRC,
    sequence and clock with the audio (audio muted while an event is on the wire)."""
    sender = rfc4733.Sender(rfc4733.SenderConfig(tone_ms=tone_ms, gap_ms=gap_ms))
    packets: list[tuple[float, bytes]] = []
    seq, ts, t = 1, 1000, 1.0
    queued = False
    while True:
        now = t - 1.0
        if not queued and now >= lead_ms / 1000:
            handle = sender.enqueue(digits)
            queued = True
        sender.sync(t, ts)
        events = sender.poll(t)
        for p in events:
            packets.append((t, RtpPacket(event_pt, seq, p.timestamp, ssrc, p.payload, p.marker).serialize()))
            seq += 1
        if not sender.active and not events:
            packets.append((t, RtpPacket(0, seq, ts, ssrc, SILENCE).serialize()))
            seq += 1
        ts += 160
        t = round(t + 0.02, 6)
        if queued and handle.finished and now > lead_ms / 1000 + 0.3 and not sender.active:
            break
    for _ in range(10):  # a little trailing audio
        packets.append((t, RtpPacket(0, seq, ts, ssrc, SILENCE).serialize()))
        seq, ts, t = seq + 1, ts + 160, round(t + 0.02, 6)
    return _write(path, packets)


def inband_pcap(path: str, digits: str, *, tone_ms: int = 100, gap_ms: int = 150, lead_ms: int = 300,
                ssrc: int = 0x5A5A5A5A) -> float:
    """PCMU audio carrying the tones from :class:`roomtone.dtmf.tones.ToneGenerator`."""
    gen = ToneGenerator(8000)
    lead = gen.silence(lead_ms / 1000)
    tones, _ = gen.sequence(digits, tone_ms / 1000, gap_ms / 1000)
    audio = np.concatenate((lead, tones, gen.silence(0.3)))
    audio = np.concatenate((audio, np.zeros(-len(audio) % 160, dtype=np.int16)))
    payload = ulaw_encode(audio)
    packets = [(1.0 + i * 0.02, RtpPacket(0, i + 1, 1000 + i * 160, ssrc, payload[i * 160:(i + 1) * 160],
                                          marker=i == 0).serialize())
               for i in range(len(payload) // 160)]
    return _write(path, packets)
