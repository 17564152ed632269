"""PIN entry, digest-authenticated trunks and outbound calls, with pjsua2 phones."""

from __future__ import annotations

import asyncio
import os
import tempfile
import wave

import numpy as np
import pytest
from google.protobuf.duration_pb2 import Duration
from livekit.protocol import sip as sip_pb

from roomtone.telephony.errors import TelephonyError
from roomtone.telephony.gateway import SipGateway
from tests.phones.pjsua import pjsua_phone

from .conftest import listen, media_flowing, wait_for, watch

pytestmark = pytest.mark.interop


async def setup_inbound(gw: SipGateway, room: str, pin: str = "", **trunk_kw) -> None:  # type: ignore[no-untyped-def]
    await gw.store.put_inbound_trunk(sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_in", numbers=["+15550100"], **trunk_kw))
    await gw.store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_in",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name=room, pin=pin)),
    ))


def speech_seconds(path: str) -> float:
    with wave.open(path, "rb") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        if w.getnchannels() > 1:
            pcm = pcm.reshape(-1, w.getnchannels())[:, 0]
    block = rate // 50
    n = len(pcm) // block
    rms = np.sqrt((pcm[: n * block].reshape(n, block) ** 2).mean(axis=1))
    return float((rms > 300).sum()) / 50


async def test_pin_wrong_cleared_then_correct(gateway: SipGateway) -> None:
    await setup_inbound(gateway, "secret", pin="4321")
    agent = await listen(gateway.rooms, "secret")
    rec = os.path.join(tempfile.mkdtemp(prefix="pin-"), "heard.wav")
    with pjsua_phone(user="15551234") as phone:
        await asyncio.to_thread(phone.call, f"sip:+15550100@127.0.0.1:{gateway.port}")
        await asyncio.to_thread(phone.wait_state, "CONFIRMED", 10)
        await asyncio.to_thread(phone.record, rec)
        await wait_for(lambda: media_flowing(gateway), 10, "RTP from the phone")
        await asyncio.to_thread(phone.send_dtmf, "98*", "rfc4733", 120)  # typed, then cleared
        await asyncio.to_thread(phone.send_dtmf, "43#", "rfc4733", 120)  # wrong: "43" (the 9 and 8 were cleared)
        await asyncio.sleep(1.0)
        assert gateway.rooms.participant("secret", "sip_15551234") is None
        # "6" is pressed after the PIN, while the join prompt plays: kept and published on joining
        await asyncio.to_thread(phone.send_dtmf, "4321#6", "rfc4733", 120)
        await wait_for(lambda: gateway.rooms.participant("secret", "sip_15551234"), 25, "join after the PIN")
        await wait_for(lambda: agent.dtmf(), 10, "digit pressed before joining")
        await asyncio.to_thread(phone.send_dtmf, "7", "rfc4733", 120)
        await wait_for(lambda: len(agent.dtmf()) >= 2, 10, "digit after joining")
        await asyncio.sleep(0.5)
        # the PIN never reaches the room; the digits after it do, once each, in order
        assert [d for _, d, _ in agent.dtmf()] == ["6", "7"]
        assert [(d["digit"], d["pre_join"]) for d in agent.details()] == [("6", True), ("7", False)]
        await asyncio.to_thread(phone.hangup)
        await asyncio.sleep(0.5)
    # enter_pin, cleared, wrong_pin, enter_pin again, room_join: several seconds of speech heard
    assert speech_seconds(rec) > 5.0


async def test_pin_failures_hang_up(gateway: SipGateway) -> None:
    gateway.config.pin = type(gateway.config.pin)(retries=0, inter_digit_timeout=2.0)
    await setup_inbound(gateway, "secret", pin="4321")
    with pjsua_phone(user="15551235") as phone:
        await asyncio.to_thread(phone.call, f"sip:+15550100@127.0.0.1:{gateway.port}")
        await asyncio.to_thread(phone.wait_state, "CONFIRMED", 10)
        await asyncio.to_thread(phone.send_dtmf, "1111#", "rfc4733", 120)
        await asyncio.to_thread(phone.wait_state, "DISCONNECTED", 20)
    await wait_for(lambda: gateway.calls == {}, 5, "call forgotten")
    assert gateway.rooms.participant("secret", "sip_15551235") is None


