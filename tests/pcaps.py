"""The one test-side pcap/RTP writer: captures for ``roomtone dtmf analyze`` and RTP for SIPp to play.

Frames are Ethernet (or raw IP) / IPv4 or IPv6 / UDP built with dpkt; RTP packets come from
roomtone's own :class:`~roomtone.media.rtp.RtpPacket`, events from its RFC 4733 sender, tones from
its generator and µ-law from :mod:`roomtone.media.g711`. What checks these against an independent
implementation is the receiver in each test (SIPp replaying them to pjsua2 or roomtone, tshark in
the analyze tests), not this module.

SIPp's ``play_pcap_audio`` replays the UDP payloads of a libpcap file toward the media address the
callee answered with, keeping the RTP headers as written here (addresses and ports are ignored).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dpkt
import numpy as np

from roomtone.dtmf.rfc4733 import EventPacket, Sender, SenderConfig
from roomtone.dtmf.tones import ToneGenerator
from roomtone.media.g711 import ulaw_encode
from roomtone.media.rtp import RtpPacket

SILENCE = ulaw_encode(np.zeros(160, dtype=np.int16))


@dataclass
class Frame:
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


def ethernet(f: Frame) -> bytes:
    udp = dpkt.udp.UDP(sport=f.sport, dport=f.dport, data=f.payload)
    udp.ulen = len(udp)
    if ":" in f.src:
        ip: dpkt.Packet = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, f.src),
                                       dst=socket.inet_pton(socket.AF_INET6, f.dst), nxt=dpkt.ip.IP_PROTO_UDP,
                                       hlim=64, data=udp, plen=len(udp))
        etype = dpkt.ethernet.ETH_TYPE_IP6
    else:
        ip = dpkt.ip.IP(src=socket.inet_aton(f.src), dst=socket.inet_aton(f.dst), p=dpkt.ip.IP_PROTO_UDP,
                        ttl=64, data=udp)
        ip.len = len(ip)
        etype = dpkt.ethernet.ETH_TYPE_IP
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=etype, data=ip))


def raw_ip(f: Frame) -> bytes:
    return bytes(dpkt.ethernet.Ethernet(ethernet(f)).data)


def write_pcap(path: Path | str, frames: list[Frame], *, pcapng: bool = False, raw: bool = False,
               nano: bool = False) -> Path:
    """Write ``frames`` in time order (stable: frames at the same instant keep their order)."""
    path = Path(path)
    frames = sorted(frames, key=lambda f: f.time)
    with path.open("wb") as fh:
        if pcapng:
            w: dpkt.pcapng.Writer | dpkt.pcap.Writer = dpkt.pcapng.Writer(fh, snaplen=65535)
        else:
            w = dpkt.pcap.Writer(fh, snaplen=65535, linktype=dpkt.pcap.DLT_RAW if raw else dpkt.pcap.DLT_EN10MB,
                                 nano=nano)
        for f in frames:
            w.writepkt(raw_ip(f) if raw else ethernet(f), ts=f.time)
    return path


@contextlib.contextmanager
def dumpcap(out_file: Path, port: int, interface: str = "lo") -> Iterator[subprocess.Popen[str]]:
    """A real capture: dumpcap writing ``udp port <port>`` on ``interface`` to ``out_file`` (pcapng).

    Returns once dumpcap has written its file header (it is capturing), plus a short settle; on
    exit it is terminated, which flushes the file.
    """
    proc = subprocess.Popen(["dumpcap", "-q", "-i", interface, "-f", f"udp port {port}", "-w", str(out_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not out_file.exists() or out_file.stat().st_size == 0:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "dumpcap exited"
            assert time.monotonic() < deadline, "dumpcap did not start"
            time.sleep(0.05)
        time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# ---------------------------------------------------------------- captures for the analyzer


def sender_packets(text: str, *, rate: int = 8000, t0: float = 1000.0, ts0: int = 5000,
                   **cfg: int) -> list[EventPacket]:
    sender = Sender(SenderConfig(clock_rate=rate, **cfg))
    sender.sync(t0, ts0)
    sender.enqueue(text)
    out: list[EventPacket] = []
    while (deadline := sender.next_deadline()) is not None:
        out += sender.poll(max(deadline, t0))
    return out


def rtp_frames(events: list[EventPacket], *, ssrc: int = 0x11223344, te_pt: int = 101, audio_pt: int | None = 0,
               src: tuple[str, int] = ("10.0.0.2", 30000), dst: tuple[str, int] = ("10.0.0.1", 40000),
               rate: int = 8000, t0: float = 1000.0, ts0: int = 5000, seconds: float | None = None,
               seq0: int = 65500) -> list[Frame]:
    """Audio every 20 ms (except while an event is on the wire) plus the events, one SSRC and
    one sequence space, as a gateway sends them."""
    items: list[tuple[float, int, bool, bytes, int]] = []  # time, pt, marker, payload, timestamp
    for e in events:
        items.append((e.send_at, te_pt, e.marker, e.payload, e.timestamp))
    if audio_pt is not None:
        end = seconds if seconds is not None else (max(e.send_at for e in events) - t0 + 0.2 if events else 1.0)
        busy = [(min(x.send_at for x in events if x.timestamp == ts), max(x.send_at for x in events if x.timestamp == ts))
                for ts in {e.timestamp for e in events}]
        per = rate // 50
        for k in range(int(end / 0.02)):
            t = t0 + k * 0.02
            if any(a - 1e-9 <= t <= b + 1e-9 for a, b in busy):
                continue
            items.append((t, audio_pt, False, b"\xff" * per, (ts0 + k * per) & 0xFFFFFFFF))
    items.sort(key=lambda i: i[0])
    frames = []
    for n, (t, pt, marker, payload, ts) in enumerate(items):
        pkt = RtpPacket(payload_type=pt, sequence=(seq0 + n) & 0xFFFF, timestamp=ts, ssrc=ssrc, payload=payload,
                        marker=marker)
        frames.append(Frame(t + 0.005, src[0], src[1], dst[0], dst[1], pkt.serialize()))
    return frames


def invite_with_sdp(time: float, media: tuple[str, int], te: tuple[int, int] = (101, 8000),
                    sip: tuple[str, int, str, int] = ("10.0.0.2", 5060, "10.0.0.1", 5060)) -> Frame:
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 {a}\r\ns=-\r\nc=IN IP4 {a}\r\nt=0 0\r\n"
        "m=audio {p} RTP/AVP 0 {pt}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:{pt} telephone-event/{rate}\r\n"
        "a=fmtp:{pt} 0-16\r\na=sendrecv\r\n"
    ).format(a=media[0], p=media[1], pt=te[0], rate=te[1])
    msg = (
        f"INVITE sip:ivr@{sip[2]} SIP/2.0\r\nVia: SIP/2.0/UDP {sip[0]}:{sip[1]};branch=z9hG4bK1\r\n"
        f"From: <sip:alice@{sip[0]}>;tag=1\r\nTo: <sip:ivr@{sip[2]}>\r\nCall-ID: analyze-test\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:alice@{sip[0]}:{sip[1]}>\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
    )
    return Frame(time, sip[2], sip[3], sip[0], sip[1], msg.encode())


# ---------------------------------------------------------------- RTP for SIPp to play


def _write_rtp(path: str, packets: list[tuple[float, bytes]]) -> float:
    """Loopback UDP frames carrying ``(time, RTP bytes)``; returns the capture's length in seconds."""
    write_pcap(path, [Frame(t, "127.0.0.1", 40000, "127.0.0.1", 40002, rtp) for t, rtp in packets])
    return packets[-1][0] - packets[0][0]


def rfc4733_pcap(path: str, digits: str, *, event_pt: int = 101, tone_ms: int = 100, gap_ms: int = 200,
                 lead_ms: int = 300, ssrc: int = 0x2A2A2A2A) -> float:
    """PCMU silence with telephone-events from :class:`roomtone.dtmf.rfc4733.Sender`, sharing SSRC,
    sequence and clock with the audio (audio muted while an event is on the wire)."""
    sender = Sender(SenderConfig(tone_ms=tone_ms, gap_ms=gap_ms))
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
    return _write_rtp(path, packets)


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
    return _write_rtp(path, packets)
