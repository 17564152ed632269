"""Read a packet capture into UDP datagrams, RTP streams, SIP messages and their SDP.

We use dpkt (a dependency already) for the container formats (classic libpcap, microsecond and
nanosecond, either byte order; pcapng) and the link/IP/UDP layers: it is small, pure Python and
well kept. What dpkt does not do, and we do here, is the telephony view: guessing which UDP flows
are RTP, and reading the SDP out of SIP messages so telephone-event payload types are known.

Limits, said plainly: SIP over TCP/TLS and IP fragments are not reassembled (they are counted in
``Capture.warnings``); SRTP payloads are opaque; pcapng files with several interfaces of
different link types are read with the first interface's link type (a dpkt limit).
"""

from __future__ import annotations

import logging
import re
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from roomtone.media.rtp import RtpPacket, is_rtcp, parse_rtp, seq_diff

log = logging.getLogger(__name__)

_PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_SIP_START = re.compile(rb"^(?:SIP/2\.0 \d{3}(?: [^\r\n]*)?|[A-Z]{3,10} \S+ SIP/2\.0)\r?\n")


class CaptureError(Exception):
    """The file cannot be read as a capture at all (message says why)."""


@dataclass(frozen=True, slots=True)
class Datagram:
    frame: int  # 1-based frame number, as Wireshark counts
    time: float  # capture timestamp, seconds since the epoch
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class SdpMedia:
    """One ``m=`` section of an SDP body seen in a SIP message."""

    frame: int
    address: str  # where its author receives this media
    port: int
    media: str
    rtpmap: dict[int, tuple[str, int]]  # payload type -> (encoding name, clock rate)

    def telephone_event(self) -> tuple[int, int] | None:
        for pt, (name, rate) in self.rtpmap.items():
            if name.lower() == "telephone-event":
                return pt, rate
        return None


@dataclass(frozen=True, slots=True)
class RtpRecord:
    frame: int
    time: float
    packet: RtpPacket


@dataclass(slots=True)
class RtpStream:
    """Packets of one SSRC on one UDP 5-tuple, in capture order."""

    src: str
    sport: int
    dst: str
    dport: int
    ssrc: int
    packets: list[RtpRecord] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int, str, int, int]:
        return (self.src, self.sport, self.dst, self.dport, self.ssrc)

    @property
    def label(self) -> str:
        return f"{_hostport(self.src, self.sport)} -> {_hostport(self.dst, self.dport)} SSRC 0x{self.ssrc:08x}"

    def payload_types(self) -> Counter[int]:
        return Counter(r.packet.payload_type for r in self.packets)


@dataclass(slots=True)
class Capture:
    path: str
    link_type: int
    frames: int = 0
    start_time: float | None = None
    datagrams: list[Datagram] = field(default_factory=list)
    sip: list[Datagram] = field(default_factory=list)
    sdp: list[SdpMedia] = field(default_factory=list)
    rtp_streams: list[RtpStream] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fragments: int = 0
    bad_frames: int = 0

    def relative(self, t: float) -> float:
        """Seconds since the first frame: what the report prints."""
        return t - (self.start_time if self.start_time is not None else t)

    def sdp_for(self, address: str, port: int) -> SdpMedia | None:
        """The latest SDP media section announcing ``address:port`` as a receive address."""
        for media in reversed(self.sdp):
            if media.port == port and (media.address == address or media.address in ("0.0.0.0", "::")):
                return media
        return None


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def read_capture(path: str | Path) -> Capture:
    """Read ``path``. Raises :class:`CaptureError` with a clear message if it is not a capture."""
    p = Path(path)
    try:
        fh = p.open("rb")
    except OSError as exc:
        raise CaptureError(f"cannot open {path}: {exc.strerror or exc}") from None
    with fh:
        magic = fh.read(4)
        fh.seek(0)
        try:
            if magic in _PCAP_MAGICS:
                reader: dpkt.pcap.Reader | dpkt.pcapng.Reader = dpkt.pcap.Reader(fh)
            elif magic == _PCAPNG_MAGIC:
                reader = dpkt.pcapng.Reader(fh)
            else:
                raise CaptureError(f"{path} is not a pcap or pcapng capture (starts with {magic.hex() or 'nothing'})")
        except (ValueError, dpkt.UnpackError, struct.error) as exc:
            raise CaptureError(f"{path}: unreadable capture header: {exc}") from None
        capture = Capture(str(path), reader.datalink())
        try:
            for ts, buf in reader:
                capture.frames += 1
                if capture.start_time is None:
                    capture.start_time = float(ts)
                _decode_frame(capture, capture.frames, float(ts), buf)
        except (dpkt.NeedData, dpkt.UnpackError, struct.error, ValueError) as exc:
            capture.warnings.append(f"capture truncated or corrupt after frame {capture.frames}: {exc}")
    if capture.bad_frames:
        capture.warnings.append(f"{capture.bad_frames} frame(s) truncated or corrupt, skipped")
    if capture.fragments:
        capture.warnings.append(f"{capture.fragments} IP fragments skipped (fragments are not reassembled)")
    _classify(capture)
    return capture


