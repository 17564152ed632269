"""RTCP is accepted only from the peer: a stray sender must not keep a dead call alive."""

from __future__ import annotations

import logging
import random

import pytest

from roomtone.media import rtp
from roomtone.media.session import MediaTimeout, RtpSession, SessionConfig

PEER = ("127.0.0.1", 24000)
PEER_RTCP = ("127.0.0.1", 24001)
STRAY = ("127.0.0.1", 24555)


def _rr(ssrc: int = 7) -> bytes:
    return rtp.serialize_rtcp([rtp.ReceiverReport(ssrc, ())])


def _bye(ssrc: int = 7) -> bytes:
    return rtp.serialize_rtcp([rtp.Bye((ssrc,), "bye")])


def _run(s: RtpSession, start: float, end: float, rtcp_from=None) -> list[object]:
    events: list[object] = []
    t = start
    while t < end:
        if rtcp_from is not None:
            s.receive_rtcp(_rr(), rtcp_from, t)
        s.tick(t)
        events += s.take_events()
        s.take_datagrams()
        t += 0.1
    return events


def test_rtcp_from_a_stray_address_does_not_defeat_the_media_timeout(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING)
    s = RtpSession(SessionConfig(media_timeout=1.0), remote=PEER, rng=random.Random(1))
    events = _run(s, 0.0, 2.0, rtcp_from=STRAY)
    assert [type(e) for e in events] == [MediaTimeout]
    assert s.stats.foreign_rtcp == 20 and s.stats.rtcp_received == 0
    drops = [r for r in caplog.records if "dropping RTCP from 127.0.0.1:24555" in r.getMessage()]
    assert [r.levelno for r in drops] == [logging.WARNING, logging.WARNING]  # 1st and 10th only
    assert "10 so far" in drops[-1].getMessage()


def test_rtcp_from_the_peer_keeps_the_call_alive():
    s = RtpSession(SessionConfig(media_timeout=1.0), remote=PEER, rng=random.Random(1))
    assert _run(s, 0.0, 2.0, rtcp_from=PEER_RTCP) == []
    assert s.stats.rtcp_received == 20 and s.stats.foreign_rtcp == 0
    # rtcp-mux: RTCP on the RTP port
    s.receive_rtcp(_rr(), PEER, 2.0)
    assert s.stats.rtcp_received == 21


def test_sdp_rtcp_port_is_accepted_also_after_symmetric_rtp_latches():
    s = RtpSession(SessionConfig(media_timeout=1.0, symmetric_rtp=True), remote=PEER, rng=random.Random(1))
    s.remote_rtcp = ("127.0.0.1", 25000)  # a=rtcp:25000
    nat = ("127.0.0.1", 26000)  # the phone's packets really come from here
    s.receive_rtp(rtp.RtpPacket(0, 1, 160, 9, b"\xff" * 160).serialize(), nat, 0.0)
    assert s.remote == nat and s.remote_rtcp == ("127.0.0.1", 26001)
    for i, addr in enumerate([("127.0.0.1", 25000), ("127.0.0.1", 26001), nat, PEER_RTCP]):
        s.receive_rtcp(_rr(), addr, 0.1 * i)
    assert s.stats.rtcp_received == 4 and s.stats.foreign_rtcp == 0
    s.receive_rtcp(_rr(), ("127.0.0.1", 26002), 0.5)
    s.receive_rtcp(_rr(), ("127.0.0.2", 26001), 0.5)  # right port, other host
    assert s.stats.rtcp_received == 4 and s.stats.foreign_rtcp == 2


def test_without_symmetric_rtp_only_the_signalled_addresses_count():
    s = RtpSession(SessionConfig(symmetric_rtp=False), remote=PEER, rng=random.Random(1))
    s.receive_rtp(rtp.RtpPacket(0, 1, 160, 9, b"\xff" * 160).serialize(), ("127.0.0.1", 26000), 0.0)
    s.receive_rtcp(_rr(), ("127.0.0.1", 26001), 0.1)
    s.receive_rtcp(_rr(), PEER_RTCP, 0.1)
    assert s.stats.rtcp_received == 1 and s.stats.foreign_rtcp == 1


def test_no_known_peer_means_no_rtcp_accepted():
    s = RtpSession(SessionConfig(), remote=None, rng=random.Random(1))
    s.receive_rtcp(_rr(), STRAY, 0.0)
    assert s.stats.rtcp_received == 0 and s.stats.foreign_rtcp == 1


def test_rtcp_bye_is_logged_at_info_once_and_only_from_the_peer(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="roomtone.media.session")
    s = RtpSession(SessionConfig(), remote=PEER, rng=random.Random(1))
    for i in range(5):
        s.receive_rtcp(_bye(), STRAY, 0.1 * i)
    assert not [r for r in caplog.records if "RTCP BYE" in r.getMessage()]
    for i in range(3):
        s.receive_rtcp(_bye(), PEER_RTCP, 1 + 0.1 * i)
    byes = [r.levelno for r in caplog.records if "RTCP BYE" in r.getMessage()]
    assert byes == [logging.INFO, logging.DEBUG, logging.DEBUG]
