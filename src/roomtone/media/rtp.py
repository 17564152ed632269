"""RTP and RTCP packets (RFC 3550): a pure codec, plus sequence/timestamp arithmetic.

Why our own: aiortc's ``aiortc.rtp`` codec raises on malformed input and is tied to its WebRTC
stack, and dpkt's RTP class does not handle CSRC/extension/padding round trips or RTCP compound
packets. A SIP gateway reads whatever a phone sends, so parsing here never raises: every parser
returns either the packet(s) or an :class:`RtpError` value naming what is wrong.

Interface (all pure, no I/O):

* :class:`RtpPacket` with :meth:`RtpPacket.serialize` and :func:`parse_rtp` (also
  ``RtpPacket.parse``) -> ``RtpPacket | RtpError``.
* RTCP: :class:`SenderReport`, :class:`ReceiverReport` (with :class:`ReportBlock`),
  :class:`SourceDescription` (with :class:`SdesChunk`, ``cname``), :class:`Bye`, and
  :class:`RtcpUnknown` for packet types we do not interpret; :func:`parse_rtcp` reads a compound
  packet into a list, :func:`serialize_rtcp` writes one.
* :func:`is_rtcp` demultiplexes RTP and RTCP on one port (RFC 5761 §4).
* :func:`seq_diff`, :func:`seq_newer`, :func:`ts_diff`, :func:`ts_newer`, :func:`ts_add`:
  serial-number arithmetic with 16-bit (sequence) and 32-bit (timestamp) wrap.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTP_VERSION = 2
RTP_HEADER = struct.Struct("!BBHII")

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32


@dataclass(frozen=True, slots=True)
class RtpError:
    """Why bytes could not be read as RTP/RTCP. A value, not an exception: callers log and drop."""

    reason: str

    def __bool__(self) -> bool:  # an error is never a usable packet
        return False


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """RFC 3550 §5.3.1 header extension: 16-bit profile id and data (a multiple of 4 bytes)."""

    profile: int
    data: bytes = b""


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet. ``padding`` is the number of padding bytes (0 = P bit clear)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def serialize(self) -> bytes:
        """Wire bytes. Raises ``ValueError`` for out-of-range fields (a programming error)."""
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} out of range 0-127")
        if len(self.csrcs) > 15:
            raise ValueError("at most 15 CSRCs")
        if not 0 <= self.padding <= 255:
            raise ValueError("padding must be 0-255 bytes")
        b0 = (RTP_VERSION << 6) | (0x20 if self.padding else 0) | (0x10 if self.extension else 0)
        b0 |= len(self.csrcs)
        b1 = (0x80 if self.marker else 0) | self.payload_type
        parts = [RTP_HEADER.pack(b0, b1, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF,
                                 self.ssrc & 0xFFFFFFFF)]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            data = self.extension.data
            if len(data) % 4:
                raise ValueError("RTP header extension data must be a multiple of 4 bytes")
            parts.append(struct.pack("!HH", self.extension.profile, len(data) // 4))
            parts.append(data)
        parts.append(self.payload)
        if self.padding:
            parts.append(b"\x00" * (self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)

    @staticmethod
    def parse(data: bytes) -> RtpPacket | RtpError:
        return parse_rtp(data)


def parse_rtp(data: bytes) -> RtpPacket | RtpError:
    """Read one RTP packet; never raises. Returns :class:`RtpError` for anything malformed."""
    n = len(data)
    if n < 12:
        return RtpError(f"RTP packet too short ({n} bytes, need 12)")
    b0, b1, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        return RtpError(f"RTP version {b0 >> 6}, expected 2")
    cc = b0 & 0x0F
    offset = 12 + 4 * cc
    if offset > n:
        return RtpError(f"RTP packet truncated in CSRC list ({cc} CSRCs, {n} bytes)")
    csrcs = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
    extension = None
    if b0 & 0x10:
        if offset + 4 > n:
            return RtpError("RTP packet truncated in header extension")
        profile, words = struct.unpack_from("!HH", data, offset)
        offset += 4
        end = offset + 4 * words
        if end > n:
            return RtpError(f"RTP header extension claims {4 * words} bytes past the end of the packet")
        extension = RtpExtension(profile, bytes(data[offset:end]))
        offset = end
    end = n
    padding = 0
    if b0 & 0x20:
        padding = data[-1]
        if padding == 0 or offset + padding > n:
            return RtpError(f"RTP padding count {padding} is invalid for a {n}-byte packet")
        end = n - padding
    return RtpPacket(
        payload_type=b1 & 0x7F,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(b1 & 0x80),
        csrcs=tuple(csrcs),
        extension=extension,
        padding=padding,
    )


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: on a muxed port, second byte 192-223 (PT 64-95 with marker) means RTCP."""
    return len(data) >= 2 and 192 <= data[1] <= 223