def _link_payload(link: int, buf: bytes) -> object | None:
    if link == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(buf).data
    if link == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(buf).data
    if link == dpkt.pcap.DLT_LINUX_SLL2:
        return dpkt.sll2.SLL2(buf).data
    if link in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
        buf = buf[4:]
    elif link not in (dpkt.pcap.DLT_RAW, 12, 14, dpkt.pcap.DLT_IPV4, dpkt.pcap.DLT_IPV6):
        return None
    if buf and buf[0] >> 4 == 4:
        return dpkt.ip.IP(buf)
    if buf and buf[0] >> 4 == 6:
        return dpkt.ip6.IP6(buf)
    return None


def _decode_frame(capture: Capture, frame: int, ts: float, buf: bytes) -> None:
    try:
        ip = _link_payload(capture.link_type, buf)
    except (dpkt.UnpackError, struct.error, ValueError, IndexError):
        capture.bad_frames += 1
        return
    if ip is None:
        if frame == 1:
            capture.warnings.append(f"link type {capture.link_type} is not supported; no packets decoded")
        return
    if isinstance(ip, bytes | bytearray):  # dpkt leaves a layer it could not decode as bytes
        capture.bad_frames += 1
        return
    if isinstance(ip, dpkt.ip.IP):
        if ip.mf or ip.offset:
            capture.fragments += 1
            return
        family = socket.AF_INET
    elif isinstance(ip, dpkt.ip6.IP6):
        family = socket.AF_INET6
    else:
        return
    udp = ip.data
    if not isinstance(udp, dpkt.udp.UDP):
        return
    payload = bytes(udp.data)
    capture.datagrams.append(Datagram(frame, ts, socket.inet_ntop(family, ip.src), udp.sport,
                                      socket.inet_ntop(family, ip.dst), udp.dport, payload))


def _classify(capture: Capture) -> None:
    streams: dict[tuple[str, int, str, int, int], RtpStream] = {}
    for d in capture.datagrams:
        if _SIP_START.match(d.payload[:200]):
            capture.sip.append(d)
            capture.sdp.extend(parse_sdp(d.payload, d.frame))
            continue
        if is_rtcp(d.payload):
            continue
        pkt = parse_rtp(d.payload)
        if not isinstance(pkt, RtpPacket):
            continue
        key = (d.src, d.sport, d.dst, d.dport, pkt.ssrc)
        stream = streams.get(key)
        if stream is None:
            stream = streams[key] = RtpStream(d.src, d.sport, d.dst, d.dport, pkt.ssrc)
        stream.packets.append(RtpRecord(d.frame, d.time, pkt))
    for stream in streams.values():
        if _looks_like_rtp(stream, capture):
            capture.rtp_streams.append(stream)


def _looks_like_rtp(stream: RtpStream, capture: Capture) -> bool:
    """Random UDP parses as RTP v2 about a quarter of the time; a real stream keeps one SSRC and
    nearly consecutive sequence numbers (repeats allowed: some senders resend end-of-event packets
    with the same number). An SDP naming the destination port settles it."""
    if capture.sdp_for(stream.dst, stream.dport) is not None:
        return True
    n = len(stream.packets)
    if n < 2:
        return False
    near = sum(1 for a, b in zip(stream.packets, stream.packets[1:], strict=False)
               if -10 <= seq_diff(b.packet.sequence, a.packet.sequence) <= 50)
    return near >= 0.8 * (n - 1)


def parse_sdp(message: bytes, frame: int = 0) -> list[SdpMedia]:
    """The media sections of the SDP body of one SIP message (empty if it has none)."""
    head, sep, body = message.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = message.partition(b"\n\n")
    if not sep or b"application/sdp" not in head.lower():
        return []
    text = body.decode("utf-8", "replace").replace("\r\n", "\n")
    session_addr = ""
    out: list[SdpMedia] = []
    current: dict | None = None

    def close() -> None:
        if current is not None:
            out.append(SdpMedia(frame, current["addr"] or session_addr, current["port"], current["media"],
                                current["rtpmap"]))

    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("m="):
            close()
            parts = line[2:].split()
            try:
                port = int(parts[1].split("/")[0])
            except (IndexError, ValueError):
                current = None
                continue
            current = {"media": parts[0], "port": port, "addr": "", "rtpmap": {}}
        elif line.startswith("c="):
            parts = line[2:].split()
            addr = parts[2].split("/")[0] if len(parts) >= 3 else ""
            if current is None:
                session_addr = addr
            else:
                current["addr"] = addr
        elif line.startswith("a=rtpmap:") and current is not None:
            m = re.match(r"a=rtpmap:(\d+)\s+([^/\s]+)/(\d+)", line)
            if m:
                current["rtpmap"][int(m.group(1))] = (m.group(2), int(m.group(3)))
    close()
    return out
