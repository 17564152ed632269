"""RtpSession fed what a broken or hostile peer sends: random bytes, unnegotiated payload types,
payload lengths that disagree with timestamp steps, sequence and timestamp jumps, SSRC changes,
foreign sources, RTCP junk. The session drops and counts; it never raises, so one peer cannot stop
the shared media tick. (A negative-length jitter frame from overlapping packets once did.)"""

from __future__ import annotations

import logging
import random

import pytest

from roomtone.media import codecs
from roomtone.media.rtp import RtpPacket
from roomtone.media.session import RtpSession, SessionConfig

PEER = ("127.0.0.1", 4000)


def _datagram(rng: random.Random, state: dict[str, int], pt: int) -> bytes:
    if rng.random() < 0.1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
    state["seq"] = (rng.getrandbits(16) if rng.random() < 0.1
                    else state["seq"] + rng.choice([1, 1, 1, 2, -1, 0, 1000])) & 0xFFFF
    state["ts"] = (rng.getrandbits(32) if rng.random() < 0.1
                   else state["ts"] + rng.choice([160, 160, 0, -160, 80, 8000, 2**31])) & 0xFFFFFFFF
    if rng.random() < 0.03:
        state["ssrc"] = rng.getrandbits(32)
    payload = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 4, 80, 160, 161, 320, 1000])))
    return RtpPacket(payload_type=rng.choice([pt, pt, 101, 101, rng.randint(0, 127)]), sequence=state["seq"],
                     timestamp=state["ts"], ssrc=state["ssrc"], marker=rng.random() < 0.2,
                     payload=payload).serialize()


@pytest.mark.parametrize("codec", [codecs.PCMU, codecs.PCMA, codecs.G722], ids=lambda c: c.name)
def test_hostile_peer_never_raises(codec: codecs.AudioCodec, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)  # the drops are logged at warning; keep the test output small
    rng = random.Random(f"garbage-{codec.name}")
    pt = codec.static_payload_type
    assert pt is not None
    for trial in range(12):
        cfg = SessionConfig(codec=codec, payload_type=pt,
                            telephone_event_pt=rng.choice([None, 101]), inband_detection=trial % 2 == 0,
                            ptime_ms=rng.choice([10, 20, 30]))
        session = RtpSession(cfg, PEER, now=0.0, rng=random.Random(trial))
        state = {"seq": rng.getrandbits(16), "ts": rng.getrandbits(32), "ssrc": rng.getrandbits(32)}
        now = 0.0
        for _ in range(150):
            now += rng.choice([0.0, 0.005, 0.02, 0.02, 0.02, 0.5])
            data = _datagram(rng, state, pt)
            source = rng.choice([PEER, PEER, ("127.0.0.1", 4002), ("10.0.0.1", 5)])
            if rng.random() < 0.1:
                session.receive_rtcp(data, source, now)
            else:
                session.receive_rtp(data, source, now)
            session.tick(now)
            session.take_events()
            session.take_datagrams()
            session.read_audio()
        stats = session.stats
        assert stats.rtp_received + stats.malformed + stats.unknown_payload_type + stats.foreign_source > 0


def test_malformed_telephone_events_are_logged_at_warning_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="roomtone.media.session")
    session = RtpSession(SessionConfig(telephone_event_pt=101), PEER, now=0.0, rng=random.Random(5))
    bad_payloads = [b"", b"\x01", b"\x01\x0a\x00", b"\x01\x4a\x00\xa0\x00"]  # short/long: not 4 bytes
    for i in range(12):
        pkt = RtpPacket(payload_type=101, sequence=i, timestamp=1000 + 160 * i, ssrc=0xABCD,
                        marker=i == 0, payload=bad_payloads[i % len(bad_payloads)])
        session.receive_rtp(pkt.serialize(), PEER, 0.02 * i)
    # a well-formed but out-of-order update (loss/reordering) stays at debug
    session.receive_rtp(RtpPacket(payload_type=101, sequence=40, timestamp=50000, ssrc=0xABCD, marker=False,
                                  payload=b"\x05\x0a\x00\xa0").serialize(), PEER, 0.5)
    session.receive_rtp(RtpPacket(payload_type=101, sequence=39, timestamp=40000, ssrc=0xABCD, marker=True,
                                  payload=b"\x05\x0a\x00\xa0").serialize(), PEER, 0.52)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        m for m in (r.getMessage() for r in warnings) if "malformed telephone-event from 127.0.0.1:4000" in m]
    assert len(warnings) == 2  # the 1st and the 10th of 12
    assert "0000abcd" in warnings[0].getMessage() and "1 so far" in warnings[0].getMessage()
    assert "10 so far" in warnings[1].getMessage()
    assert session.rfc4733_malformed == 12
    assert session.rfc4733_anomalies > 12  # the routine anomalies were counted too, at debug
    assert any(r.levelno == logging.DEBUG and "RFC 4733 anomaly" in r.getMessage() for r in caplog.records)