async def test_digest_trunk(gateway: SipGateway) -> None:
    await setup_inbound(gateway, "authed", auth_username="trunkuser", auth_password="s3cret")
    with pjsua_phone(user="15550001", auth=("trunkuser", "wrong")) as bad:
        await asyncio.to_thread(bad.call, f"sip:+15550100@127.0.0.1:{gateway.port}")
        ev = await asyncio.to_thread(bad.wait_state, "DISCONNECTED", 15)
        assert ev.get("code") in (403, None) or "403" in str(ev)
    assert gateway.rooms.participant("authed", "sip_15550001") is None
    with pjsua_phone(user="15550002", auth=("trunkuser", "s3cret")) as good:
        await asyncio.to_thread(good.call, f"sip:+15550100@127.0.0.1:{gateway.port}")
        await asyncio.to_thread(good.wait_state, "CONFIRMED", 10)
        await wait_for(lambda: gateway.rooms.participant("authed", "sip_15550002"), 10, "authenticated caller")
        await asyncio.to_thread(good.hangup)


async def test_unknown_number_and_address_are_refused(gateway: SipGateway) -> None:
    await setup_inbound(gateway, "r", allowed_addresses=["10.0.0.0/8"])
    with pjsua_phone(user="15550003") as phone:
        await asyncio.to_thread(phone.call, f"sip:+15550100@127.0.0.1:{gateway.port}")
        ev = await asyncio.to_thread(phone.wait_state, "DISCONNECTED", 10)
        assert "403" in str(ev)


async def test_outbound_call_with_dtmf_and_statuses(gateway: SipGateway) -> None:
    with pjsua_phone(user="callee", auto_answer=True) as phone:
        await gateway.store.put_outbound_trunk(sip_pb.SIPOutboundTrunkInfo(
            sip_trunk_id="ST_out", address=f"127.0.0.1:{phone.port}", numbers=["+15550999"]))
        agent, watcher = await watch(gateway.rooms, "out")
        info = await gateway.create_sip_participant(sip_pb.CreateSIPParticipantRequest(
            sip_trunk_id="ST_out", sip_call_to="callee", room_name="out", dtmf="ww12#", wait_until_answered=True,
        ))
        assert info.participant_identity == "sip_callee" and info.sip_call_id.startswith("SCL_")
        got = await asyncio.to_thread(phone.wait_digits, 3, 10)
        assert [d["digit"] for d in got] == ["1", "2", "#"]
        assert watcher.statuses[0] == "dialing" and watcher.statuses[-2:] == ["automation", "active"]
        # the callee's key press reaches the room
        await asyncio.to_thread(phone.send_dtmf, "9", "rfc4733", 120)
        await wait_for(lambda: agent.dtmf(), 10, "callee digit")
        assert agent.dtmf() == [("sip_callee", "9", 9)]
        # SendDTMF extension
        call_id, digits, method = await gateway.send_dtmf(room="out", identity="sip_callee", digits="4a", method="", wait=True)
        assert (call_id, digits, method) == (info.sip_call_id, "4A", "rfc4733")
        got = await asyncio.to_thread(phone.wait_digits, 5, 10)
        assert [d["digit"] for d in got][3:] == ["4", "A"]
        # the callee hangs up: status hangup, participant gone
        await asyncio.to_thread(phone.hangup)
        await wait_for(lambda: gateway.rooms.participant("out", "sip_callee") is None, 10, "participant gone")
        assert watcher.statuses[-1] == "hangup"


