"""A phone whose RTP stream carries garbage (payload types nobody negotiated, broken telephone-event
payloads, non-RTP datagrams) between good RFC 4733 digits: the good digits reach the room exactly
once, the garbage is logged, and the call and the room keep working.

SIPp is the phone: it replays a pcap we build after the call is answered, from its negotiated media
port, so the garbage arrives from the address symmetric RTP latched on (it is not filtered out as a
stranger's traffic before reaching the payload-type checks).
"""

from __future__ import annotations

import asyncio
import logging
import random

import dpkt
import pytest

from roomtone.media.rtp import RtpPacket
from roomtone.telephony.gateway import SipGateway
from tests.pcaps import Frame, rfc4733_pcap, write_pcap
from tests.phones.sipp import run_sipp, uac_scenario

from .conftest import listen, wait_for
from .test_gateway import add_direct

pytestmark = pytest.mark.interop


def _garbage(rng: random.Random, ssrc: int, seq: int, ts: int) -> list[bytes]:
    return [
        RtpPacket(99, seq, ts, ssrc, b"\x00" * 160).serialize(),             # PT never negotiated
        RtpPacket(101, seq, ts, ssrc, b"\x05\x0a\x00").serialize(),          # 3-byte telephone-event
        RtpPacket(101, seq, ts + 7, ssrc, b"\xc8\x8a\x00\xa0").serialize(),  # event code 200
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))),     # too short for RTP
        b"\x40" + bytes(rng.randrange(256) for _ in range(30)),             # RTP version 1
        b"\x80\xc8\xff\xff" + b"\x00" * 4,                                  # RTCP SR with a lying length
    ]


def _with_garbage(clean: str, dirty: str, seed: int) -> int:
    """Copy ``clean`` into ``dirty`` with a burst of garbage after every 5th packet; returns the count."""
    rng = random.Random(seed)
    frames: list[Frame] = []
    added = 0
    with open(clean, "rb") as f:
        for n, (t, buf) in enumerate(dpkt.pcap.Reader(f)):
            udp = dpkt.ethernet.Ethernet(buf).data.data
            payload = bytes(udp.data)
            frames.append(Frame(t, "127.0.0.1", 40000, "127.0.0.1", 40002, payload))
            if n % 5 == 2:
                pkt = RtpPacket.parse(payload)
                assert isinstance(pkt, RtpPacket)
                for junk in _garbage(rng, pkt.ssrc, (pkt.sequence + 1) & 0xFFFF, pkt.timestamp):
                    frames.append(Frame(t + 0.001, "127.0.0.1", 40000, "127.0.0.1", 40002, junk))
                    added += 1
    write_pcap(dirty, frames)
    return added


async def test_garbage_rtp_is_dropped_and_good_digits_arrive_once(
    gateway: SipGateway, tmp_path, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    caplog.set_level(logging.WARNING)
    await add_direct(gateway, "junk")
    agent = await listen(gateway.rooms, "junk")
    clean, dirty = str(tmp_path / "clean.pcap"), str(tmp_path / "dirty.pcap")
    rfc4733_pcap(clean, "159#", tone_ms=120, gap_ms=200)
    assert _with_garbage(clean, dirty, seed=7) > 30

    result = await asyncio.to_thread(
        run_sipp, uac_scenario(pcap=dirty, hold_ms=3000), f"127.0.0.1:{gateway.port}", service="+15550100", timeout=30)
    assert result.ok, result.report()  # the call lived to its BYE, answered 200
    await wait_for(lambda: len(agent.dtmf()) >= 4, 5, "SIPp RFC 4733 digits")
    await asyncio.sleep(0.5)
    assert [(i, d) for i, d, _ in agent.dtmf()] == [("sip_sipp", d) for d in "159#"]
    assert {d["method"] for d in agent.details()} == {"rfc4733"}
    assert "payload type 99" in caplog.text  # the drop is explained in the log

    # the room still works: a second, clean call relays its digits as well
    result = await asyncio.to_thread(
        run_sipp, uac_scenario(info_dtmf="7"), f"127.0.0.1:{gateway.port}", service="+15550100", timeout=20)
    assert result.ok, result.report()
    await wait_for(lambda: [d for _, d, _ in agent.dtmf()][-1:] == ["7"], 5, "digit of the second call")
    await wait_for(lambda: gateway.calls == {}, 10, "calls cleared")
