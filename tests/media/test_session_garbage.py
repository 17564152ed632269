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