async def test_outbound_ringing_timeout_and_errors(gateway: SipGateway) -> None:
    with pjsua_phone(user="nobody") as phone:  # rings, never answers
        await gateway.store.put_outbound_trunk(sip_pb.SIPOutboundTrunkInfo(
            sip_trunk_id="ST_out", address=f"127.0.0.1:{phone.port}", numbers=["+15550999"]))
        _, watcher = await watch(gateway.rooms, "ring")
        dial = asyncio.ensure_future(gateway.create_sip_participant(sip_pb.CreateSIPParticipantRequest(
            sip_trunk_id="ST_out", sip_call_to="nobody", room_name="ring", wait_until_answered=True,
            ringing_timeout=Duration(seconds=3),
        )))
        await asyncio.to_thread(phone.answer, 180, 10)  # 180 Ringing, never 200
        with pytest.raises(TelephonyError) as err:
            await dial
        assert err.value.code == "deadline_exceeded" and err.value.meta["sip_status_code"] == "408"
        assert watcher.statuses == ["dialing", "ringing", "hangup"]
        await asyncio.to_thread(phone.wait_state, "DISCONNECTED", 10)  # CANCEL reached the phone
        assert gateway.rooms.participant("ring", "sip_nobody") is None
    with pytest.raises(TelephonyError) as err:
        await gateway.create_sip_participant(sip_pb.CreateSIPParticipantRequest(
            sip_trunk_id="ST_missing", sip_call_to="x", room_name="ring"))
    assert err.value.code == "not_found"
    with pytest.raises(TelephonyError) as err:
        await gateway.send_dtmf(room="ring", identity="watcher", digits="1", method="", wait=False)
    assert err.value.code == "failed_precondition"


async def test_callee_keys_during_initial_dtmf_are_relayed(gateway: SipGateway) -> None:
    with pjsua_phone(user="ivr", auto_answer=True) as phone:
        await gateway.store.put_outbound_trunk(sip_pb.SIPOutboundTrunkInfo(
            sip_trunk_id="ST_out", address=f"127.0.0.1:{phone.port}", numbers=["+15550999"]))
        agent, watcher = await watch(gateway.rooms, "ivr")
        dial = asyncio.ensure_future(gateway.create_sip_participant(sip_pb.CreateSIPParticipantRequest(
            sip_trunk_id="ST_out", sip_call_to="ivr", room_name="ivr", dtmf="WWW1", wait_until_answered=True)))
        await asyncio.to_thread(phone.wait_state, "CONFIRMED", 10)
        await asyncio.to_thread(phone.send_dtmf, "9", "rfc4733", 120)
        await wait_for(lambda: agent.dtmf(), 5, "callee digit during automation")
        status_when_received = watcher.statuses[-1]
        await dial
        assert status_when_received == "automation"
        assert agent.dtmf() == [("sip_ivr", "9", 9)]
        got = await asyncio.to_thread(phone.wait_digits, 1, 10)
        assert [d["digit"] for d in got] == ["1"]  # the phone hears only the initial string


@pytest.mark.parametrize("method", ["info", "inband"])
async def test_pin_by_other_dtmf_methods(gateway: SipGateway, method: str) -> None:
    await setup_inbound(gateway, "secret", pin="2580")
    with pjsua_phone(user="15551300") as phone:
        await asyncio.to_thread(phone.call, f"sip:+15550100@127.0.0.1:{gateway.port}")
        await asyncio.to_thread(phone.wait_state, "CONFIRMED", 10)
        await wait_for(lambda: media_flowing(gateway), 10, "RTP from the phone")
        await asyncio.to_thread(phone.send_dtmf, "2580#", method, 160)
        await wait_for(lambda: gateway.rooms.participant("secret", "sip_15551300"), 20, f"join after a PIN by {method}")
        await asyncio.to_thread(phone.hangup)


