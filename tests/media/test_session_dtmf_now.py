"""The first RFC 4733 packet of a digit leaves at once (room -> phone latency), RFC 4733 intact.

Checked on the wire: the packets a session sends when the first event packet is started early are
byte for byte the packets it sends when the digit waits for the tick; only the first one leaves
earlier. So timestamps (the next audio packet's), SSRC, consecutive sequence numbers, marker and
durations are what the tick-driven sender produces.
"""

from __future__ import annotations

import asyncio
import random
import socket

from roomtone.dtmf.digits import parse_sequence
from roomtone.media import rtp
from roomtone.media.engine import MediaEngine
from roomtone.media.ports import PortAllocator
from roomtone.media.session import RtpSession, SessionConfig

B = ("127.0.0.1", 22102)


def _session(**kw) -> RtpSession:
    return RtpSession(SessionConfig(telephone_event_pt=101, inband_detection=False, **kw), remote=B,
                      rng=random.Random(42), now=0.0)


def _wire(early: bool, digits: str = "5#", at: float = 0.047, overdue: int = 0,
          **kw) -> list[tuple[float, bytes]]:
    """(time sent, datagram) of every RTP packet over 1.2 s; the digits are queued at ``at``.

    ``overdue``: that many ticks due by ``at`` have not run yet (a busy loop); they run right after.
    """
    s = _session(**kw)
    sent: list[tuple[float, bytes]] = []
    t = 0.0
    queued = False
    while t < 1.2:
        if not queued and t + overdue * 0.02 > at:
            if not overdue:
                s.tick(at - 1e-9)  # nothing due: ticks up to here ran
            queued = True
            s.queue_dtmf(parse_sequence(digits), "rfc4733")
            if early:
                assert s.start_dtmf_now(at)
                sent += [(at, d) for d, _, rtcp in s.take_datagrams() if not rtcp]
        s.tick(t)
        sent += [(max(t, at) if queued else t, d) for d, _, rtcp in s.take_datagrams() if not rtcp]
        t = round(t + 0.02, 6)
    return sent


def _parse(data: bytes) -> rtp.RtpPacket:
    pkt = rtp.parse_rtp(data)
    assert isinstance(pkt, rtp.RtpPacket)
    return pkt


def test_early_first_packet_is_the_tick_packet_sent_sooner():
    for kw in ({}, {"audio_during_events": "keep"}, {"tone_ms": 40, "gap_ms": 0}):
        late, early = _wire(False, **kw), _wire(True, **kw)
        assert [d for _, d in early] == [d for _, d in late], kw
        first = next(i for i, (_, d) in enumerate(late) if _parse(d).payload_type == 101)
        assert early[first][0] == 0.047 and late[first][0] == 0.06
        # everything else leaves at the same tick in both runs
        assert [t for i, (t, _) in enumerate(early) if i != first] == [t for i, (t, _) in enumerate(late) if i != first]


def test_early_first_packet_when_the_clock_is_late():
    """The tick due at 0.06 has not run at 0.065 (a busy loop): the packet it would send leaves
    now, and the late ticks carry on with the same bytes."""
    for at, overdue in ((0.065, 1), (0.085, 2)):
        late, early = _wire(False, at=at, overdue=overdue), _wire(True, at=at, overdue=overdue)
        assert [d for _, d in early] == [d for _, d in late]
        first = next(i for i, (_, d) in enumerate(late) if _parse(d).payload_type == 101)
        assert early[first][0] == at and _parse(early[first][1]).marker


def test_first_event_packet_fields_on_the_wire():
    wire = _wire(True)
    pkts = [_parse(d) for _, d in wire]
    assert len({p.ssrc for p in pkts}) == 1
    seqs = [p.sequence for p in pkts]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    i = next(i for i, p in enumerate(pkts) if p.payload_type == 101)
    prev, first = pkts[i - 1], pkts[i]
    assert prev.payload_type == 0
    assert first.marker and first.timestamp == (prev.timestamp + 160) & 0xFFFFFFFF
    code, flags, duration = first.payload[0], first.payload[1], int.from_bytes(first.payload[2:4], "big")
    assert (code, flags & 0x80, duration) == (5, 0, 160)
    # the rest of the tone on the tick schedule: same timestamp, growing durations, 3 end packets
    tone = [p for p in pkts[i:] if p.payload_type == 101 and p.timestamp == first.timestamp]
    durs = [int.from_bytes(p.payload[2:4], "big") for p in tone]
    assert durs == [160, 320, 480, 640, 800, 960, 1120, 1280, 1280, 1280]
    assert [bool(p.payload[1] & 0x80) for p in tone] == [False] * 7 + [True] * 3
    assert [p.marker for p in tone] == [True] + [False] * 9
    # audio is suppressed during the event and resumes on the shared clock
    after = next(p for p in pkts[i:] if p.payload_type == 0)
    assert ((after.timestamp - first.timestamp) & 0xFFFFFFFF) % 160 == 0


def test_not_started_early_when_the_sender_is_busy_or_the_method_is_inband():
    s = _session()
    s.tick(0.0)
    s.take_datagrams()
    s.queue_dtmf(parse_sequence("1"), "rfc4733")
    assert s.start_dtmf_now(0.01)
    s.take_datagrams()
    s.queue_dtmf(parse_sequence("2"), "rfc4733")
    assert not s.start_dtmf_now(0.011)  # a tone is on the wire: the second waits its turn
    assert s.take_datagrams() == []
    s2 = _session()
    s2.tick(0.0)
    s2.take_datagrams()
    s2.queue_dtmf(parse_sequence("1"), "inband")
    assert not s2.start_dtmf_now(0.01)


async def test_engine_sends_the_first_event_packet_before_the_next_tick():
    engine = MediaEngine("127.0.0.1", PortAllocator(22700, 22799))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        stream = await engine.open(SessionConfig(telephone_event_pt=101, inband_detection=False))
        stream.set_remote(sink.getsockname())
        await asyncio.sleep(0.1)
        sink.setblocking(False)
        for _ in range(100):
            # just after a tick (the next one not yet due), so the digit must not wait for it
            await asyncio.sleep(0.001)
            if stream.session.next_deadline() - engine.now() > 0.002:
                break
        last = None
        try:
            while True:
                last = sink.recvfrom(2048)[0]
        except BlockingIOError:
            pass
        assert last is not None
        # no await from the drain on: the engine's clock cannot tick in between
        stream.session.queue_dtmf(parse_sequence("7"), "rfc4733")
        stream.start_dtmf()
        got = []
        try:
            while True:
                got.append(sink.recvfrom(2048)[0])
        except BlockingIOError:
            pass
        prev = _parse(last)
        assert prev.payload_type == 0
        ev = _parse(got[0])
        assert len(got) == 1 and ev.payload_type == 101 and ev.marker
        assert ev.sequence == (prev.sequence + 1) & 0xFFFF
        assert ev.timestamp == (prev.timestamp + 160) & 0xFFFFFFFF and ev.ssrc == prev.ssrc
    finally:
        sink.close()
        await engine.close()
