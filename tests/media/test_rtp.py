"""RTP/RTCP codec: round trips, wrap arithmetic, and garbage that must give error values."""

from __future__ import annotations

import struct

import dpkt
from hypothesis import given
from hypothesis import strategies as st

from roomtone.media.rtp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpUnknown,
    RtpError,
    RtpExtension,
    RtpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    is_rtcp,
    parse_rtcp,
    parse_rtp,
    seq_diff,
    seq_newer,
    serialize_rtcp,
    ts_add,
    ts_diff,
    ts_newer,
)

u32 = st.integers(0, 0xFFFFFFFF)
u16 = st.integers(0, 0xFFFF)

rtp_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=u16,
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrcs=st.lists(u32, max_size=15).map(tuple),
    extension=st.none() | st.builds(RtpExtension, profile=u16,
                                    data=st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))),
    padding=st.integers(0, 255),
)


@given(rtp_packets)
def test_rtp_round_trip(packet: RtpPacket) -> None:
    wire = packet.serialize()
    assert parse_rtp(wire) == packet
    assert RtpPacket.parse(wire) == packet


@given(st.binary(max_size=64))
def test_rtp_garbage_never_raises(data: bytes) -> None:
    result = parse_rtp(data)
    assert isinstance(result, RtpPacket | RtpError)
    if isinstance(result, RtpPacket):
        # whatever we accepted must survive a round trip (padding bytes are rewritten as zeros)
        assert parse_rtp(result.serialize()) == result


def test_rtp_errors_name_the_problem() -> None:
    assert "too short" in parse_rtp(b"\x80\x00").reason  # type: ignore[union-attr]
    assert "version" in parse_rtp(b"\x40" + b"\x00" * 11).reason  # type: ignore[union-attr]
    assert "CSRC" in parse_rtp(b"\x83" + b"\x00" * 11 + b"\x00" * 4).reason  # type: ignore[union-attr]
    ext = b"\x90\x00" + b"\x00" * 10 + struct.pack("!HH", 0xBEDE, 5)
    assert "extension" in parse_rtp(ext).reason  # type: ignore[union-attr]
    pad = b"\xa0\x00" + b"\x00" * 10 + b"\x00\x09"
    assert "padding" in parse_rtp(pad).reason  # type: ignore[union-attr]
    assert not parse_rtp(b"")


def test_rtp_agrees_with_dpkt() -> None:
    """An independent parser reads our bytes the same way."""
    pkt = RtpPacket(payload_type=101, sequence=65535, timestamp=0xFFFFFF00, ssrc=0xDEADBEEF,
                    payload=b"\x05\x0a\x00\xa0", marker=True, csrcs=(1, 2))
    d = dpkt.rtp.RTP(pkt.serialize())
    assert (d.version, d.pt, d.m, d.seq, d.ts, d.ssrc, d.cc) == (2, 101, 1, 65535, 0xFFFFFF00, 0xDEADBEEF, 2)
    assert d.data == pkt.payload


def test_wrap_arithmetic() -> None:
    assert seq_diff(0, 65535) == 1 and seq_newer(0, 65535) and not seq_newer(65535, 0)
    assert seq_diff(100, 100) == 0 and seq_diff(5, 10) == -5
    assert ts_diff(10, 0xFFFFFFF0) == 26 and ts_newer(10, 0xFFFFFFF0)
    assert ts_diff(0xFFFFFFF0, 10) == -26
    assert ts_add(0xFFFFFFFF, 2) == 1


@given(u16, st.integers(-32768, 32767))
def test_seq_diff_inverts_addition(base: int, delta: int) -> None:
    assert seq_diff((base + delta) & 0xFFFF, base) == delta


@given(u32, st.integers(-(2**31), 2**31 - 1))
def test_ts_diff_inverts_addition(base: int, delta: int) -> None:
    assert ts_diff(ts_add(base, delta), base) == delta


report_blocks = st.builds(ReportBlock, ssrc=u32, fraction_lost=st.integers(0, 255),
                          cumulative_lost=st.integers(-(2**23), 2**23 - 1), highest_sequence=u32,
                          jitter=u32, last_sr=u32, delay_since_last_sr=u32)
sdes_items = st.lists(st.tuples(st.integers(1, 8), st.binary(max_size=40)), max_size=4).map(tuple)
rtcp_packets = st.one_of(
    st.builds(SenderReport, ssrc=u32, ntp_timestamp=st.integers(0, 2**64 - 1), rtp_timestamp=u32,
              packet_count=u32, octet_count=u32, reports=st.lists(report_blocks, max_size=3).map(tuple)),
    st.builds(ReceiverReport, ssrc=u32, reports=st.lists(report_blocks, max_size=3).map(tuple)),
    st.builds(SourceDescription, chunks=st.lists(st.builds(SdesChunk, ssrc=u32, items=sdes_items),
                                                 max_size=3).map(tuple)),
    st.builds(Bye, ssrcs=st.lists(u32, max_size=4).map(tuple),
              reason=st.none() | st.text(max_size=30).filter(lambda s: len(s.encode()) < 256)),
    st.builds(RtcpUnknown, packet_type=st.integers(204, 210), count=st.integers(0, 31),
              body=st.integers(0, 4).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_rtcp_compound_round_trip(packets: list) -> None:
    wire = serialize_rtcp(packets)
    assert len(wire) % 4 == 0
    assert is_rtcp(wire)
    assert parse_rtcp(wire) == packets


@given(st.binary(max_size=80))
def test_rtcp_garbage_never_raises(data: bytes) -> None:
    result = parse_rtcp(data)
    assert isinstance(result, list | RtpError)


def test_rtcp_sr_sdes_bye_typical_compound() -> None:
    sr = SenderReport(0x1234, 0xE1234567_89ABCDEF, 160000, 50, 8000,
                      (ReportBlock(0x99, 12, -3, 70000, 40, 0x4567_89AB, 6553),))
    sdes = SourceDescription.for_cname(0x1234, "roomtone@example")
    parsed = parse_rtcp(serialize_rtcp([sr, sdes, Bye((0x1234,), "hangup")]))
    assert isinstance(parsed, list)
    assert parsed[0] == sr and parsed[0].reports[0].cumulative_lost == -3
    assert parsed[1].chunks[0].cname == "roomtone@example"  # type: ignore[union-attr]
    assert parsed[2] == Bye((0x1234,), "hangup")


def test_rtcp_errors() -> None:
    sr = serialize_rtcp([SenderReport(1, 2, 3, 4, 5)])
    assert isinstance(parse_rtcp(sr[:-4]), RtpError)
    bad_version = bytes([0x40]) + sr[1:]
    assert "version" in parse_rtcp(bad_version).reason  # type: ignore[union-attr]
    # an SDES chunk whose item list never terminates
    unterminated = struct.pack("!BBHI", 0x81, 202, 2, 7) + bytes([1, 2]) + b"ab"
    assert isinstance(parse_rtcp(unterminated), RtpError)


def test_is_rtcp_demux() -> None:
    assert not is_rtcp(RtpPacket(payload_type=0, sequence=1, timestamp=1, ssrc=1).serialize())
    assert not is_rtcp(RtpPacket(payload_type=101, sequence=1, timestamp=1, ssrc=1, marker=True).serialize())
    assert is_rtcp(serialize_rtcp([ReceiverReport(1)]))