async def test_outbound_without_waiting_and_max_call_duration(gateway: SipGateway) -> None:
    with pjsua_phone(user="short", auto_answer=True) as phone:
        await gateway.store.put_outbound_trunk(sip_pb.SIPOutboundTrunkInfo(
            sip_trunk_id="ST_out", address=f"127.0.0.1:{phone.port}", numbers=["+15550999"]))
        _, watcher = await watch(gateway.rooms, "short")
        info = await gateway.create_sip_participant(sip_pb.CreateSIPParticipantRequest(
            sip_trunk_id="ST_out", sip_call_to="short", room_name="short", max_call_duration=Duration(seconds=2)))
        # returned before the answer: the participant is there, dialing
        first = await gateway.rooms.get_participant("short", info.participant_identity)
        assert first.attributes["sip.callStatus"] == "dialing"
        await asyncio.to_thread(phone.wait_state, "CONFIRMED", 10)
        await wait_for(lambda: watcher.statuses[-1:] == ["active"], 5, "active")
        await asyncio.to_thread(phone.wait_state, "DISCONNECTED", 10)  # hung up by max_call_duration
        await wait_for(lambda: gateway.rooms.participant("short", "sip_short") is None, 5, "participant gone")
        assert watcher.statuses[-1] == "hangup"


async def test_play_dialtone_publishes_ringing_until_answered(gateway: SipGateway) -> None:
    from roomtone.telephony.ringback import RATE, RingbackTrack

    track_counts: list[int] = []

    def on_participants(infos):  # type: ignore[no-untyped-def]
        track_counts.extend(len(i.tracks) for i in infos if i.identity == "sip_desk")

    from roomtone.rooms import CallbackEndpoint

    await gateway.rooms.join("tone", "agent", endpoint=CallbackEndpoint(on_participants=on_participants))
    with pjsua_phone(user="desk") as phone:
        await gateway.store.put_outbound_trunk(sip_pb.SIPOutboundTrunkInfo(
            sip_trunk_id="ST_out", address=f"127.0.0.1:{phone.port}", numbers=["+15550999"]))
        dial = asyncio.ensure_future(gateway.create_sip_participant(sip_pb.CreateSIPParticipantRequest(
            sip_trunk_id="ST_out", sip_call_to="desk", room_name="tone", play_dialtone=True,
            wait_until_answered=True)))
        await asyncio.to_thread(phone.answer, 180, 10)
        p = await wait_for(lambda: gateway.rooms.participant("tone", "sip_desk"), 5, "SIP participant")
        assert len(p.record.tracks) == 1 and p.record.tracks[0].name == "dialtone"
        track = next(iter(p.media.values()))
        assert isinstance(track, RingbackTrack)
        frames = [await track.recv() for _ in range(10)]  # 200 ms of the "on" part of the cadence
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float64)
        spectrum = np.abs(np.fft.rfft(pcm))
        assert abs(np.argmax(spectrum) * RATE / len(pcm) - 425) < 10
        await asyncio.to_thread(phone.command, "answer", code=200)
        await dial
        await wait_for(lambda: [t.name for t in p.record.tracks] == ["phone"], 5,
                       "dial tone replaced by the phone's audio on answer")
        assert 1 in track_counts and 0 in track_counts[track_counts.index(1):]  # dial tone published, then removed
        await asyncio.to_thread(phone.hangup)


async def test_remove_participant_while_ringing_cancels_the_call(gateway: SipGateway) -> None:
    with pjsua_phone(user="busy") as phone:
        await gateway.store.put_outbound_trunk(sip_pb.SIPOutboundTrunkInfo(
            sip_trunk_id="ST_out", address=f"127.0.0.1:{phone.port}", numbers=["+15550999"]))
        dial = asyncio.ensure_future(gateway.create_sip_participant(sip_pb.CreateSIPParticipantRequest(
            sip_trunk_id="ST_out", sip_call_to="busy", room_name="cancel", wait_until_answered=True)))
        await asyncio.to_thread(phone.answer, 180, 10)
        await wait_for(lambda: gateway.rooms.participant("cancel", "sip_busy"), 5, "ringing participant")
        await asyncio.sleep(0.3)
        await gateway.rooms.remove_participant("cancel", "sip_busy")
        await asyncio.to_thread(phone.wait_state, "DISCONNECTED", 5)  # CANCEL, long before ringing_timeout
        with pytest.raises(TelephonyError) as err:
            await dial
        assert err.value.meta.get("sip_status_code") == "487"
