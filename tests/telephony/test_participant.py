"""The room half of the bridge on a real RoomManager; the phone leg records what it is asked to do.

End-to-end tests with real phones live in test_gateway.py; these pin down the room-side rules.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from livekit.protocol import models

from roomtone.rooms import CallbackEndpoint, RoomManager
from roomtone.telephony.participant import BridgeOptions, SipParticipant


class RecordingLeg:
    def __init__(self) -> None:
        self.call_id = "call-1"
        self.sent: list[tuple[str, str | None]] = []
        self.hung_up: list[str] = []

    async def send_dtmf(self, digits: str, method: str | None = None) -> Any:
        self.sent.append((digits, method))

    async def hangup(self) -> None:
        self.hung_up.append("hangup")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


async def test_phone_digits_pre_join_buffer_and_room_relay() -> None:
    rooms = RoomManager()
    seen: list[models.DataPacket] = []
    agent = await rooms.join("r", "agent", endpoint=CallbackEndpoint(on_data=seen.append))
    leg = RecordingLeg()
    bridge = SipParticipant(leg, rooms, call_id="SCL_1")
    # pressed during the PIN prompt, before joining
    bridge.phone_dtmf_start("5", 5, "rfc4733", 10.0, wall=100.0)
    bridge.phone_dtmf_end("5", 5, "rfc4733", 90, 10.0)
    bridge.phone_dtmf_end("#", 11, "info", 100, 11.0, wall=101.0)
    await bridge.join("r", "sip_+1", name="Phone +1", metadata="", attributes={"sip.callID": "SCL_1"})
    await settle()
    dtmf = [(p.participant_identity, p.sip_dtmf.digit) for p in seen if p.WhichOneof("value") == "sip_dtmf"]
    assert dtmf == [("sip_+1", "5"), ("sip_+1", "#")]
    details = [json.loads(p.user.payload) for p in seen if p.WhichOneof("value") == "user"]
    assert [(d["digit"], d["method"], d["duration_ms"], d["pre_join"]) for d in details] == [
        ("5", "rfc4733", 90, True), ("#", "info", 100, True)
    ]
    assert all(p.user.topic == "roomtone.dtmf" for p in seen if p.WhichOneof("value") == "user")

    # after joining: each press once, digit at start, detail at end
    seen.clear()
    bridge.phone_dtmf_start("A", 12, "inband", 20.0, wall=200.0)
    await settle()
    assert [p.sip_dtmf.digit for p in seen] == ["A"]
    bridge.phone_dtmf_end("A", 12, "inband", 150, 20.01)
    await settle()
    assert len(seen) == 2 and json.loads(seen[1].user.payload)["duration_ms"] == 150

    # room -> phone: from the agent yes (code-only works), to someone else no
    agent.publish_dtmf(3, "")
    agent.publish_packet(models.DataPacket(sip_dtmf=models.SipDTMF(code=1, digit="1"), destination_identities=["x"]))
    agent.publish_packet(models.DataPacket(sip_dtmf=models.SipDTMF(code=0, digit="12w#")))
    agent.publish_packet(models.DataPacket(sip_dtmf=models.SipDTMF(code=0, digit="Z")))  # refused, logged
    await settle()
    assert leg.sent == [("3", None), ("12w#", None)]

    info = await rooms.get_participant("r", "sip_+1")
    assert info.kind == models.ParticipantInfo.SIP and info.attributes["sip.callStatus"] == "active"

    # RemoveParticipant hangs up
    await rooms.remove_participant("r", "sip_+1")
    await settle()
    assert leg.hung_up == ["hangup"] and bridge.closed
    await rooms.close()


async def test_sip_to_sip_relay_is_off_unless_enabled_and_phone_hangup_leaves() -> None:
    rooms = RoomManager()
    leg_a, leg_b = RecordingLeg(), RecordingLeg()
    a = SipParticipant(leg_a, rooms, call_id="A")
    b = SipParticipant(leg_b, rooms, call_id="B", options=BridgeOptions(allow_sip_to_sip=True))
    await a.join("r", "sip_a", name="", metadata="", attributes={})
    await b.join("r", "sip_b", name="", metadata="", attributes={})
    a.phone_dtmf_start("1", 1, "rfc4733", 1.0)
    b.phone_dtmf_start("2", 2, "rfc4733", 1.0)
    await settle()
    assert leg_a.sent == [] and leg_b.sent == [("1", None)]

    await a.close("phone hung up", hangup=False)
    await settle()
    assert leg_a.hung_up == []
    assert [p.identity for p in await rooms.list_participants("r")] == ["sip_b"]
    await rooms.close()


class SlowLeg(RecordingLeg):
    """A phone whose DTMF sends never finish until released, like a long queue on a real call."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def send_dtmf(self, digits: str, method: str | None = None) -> Any:
        self.sent.append((digits, method))
        await self.release.wait()


async def test_room_cannot_queue_unbounded_dtmf_to_a_phone(caplog) -> None:  # type: ignore[no-untyped-def]
    from roomtone.telephony.participant import MAX_PENDING_SENDS, MAX_STEPS_PER_PACKET

    rooms = RoomManager()
    agent = await rooms.join("r", "agent", endpoint=CallbackEndpoint())
    leg = SlowLeg()
    bridge = SipParticipant(leg, rooms, call_id="SCL_2")
    await bridge.join("r", "sip_+2", name="", metadata="", attributes={})
    agent.publish_packet(models.DataPacket(sip_dtmf=models.SipDTMF(digit="1" * (MAX_STEPS_PER_PACKET + 1))))
    await settle()
    assert leg.sent == [] and "digits and pauses in one packet" in caplog.text
    for _ in range(MAX_PENDING_SENDS + 5):
        agent.publish_dtmf(7, "7")
    await settle()
    assert len(leg.sent) == MAX_PENDING_SENDS and "sends already queued" in caplog.text
    leg.release.set()  # the queue drains, and the phone takes digits again
    await settle()
    agent.publish_dtmf(8, "8")
    await settle()
    assert leg.sent[-1] == ("8", None)
    await bridge.close("test", hangup=False)
    await rooms.close()


async def test_the_room_can_enable_and_disable_sip_to_sip_relay() -> None:
    rooms = RoomManager()
    await rooms.create_room("conf", metadata=json.dumps({"roomtone": {"allow_sip_to_sip": True}}))
    leg_a, leg_b = RecordingLeg(), RecordingLeg()
    a = SipParticipant(leg_a, rooms, call_id="A")
    b = SipParticipant(leg_b, rooms, call_id="B")  # the trunk leaves it off
    await a.join("conf", "sip_a", name="", metadata="", attributes={})
    await b.join("conf", "sip_b", name="", metadata="", attributes={})
    a.phone_dtmf_start("1", 1, "rfc4733", 1.0)
    await settle()
    assert leg_b.sent == [("1", None)]

    await rooms.update_room_metadata("conf", "just a topic, not JSON")
    a.phone_dtmf_start("2", 2, "rfc4733", 2.0)
    await settle()
    assert leg_b.sent == [("1", None)]

    await rooms.update_room_metadata("conf", json.dumps({"roomtone": {"allow_sip_to_sip": True}, "topic": "x"}))
    b.phone_dtmf_start("3", 3, "rfc4733", 3.0)
    await settle()
    assert leg_a.sent == [("3", None)]
    await rooms.close()
