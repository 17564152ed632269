"""``roomtone dtmf analyze`` finds in-band digits in G.711 RTP audio in a capture (pcap written
with dpkt): PCMU, and PCMA on a dynamic payload type announced by SDP, with packet loss, a
duplicated packet, and RFC 4733 packets in the same stream (flagged as double signalling)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import dpkt
import numpy as np
import pytest

from roomtone.cli import main
from roomtone.dtmf.tones import ToneGenerator
from roomtone.media.g711 import encode
from roomtone.media.rtp import RtpPacket

T0 = 1_700_000_000.0


def udp_frame(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    udp = dpkt.udp.UDP(sport=src[1], dport=dst[1], data=payload)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=socket.inet_aton(src[0]), dst=socket.inet_aton(dst[0]), p=dpkt.ip.IP_PROTO_UDP, ttl=64,
                    data=udp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def rtp_audio(pcm: np.ndarray, codec: str, pt: int, ssrc: int, t_start: float, *, drop: set[int] = frozenset(),
              dup: set[int] = frozenset()) -> list[tuple[float, bytes]]:
    payload = encode(pcm, codec)
    out = []
    for k in range(len(payload) // 160):
        if k in drop:
            continue
        pkt = RtpPacket(payload_type=pt, sequence=(1000 + k) & 0xFFFF, timestamp=(4_000_000_000 + 160 * k) & 0xFFFFFFFF,
                        ssrc=ssrc, payload=payload[160 * k:160 * (k + 1)], marker=k == 0)
        out.append((t_start + 0.02 * k, pkt.serialize()))
        if k in dup:
            out.append((t_start + 0.02 * k + 0.001, pkt.serialize()))
    return out


def sip_with_sdp(port: int, pt: int) -> bytes:
    sdp = (f"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
           f"m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} PCMA/8000\r\n")
    return (f"INVITE sip:ivr@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1\r\n"
            f"From: <sip:a@10.0.0.2>;tag=1\r\nTo: <sip:ivr@10.0.0.1>\r\nCall-ID: inband\r\nCSeq: 1 INVITE\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}").encode()


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    gen = ToneGenerator()
    lead = gen.silence(0.3)
    tones, _ = gen.sequence("159#", 0.08, 0.12)
    pcmu = np.concatenate([lead, tones, gen.silence(0.3)])
    gen2 = ToneGenerator(low_dbm0=-20, high_dbm0=-18)
    pcma = np.concatenate([gen2.silence(0.5), gen2.tone("A", 0.1), gen2.silence(0.3)])
    frames: list[tuple[float, bytes]] = []
    a, b = ("10.0.0.2", 30000), ("10.0.0.1", 40000)
    # PCMU, with packet 40 lost (inside the silence after '5') and packet 12 duplicated
    for t, p in rtp_audio(pcmu, "ulaw", 0, 0x1111, T0 + 1.0, drop={40}, dup={12}):
        frames.append((t, udp_frame(a, b, p)))
    # an RFC 4733 packet in the same stream (as a gateway that sends both would)
    te = RtpPacket(payload_type=101, sequence=5000, timestamp=4_000_000_000 + 2400, ssrc=0x1111,
                   payload=bytes([1, 0x0A, 0x03, 0x20]), marker=True)
    frames.append((T0 + 1.3, udp_frame(a, b, te.serialize())))
    # PCMA on dynamic PT 97, announced by SDP for 10.0.0.1:40002
    frames.append((T0 + 0.5, udp_frame(("10.0.0.2", 5060), ("10.0.0.1", 5060), sip_with_sdp(40002, 97))))
    for t, p in rtp_audio(pcma, "alaw", 97, 0x2222, T0 + 2.0):
        frames.append((t, udp_frame(("10.0.0.2", 30002), ("10.0.0.1", 40002), p)))
    frames.sort(key=lambda f: f[0])
    path = tmp_path / "inband.pcap"
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
        for t, f in frames:
            w.writepkt(f, ts=t)
    return path


def test_analyze_reports_inband_digits(capture: Path, capsys) -> None:
    assert main(["dtmf", "analyze", str(capture), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    inband = [d for d in report["digits"] if d["source"] == "inband"]
    pcmu = [d for d in inband if "0x00001111" in d["stream"]]
    pcma = [d for d in inband if "0x00002222" in d["stream"]]
    assert [d["digit"] for d in pcmu] == list("159#")
    assert [d["digit"] for d in pcma] == ["A"]
    # the first packet is captured at T0 + 1.0 (relative 0.5 after the SIP frame at T0 + 0.5)
    for d, expected in zip(pcmu, [0.8, 1.0, 1.2, 1.4], strict=True):
        assert d["start"] == pytest.approx(expected, abs=0.005)
        assert d["duration"] == pytest.approx(0.08, abs=0.008)
    assert pcma[0]["start"] == pytest.approx(1.5 + 0.5, abs=0.005)
    kinds = [(f["source"], f["kind"]) for f in report["findings"]]
    assert ("inband", "inband_and_rfc4733") in kinds
    assert not any(f["kind"] == "inband_and_rfc4733" and "0x00002222" in f["stream"] for f in report["findings"])


def test_no_inband_flag_skips_detection(capture: Path, capsys) -> None:
    assert main(["dtmf", "analyze", str(capture), "--json", "--no-inband"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not [d for d in report["digits"] if d["source"] == "inband"]