# --- sequence and timestamp arithmetic -------------------------------------------------------


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 16-bit sequence numbers, in [-32768, 32767]."""
    d = (a - b) & 0xFFFF
    return d - SEQ_MOD if d >= 0x8000 else d


def seq_newer(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes after ``b`` (with wrap)."""
    return seq_diff(a, b) > 0


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 32-bit RTP timestamps."""
    d = (a - b) & 0xFFFFFFFF
    return d - TS_MOD if d >= 0x80000000 else d


def ts_newer(a: int, b: int) -> bool:
    return ts_diff(a, b) > 0


def ts_add(ts: int, delta: int) -> int:
    return (ts + delta) & 0xFFFFFFFF


# --- RTCP ------------------------------------------------------------------------------------

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
SDES_CNAME = 1

_REPORT_BLOCK = struct.Struct("!IB3sIIII")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """RFC 3550 §6.4.1 reception report. ``cumulative_lost`` is signed 24-bit (may be negative)."""

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    last_sr: int = 0
    delay_since_last_sr: int = 0

    def serialize(self) -> bytes:
        lost = self.cumulative_lost & 0xFFFFFF
        return _REPORT_BLOCK.pack(self.ssrc, self.fraction_lost, lost.to_bytes(3, "big"),
                                  self.highest_sequence, self.jitter, self.last_sr,
                                  self.delay_since_last_sr)

    @staticmethod
    def _parse(data: bytes, offset: int) -> ReportBlock:
        ssrc, frac, lost3, hi, jit, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        lost = int.from_bytes(lost3, "big")
        if lost & 0x800000:
            lost -= 1 << 24
        return ReportBlock(ssrc, frac, lost, hi, jit, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SSRC's items: ``(item type, value bytes)`` pairs; type 1 is CNAME."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    chunks: tuple[SdesChunk, ...] = ()

    @staticmethod
    def for_cname(ssrc: int, cname: str) -> SourceDescription:
        return SourceDescription((SdesChunk(ssrc, ((SDES_CNAME, cname.encode()),)),))


@dataclass(frozen=True, slots=True)
class Bye:
    ssrcs: tuple[int, ...] = ()
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    """An RTCP packet type we carry but do not interpret (APP, RTPFB, PSFB, XR ...)."""

    packet_type: int
    count: int
    body: bytes = field(default=b"")


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | RtcpUnknown


def _rtcp_header(count: int, ptype: int, body_len: int) -> bytes:
    return struct.pack("!BBH", 0x80 | count, ptype, body_len // 4)


def _pad4(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def serialize_rtcp(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """Write a compound RTCP packet. Raises ``ValueError`` for out-of-range fields."""
    out = []
    for p in packets:
        if isinstance(p, SenderReport):
            if len(p.reports) > 31:
                raise ValueError("at most 31 report blocks")
            body = struct.pack("!IQIII", p.ssrc, p.ntp_timestamp, p.rtp_timestamp,
                               p.packet_count, p.octet_count)
            body += b"".join(r.serialize() for r in p.reports)
            out.append(_rtcp_header(len(p.reports), RTCP_SR, len(body)) + body)
        elif isinstance(p, ReceiverReport):
            if len(p.reports) > 31:
                raise ValueError("at most 31 report blocks")
            body = struct.pack("!I", p.ssrc) + b"".join(r.serialize() for r in p.reports)
            out.append(_rtcp_header(len(p.reports), RTCP_RR, len(body)) + body)
        elif isinstance(p, SourceDescription):
            if len(p.chunks) > 31:
                raise ValueError("at most 31 SDES chunks")
            chunks = []
            for c in p.chunks:
                if any(k <= 0 or k > 255 or len(v) > 255 for k, v in c.items):
                    raise ValueError("SDES item type must be 1-255 and value at most 255 bytes")
                items = b"".join(bytes([k, len(v)]) + v for k, v in c.items)
                # the item list ends with a null octet, then pads to 32 bits (RFC 3550 §6.5)
                raw = struct.pack("!I", c.ssrc) + items + b"\x00"
                chunks.append(_pad4(raw))
            body = b"".join(chunks)
            out.append(_rtcp_header(len(p.chunks), RTCP_SDES, len(body)) + body)
        elif isinstance(p, Bye):
            if len(p.ssrcs) > 31:
                raise ValueError("at most 31 SSRCs in BYE")
            body = struct.pack(f"!{len(p.ssrcs)}I", *p.ssrcs)
            if p.reason is not None:
                r = p.reason.encode()
                if len(r) > 255:
                    raise ValueError("BYE reason at most 255 bytes")
                body = _pad4(body + bytes([len(r)]) + r)
            out.append(_rtcp_header(len(p.ssrcs), RTCP_BYE, len(body)) + body)
        else:
            if len(p.body) % 4 or not 0 <= p.count <= 31:
                raise ValueError("unknown RTCP body must be a multiple of 4 bytes and count 0-31")
            out.append(_rtcp_header(p.count, p.packet_type, len(p.body)) + p.body)
    return b"".join(out)


def parse_rtcp(data: bytes) -> list[RtcpPacket] | RtpError:
    """Read a compound RTCP packet; never raises. Any malformed part makes the whole an error."""
    packets: list[RtcpPacket] = []
    offset, n = 0, len(data)
    if n < 4:
        return RtpError(f"RTCP packet too short ({n} bytes)")
    while offset < n:
        if offset + 4 > n:
            return RtpError(f"RTCP header truncated at byte {offset}")
        b0, ptype, words = struct.unpack_from("!BBH", data, offset)
        if b0 >> 6 != RTP_VERSION:
            return RtpError(f"RTCP version {b0 >> 6} at byte {offset}, expected 2")
        count = b0 & 0x1F
        end = offset + 4 + 4 * words
        if end > n:
            return RtpError(f"RTCP packet type {ptype} claims {4 * words} bytes past the end")
        body_end = end
        if b0 & 0x20:  # padding: only legal on the last packet
            if end != n:
                return RtpError("RTCP padding bit set on a packet that is not the last")
            pad = data[end - 1] if end > offset + 4 else 0
            if pad == 0 or offset + 4 + pad > end:
                return RtpError(f"RTCP padding count {pad} invalid")
            body_end = end - pad
        body = bytes(data[offset + 4:body_end])
        parsed = _parse_rtcp_body(ptype, count, body)
        if isinstance(parsed, RtpError):
            return parsed
        packets.append(parsed)
        offset = end
    return packets


def _parse_rtcp_body(ptype: int, count: int, body: bytes) -> RtcpPacket | RtpError:
    if ptype == RTCP_SR:
        if len(body) < 24 + 24 * count:
            return RtpError(f"RTCP SR too short for {count} report blocks")
        ssrc, ntp, rtp_ts, pc, oc = struct.unpack_from("!IQIII", body)
        reports = tuple(ReportBlock._parse(body, 24 + 24 * i) for i in range(count))
        return SenderReport(ssrc, ntp, rtp_ts, pc, oc, reports)
    if ptype == RTCP_RR:
        if len(body) < 4 + 24 * count:
            return RtpError(f"RTCP RR too short for {count} report blocks")
        (ssrc,) = struct.unpack_from("!I", body)
        return ReceiverReport(ssrc, tuple(ReportBlock._parse(body, 4 + 24 * i) for i in range(count)))
    if ptype == RTCP_SDES:
        chunks = []
        pos = 0
        for _ in range(count):
            if pos + 4 > len(body):
                return RtpError("RTCP SDES chunk truncated")
            (ssrc,) = struct.unpack_from("!I", body, pos)
            pos += 4
            items = []
            while True:
                if pos >= len(body):
                    return RtpError("RTCP SDES item list not terminated")
                kind = body[pos]
                if kind == 0:
                    pos += 1
                    pos += -pos % 4
                    break
                if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                    return RtpError("RTCP SDES item truncated")
                length = body[pos + 1]
                items.append((kind, body[pos + 2:pos + 2 + length]))
                pos += 2 + length
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return SourceDescription(tuple(chunks))
    if ptype == RTCP_BYE:
        if len(body) < 4 * count:
            return RtpError(f"RTCP BYE too short for {count} SSRCs")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        reason = None
        pos = 4 * count
        if pos < len(body):
            length = body[pos]
            if pos + 1 + length > len(body):
                return RtpError("RTCP BYE reason truncated")
            reason = body[pos + 1:pos + 1 + length].decode("utf-8", "replace")
        return Bye(tuple(ssrcs), reason)
    return RtcpUnknown(ptype, count, body)
