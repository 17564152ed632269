"""Inbound early media (trunk option ``early_media``): the gateway answers 183 + SDP first, plays
the PIN prompt and then ringback as early media, and sends the 200 OK only once someone else is in
the room, so the caller is not billed while waiting.

The phone is roomtone's own UA (``place_call`` with ``on_early_media``): it hears the early audio,
sends the PIN by RFC 4733 before the answer, and reports when the 200 arrives. The room side is a
plain participant joining the room (what releases the 200).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit.protocol import models
from livekit.protocol import sip as sip_pb

from roomtone.media.call import MediaCall, place_call
from roomtone.media.engine import MediaEngine
from roomtone.media.ports import PortAllocator
from roomtone.rooms import CallbackEndpoint
from roomtone.sip.ua import CallFailed, UserAgent
from roomtone.telephony.gateway import SipGateway
from tests.phones.sipp import CALLER_ACK, Sipp, caller_invite, caller_request

from .conftest import wait_for

EARLY = '{"roomtone": {"early_media": true}}'


@pytest.fixture
async def phone() -> AsyncIterator[tuple[UserAgent, MediaEngine]]:
    first = random.randrange(26200, 26280, 2)
    engine = MediaEngine("127.0.0.1", PortAllocator(first, first + 18))
    ua = UserAgent("127.0.0.1", 0, transports=("UDP",), user="15550123")
    await ua.start()
    try:
        yield ua, engine
    finally:
        await ua.close()
        await engine.close()


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


async def setup(gw: SipGateway, room: str, *, pin: str = "", ringing_timeout: float = 0) -> None:
    trunk = sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_early", numbers=["+15550100"], metadata=EARLY,
                                       headers={"X-Served-By": "roomtone"})
    if ringing_timeout:
        trunk.ringing_timeout.FromMilliseconds(int(ringing_timeout * 1000))
    await gw.store.put_inbound_trunk(trunk)
    await gw.store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_early",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name=room, pin=pin))))


async def test_pin_and_ringback_as_early_media_then_200_when_an_agent_joins(
        gw: SipGateway, phone: tuple[UserAgent, MediaEngine]) -> None:
    ua, engine = phone
    await setup(gw, "vault", pin="4321")
    early: list[MediaCall] = []
    frames: list[np.ndarray] = []  # what the caller hears before the 200

    async def on_early(call: MediaCall) -> None:
        early.append(call)
        call.on_audio = lambda pcm: frames.append(pcm) if call.state == "early" else None
        await wait_for(lambda: sum(np.abs(f).max() > 1000 for f in frames) > 10, 10, "the PIN prompt")
        await call.send_dtmf("4321#", "rfc4733")

    placing = asyncio.ensure_future(place_call(ua, engine, f"sip:+15550100@127.0.0.1:{gw.port}", on_early_media=on_early))
    try:
        sip = await wait_for(lambda: gw.rooms.participant("vault", "sip_15550123"), 30, "PIN accepted, caller joined")
        assert sip.record.attributes["sip.callStatus"] == "ringing"
        (active,) = gw.calls.values()
        assert active.media is not None and active.media.state == "early"
        # nobody else is in the room: the caller keeps hearing ringback, unanswered
        frames.clear()
        await wait_for(lambda: sum(map(len, frames)) >= 8000 * 0.6, 5, "ringback after the PIN")
        assert not placing.done() and early[0].state == "early"
        tone = np.concatenate(frames)[-4000:]
        assert abs(peak_hz(tone, early[0].sample_rate) - 425) <= 15
        agent = await gw.rooms.join("vault", "agent", endpoint=CallbackEndpoint())
        call = await asyncio.wait_for(placing, 10)
    finally:
        if not placing.done():
            placing.cancel()
    assert call is early[0] and call.state == "established"
    answer = await call.sip.wait_answered()
    assert answer.get("X-Served-By") == "roomtone"
    await wait_for(lambda: sip.record.attributes["sip.callStatus"] == "active", 5, "status active")
    assert [t.name for t in sip.record.tracks] == ["phone"]
    await call.hangup()
    await wait_for(lambda: not gw.calls, 5, "call forgotten")
    await agent.leave()


async def test_nobody_in_the_room_within_ringing_timeout_is_480(
        gw: SipGateway, phone: tuple[UserAgent, MediaEngine]) -> None:
    ua, engine = phone
    await setup(gw, "empty", ringing_timeout=1.5)
    statuses: list[str] = []

    def on_participants(infos: list[models.ParticipantInfo]) -> None:
        statuses.extend(i.attributes.get("sip.callStatus", "") for i in infos if i.kind == models.ParticipantInfo.SIP)

    # a hidden observer does not count as someone to answer to
    from roomtone.rooms import Permission

    observer = await gw.rooms.join("empty", "observer", endpoint=CallbackEndpoint(on_participants=on_participants),
                                   permission=Permission(hidden=True))
    early: list[MediaCall] = []
    with pytest.raises(CallFailed) as err:
        await place_call(ua, engine, f"sip:+15550100@127.0.0.1:{gw.port}", on_early_media=early.append)
    assert err.value.status == 480
    assert len(early) == 1 and "ringing" in statuses
    await wait_for(lambda: gw.rooms.participant("empty", "sip_15550123") is None and not gw.calls, 5, "cleaned up")
    await observer.leave()


async def test_caller_cancelling_while_ringing_leaves_the_room(gw: SipGateway, phone: tuple[UserAgent, MediaEngine]) -> None:
    """Also: while unanswered the gateway resends its 183 (RFC 3261 §13.3.1.1; every 60 s by
    default, 0.3 s here) so proxies keep the call."""
    ua, engine = phone
    gw.ua.provisional_refresh = 0.3
    await setup(gw, "lobby")
    early: list[MediaCall] = []
    provisional: list[int] = []
    placing = asyncio.ensure_future(place_call(ua, engine, f"sip:+15550100@127.0.0.1:{gw.port}",
                                               on_early_media=early.append,
                                               on_provisional=lambda c, r: provisional.append(r.status)))
    sip = await wait_for(lambda: gw.rooms.participant("lobby", "sip_15550123"), 10, "caller joined, ringing")
    assert sip.record.attributes["sip.callStatus"] == "ringing" and len(early) == 1
    await wait_for(lambda: provisional.count(183) >= 3, 5, "the 183 resent while ringing")
    await early[0].hangup()  # CANCEL
    with pytest.raises(CallFailed) as err:
        await asyncio.wait_for(placing, 10)
    assert err.value.status == 487
    await wait_for(lambda: gw.rooms.participant("lobby", "sip_15550123") is None and not gw.calls, 5, "cleaned up")


def test_early_media_option_is_validated() -> None:
    from roomtone.telephony.options import trunk_options, validate_trunk_metadata

    assert trunk_options(EARLY).early_media and not trunk_options("{}").early_media
    with pytest.raises(ValueError, match="early_media must be true or false"):
        validate_trunk_metadata('{"roomtone": {"early_media": "yes"}}')


SIPP_CALLER = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller expecting early media">
{caller_invite()}  <recv response="100" optional="true"/>
  <recv response="183">
    <action>
      <ereg regexp="m=audio [0-9]+ RTP/AVP 0" search_in="body" check_it="true" assign_to="sdp"/>
    </action>
  </recv>
  <recv response="183" optional="true"/>
  <recv response="200"/>
{CALLER_ACK}  <pause milliseconds="300"/>
{caller_request("BYE", 2)}  <recv response="200"/>
  <Reference variables="sdp"/>
</scenario>
"""


async def test_sipp_caller_gets_183_with_sdp_then_200_when_someone_joins(gw: SipGateway) -> None:
    await setup(gw, "desk")
    proc = Sipp(SIPP_CALLER, f"127.0.0.1:{gw.port}", service="+15550100", timeout=30)
    try:
        sip = await wait_for(lambda: gw.rooms.participant("desk", "sip_15550123"), 10, "caller joined, ringing")
        (active,) = gw.calls.values()
        assert active.media is not None and active.media.state == "early"
        assert sip.record.attributes["sip.callStatus"] == "ringing"
        agent = await gw.rooms.join("desk", "agent", endpoint=CallbackEndpoint())
        result = await proc.finished(20)
    finally:
        proc.close()
    assert result.ok, result.report()
    await wait_for(lambda: not gw.calls, 5, "call ended")
    await agent.leave()
