"""The SIP gateway end to end with real phones (pjsua2 in a subprocess) and a real RoomManager.

Trunks and rules go into the same SQLite store the API writes; the livekit-api path is covered
by test_gateway_api.py.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from livekit.protocol import models
from livekit.protocol import sip as sip_pb

from roomtone.telephony.gateway import SipGateway
from tests.phones.pjsua import pjsua_phone

from .conftest import listen, wait_for

pytestmark = pytest.mark.interop

ALL16 = "0123456789*#ABCD"


async def add_direct(gw: SipGateway, room: str, *, number: str = "+15550100", pin: str = "", **trunk_kw) -> str:  # type: ignore[no-untyped-def]
    trunk = sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_test", numbers=[number], **trunk_kw)
    await gw.store.put_inbound_trunk(trunk)
    rule = sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_test",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name=room, pin=pin)),
    )
    await gw.store.put_dispatch_rule(rule)
    return trunk.sip_trunk_id


@pytest.mark.parametrize("method", ["rfc4733", "info", "inband"])
async def test_phone_digits_reach_the_room_once_and_room_digits_reach_the_phone(
        gateway: SipGateway, method: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="roomtone.telephony.participant")
    await add_direct(gateway, "lobby")
    agent = await listen(gateway.rooms, "lobby")
    digits = ALL16 if method != "inband" else "0123456789*#"
    with pjsua_phone(user="15557777") as phone:
        await asyncio.to_thread(phone.call, f"sip:+15550100@127.0.0.1:{gateway.port}")
        await asyncio.to_thread(phone.wait_state, "CONFIRMED", 10)
        info = await wait_for(lambda: gateway.rooms.participant("lobby", "sip_15557777"), what="SIP participant")
        rec = info.record
        assert rec.kind == models.ParticipantInfo.SIP and rec.name == "Phone 15557777"
        assert rec.attributes["sip.callStatus"] == "active"
        assert rec.attributes["sip.trunkID"] == "ST_test" and rec.attributes["sip.ruleID"] == "SDR_test"
        assert rec.attributes["sip.phoneNumber"] == "15557777"
        assert rec.attributes["sip.trunkPhoneNumber"] == "+15550100"
        assert rec.attributes["sip.callID"].startswith("SCL_")

        await asyncio.to_thread(phone.send_dtmf, digits, method, 160)
        await wait_for(lambda: len(agent.dtmf()) >= len(digits), 20, "digits in the room")
        await asyncio.sleep(0.5)  # nothing more may arrive
        assert agent.dtmf() == [("sip_15557777", d, i) for i, d in enumerate(digits)]
        details = await wait_for(lambda: len(agent.details()) >= len(digits) and agent.details(), 5, "details")
        assert [d["digit"] for d in details] == list(digits)
        assert {d["method"] for d in details} == {method}
        assert all(d["duration_ms"] and d["duration_ms"] > 40 for d in details)

        # room -> phone (the trunk's default mode: auto picks RFC 4733 with pjsua)
        for code in (1, 2, 11, 12):
            agent.participant.publish_dtmf(code)
        got = await asyncio.to_thread(phone.wait_digits, 4, 10)
        assert [d["digit"] for d in got] == ["1", "2", "#", "A"]

        # the phone hangs up: the participant leaves
        await asyncio.to_thread(phone.hangup)
        await wait_for(lambda: gateway.rooms.participant("lobby", "sip_15557777") is None, 10, "participant gone")
    assert gateway.calls == {}
    # the call's end names every digit both ways (per-digit lines are DEBUG)
    (ended,) = [r.getMessage() for r in caplog.records if " ended: " in r.getMessage()]
    assert f"DTMF from the phone {digits!r} ({len(digits)}), to the phone '12#A' (4)" in ended, ended


async def test_remove_participant_hangs_up_and_sip_to_sip_is_not_relayed(gateway: SipGateway) -> None:
    await add_direct(gateway, "conf")
    agent = await listen(gateway.rooms, "conf")
    with pjsua_phone(user="111") as a, pjsua_phone(user="222") as b:
        for phone in (a, b):
            await asyncio.to_thread(phone.call, f"sip:+15550100@127.0.0.1:{gateway.port}")
            await asyncio.to_thread(phone.wait_state, "CONFIRMED", 10)
        await wait_for(lambda: gateway.rooms.participant("conf", "sip_222"), what="second phone")
        await asyncio.to_thread(a.send_dtmf, "5", "rfc4733", 160)
        await wait_for(lambda: agent.dtmf(), 10, "digit from phone a")
        await asyncio.sleep(1.0)
        assert len(b.dtmf) == 0  # phone b did not hear phone a
        await gateway.rooms.remove_participant("conf", "sip_111")
        await asyncio.to_thread(a.wait_state, "DISCONNECTED", 10)
        assert gateway.rooms.participant("conf", "sip_222") is not None


async def test_baresip_phone_both_ways(gateway: SipGateway) -> None:
    from tests.phones.baresip import baresip_phone

    await add_direct(gateway, "bare")
    agent = await listen(gateway.rooms, "bare")
    with baresip_phone(user="15550555") as phone:
        await asyncio.to_thread(phone.dial, f"sip:+15550100@127.0.0.1:{gateway.port}")
        await asyncio.to_thread(phone.wait_event, "CALL_ESTABLISHED", 10)
        await wait_for(lambda: gateway.rooms.participant("bare", "sip_15550555"), 10, "baresip joined")
        await asyncio.to_thread(phone.send_dtmf, ALL16, 0.25)
        await wait_for(lambda: len(agent.dtmf()) >= 16, 20, "baresip digits")
        await asyncio.sleep(0.5)
        assert agent.dtmf() == [("sip_15550555", d, i) for i, d in enumerate(ALL16)]
        for code in (7, 10):
            agent.participant.publish_dtmf(code)
        got = await asyncio.to_thread(phone.wait_digits, 2, 10)
        assert [d["digit"] for d in got] == ["7", "*"]


async def test_sipp_info_digits(gateway: SipGateway) -> None:
    # (no digest here: SIPp puts the remote address, not the Request-URI, in the digest uri, which
    # our challenger refuses as RFC 7616 asks; digest is covered with pjsua2 and SIPp's verifyauth)
    from tests.phones.sipp import run_sipp, uac_scenario

    await add_direct(gateway, "sippy")
    agent = await listen(gateway.rooms, "sippy")
    result = await asyncio.to_thread(
        run_sipp, uac_scenario(info_dtmf=ALL16, info_gap_ms=100), f"127.0.0.1:{gateway.port}",
        service="+15550100", timeout=30)
    assert result.ok, result.report()
    await wait_for(lambda: len(agent.dtmf()) >= 16, 5, "SIPp INFO digits")
    assert agent.dtmf() == [("sip_sipp", d, i) for i, d in enumerate(ALL16)]
    assert {d["method"] for d in agent.details()} == {"info"}


async def test_inband_trunk_mode_reaches_the_phone_as_tones(gateway: SipGateway, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from roomtone.dtmf.detector import detect
    from tests.phones.media import read_wav

    await add_direct(gateway, "tones", metadata='{"roomtone": {"dtmf_mode": "inband"}}')
    agent = await listen(gateway.rooms, "tones")
    wav = str(tmp_path / "heard.wav")
    with pjsua_phone(user="15550666") as phone:
        await asyncio.to_thread(phone.call, f"sip:+15550100@127.0.0.1:{gateway.port}")
        await asyncio.to_thread(phone.wait_state, "CONFIRMED", 10)
        await wait_for(lambda: gateway.rooms.participant("tones", "sip_15550666"), 10, "joined")
        await asyncio.to_thread(phone.record, wav)
        await asyncio.sleep(0.3)
        for code in (1, 5, 9, 11):
            agent.participant.publish_dtmf(code)
        # every relay's send has finished (the tones were played into the call's RTP), then
        # 300 ms more audio so the phone's jitter buffer hands the last tone to its recorder
        (call,) = gateway.calls.values()
        bridge, stats = call.bridge, call.media.stream.session.stats
        await wait_for(lambda: len(bridge.relayed_to_phone) == 4 and bridge._pending_sends == 0, 10,
                       "four tones played to the phone")
        sent = stats.rtp_sent
        await wait_for(lambda: stats.rtp_sent >= sent + 15, 5, "300 ms of audio after the last tone")
        await asyncio.to_thread(phone.hangup)
        await asyncio.sleep(0.3)
    assert len(phone.dtmf) == 0  # no RFC 4733 or INFO: tones only
    samples, rate = read_wav(wav)
    pcm = (np.asarray(samples) * 32767).astype(np.int16)
    assert "".join(d.digit for d in detect(pcm, rate)) == "159#"


async def test_individual_room_suffix_is_injectable(gateway: SipGateway) -> None:
    """GatewayConfig.room_suffix replaces the random part of individual rooms (deterministic names)."""
    from tests.phones.sipp import Sipp, uac_scenario

    await gateway.store.put_inbound_trunk(sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_ind", numbers=["+15550100"]))
    await gateway.store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_ind",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_individual=sip_pb.SIPDispatchRuleIndividual(room_prefix="call"))))
    suffixes = iter(["first", "second"])
    gateway.config.room_suffix = lambda: next(suffixes)
    for expected in ("call_sipp_first", "call_sipp_second"):
        proc = Sipp(uac_scenario(hold_ms=1500), f"127.0.0.1:{gateway.port}", service="+15550100", timeout=30)
        try:
            await wait_for(lambda room=expected: gateway.rooms.participant(room, "sip_sipp"), 10, f"caller in {expected}")
            result = await proc.finished(20)
        finally:
            proc.close()
        assert result.ok, result.report()
        await wait_for(lambda: not gateway.calls, 5, "call ended")
