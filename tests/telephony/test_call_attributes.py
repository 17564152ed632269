"""The attributes naming the SIP call (``sip.callIDFull``, ``sip.callTag``, ``sip.hostname``) on
inbound and outbound SIP participants, as LiveKit sets them.

The expected values come from SIPp's own message trace (what crossed the wire), not from
roomtone: inbound, the Call-ID, From tag and From host of the INVITE SIPp sent; outbound, the
Call-ID of the INVITE SIPp received and the To tag of the 200 OK SIPp answered with. The room
side is read with the official ``livekit-api`` client.
"""

from __future__ import annotations

import re

import pytest
from livekit import api
from livekit.protocol import sip as sip_pb

from roomtone.telephony import matching
from roomtone.telephony.gateway import SipGateway
from roomtone.telephony.outbound import plan_outbound_call
from tests.phones.sipp import Sipp, header, sipp

from .conftest import wait_for
from .test_headers import (  # noqa: F401  (the api_url fixture)
    KEY,
    SECRET,
    api_url,
    callee_scenario,
    caller_scenario,
    ringing_callee_scenario,
)

pytestmark = pytest.mark.interop


def tag(name_addr: str) -> str:
    match = re.search(r";\s*tag=([^;>\s]+)", name_addr)
    assert match, f"no tag in {name_addr!r}"
    return match.group(1)


async def test_inbound_call_attributes_match_the_callers_invite(gw: SipGateway, api_url: str) -> None:  # noqa: F811
    await gw.store.put_inbound_trunk(sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_attr", numbers=["+15550100"]))
    await gw.store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_attr",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name="attrs"))))
    # the caller checks that our 200 and BYE carry its dialog (its From tag) back
    scenario = caller_scenario(invite_headers="", ok_present=["From: [^\n]*;tag=[0-9]+SIPpTag00"],
                               bye_present=["To: [^\n]*;tag=[0-9]+SIPpTag00"])
    proc = Sipp(scenario, f"127.0.0.1:{gw.port}", service="+15550100", timeout=30)
    try:
        await wait_for(lambda: gw.rooms.participant("attrs", "sip_15550123"), 10, "caller joined")
        async with api.LiveKitAPI(api_url, KEY, SECRET) as lk:
            p = await lk.room.get_participant(api.RoomParticipantIdentity(room="attrs", identity="sip_15550123"))
            attrs = dict(p.attributes)
            await lk.room.remove_participant(api.RoomParticipantIdentity(room="attrs", identity="sip_15550123"))
        result = await proc.finished(20)
    finally:
        proc.close()
    assert result.ok, result.report()
    (invite,) = result.logged("sent", "INVITE")
    from_ = header(invite, "From")
    assert attrs["sip.callIDFull"] == header(invite, "Call-ID") != ""
    assert attrs["sip.callTag"] == tag(from_)
    assert attrs["sip.hostname"] == re.search(r"<sip:[^@>]+@([^:;>]+)", from_).group(1)  # type: ignore[union-attr]
    assert attrs["sip.callID"].startswith("SCL_") and attrs["sip.callID"] != attrs["sip.callIDFull"]


async def test_outbound_call_attributes_match_the_callees_dialog(gw: SipGateway, api_url: str) -> None:  # noqa: F811
    scenario = callee_scenario(invite_present=["Call-ID: "], invite_absent=[], ok_headers="",
                               bye_present=["To: [^\n]*;tag="])
    with sipp(scenario, timeout=30) as callee:
        address = f"127.0.0.1:{callee.port}"
        async with api.LiveKitAPI(api_url, KEY, SECRET) as lk:
            trunk = await lk.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(
                trunk=api.SIPOutboundTrunkInfo(address=address, numbers=["+15550999"])))
            await lk.sip.create_sip_participant(api.CreateSIPParticipantRequest(
                sip_trunk_id=trunk.sip_trunk_id, sip_call_to="service", room_name="out",
                participant_identity="callee", wait_until_answered=True))
            p = await lk.room.get_participant(api.RoomParticipantIdentity(room="out", identity="callee"))
            attrs = dict(p.attributes)
            await lk.room.remove_participant(api.RoomParticipantIdentity(room="out", identity="callee"))
        result = await callee.finished(20)
    assert result.ok, result.report()
    (invite,) = result.logged("received", "INVITE")
    ok = next(m for m in result.logged("sent", "SIP/2.0 200") if header(m, "CSeq").endswith("INVITE"))
    assert attrs["sip.callStatus"] == "active"
    assert attrs["sip.callIDFull"] == header(invite, "Call-ID") == header(ok, "Call-ID") != ""
    assert attrs["sip.callTag"] == tag(header(ok, "To"))
    assert attrs["sip.hostname"] == address  # the trunk address, as LiveKit
    await wait_for(lambda: not gw.calls, 5, "call forgotten")


async def test_outbound_call_id_is_known_while_ringing(gw: SipGateway, api_url: str) -> None:  # noqa: F811
    """The Call-ID is there from the first provisional response (LiveKit: only after the answer);
    the tag waits for the 200, which may come from another fork."""
    with sipp(ringing_callee_scenario(["Call-ID: "]), timeout=30) as callee:
        async with api.LiveKitAPI(api_url, KEY, SECRET) as lk:
            trunk = await lk.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(
                trunk=api.SIPOutboundTrunkInfo(address=f"127.0.0.1:{callee.port}", numbers=["+15550999"])))
            await lk.sip.create_sip_participant(api.CreateSIPParticipantRequest(
                sip_trunk_id=trunk.sip_trunk_id, sip_call_to="service", room_name="ring", participant_identity="callee"))
            sip = await wait_for(lambda: (p := gw.rooms.participant("ring", "callee")) is not None
                                 and "sip.callIDFull" in p.record.attributes and p, 10, "sip.callIDFull while ringing")
            ringing = dict(sip.record.attributes)
            await lk.room.remove_participant(api.RoomParticipantIdentity(room="ring", identity="callee"))  # CANCEL
        result = await callee.finished(20)
    assert result.ok, result.report()
    (invite,) = result.logged("received", "INVITE")
    assert ringing["sip.callIDFull"] == header(invite, "Call-ID") != ""
    assert "sip.callTag" not in ringing
    await wait_for(lambda: not gw.calls, 5, "call forgotten")


def test_hide_phone_number_leaves_out_the_hostname() -> None:
    """As ``sip.phoneNumber``: the caller's host can identify them (LiveKit rpc/sip.go)."""
    rule = sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_h", hide_phone_number=True,
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name="r")))
    kw = {"call_id": "SCL_1", "calling": "+15557777", "called": "+1", "calling_host": "carrier.example"}
    assert matching.ATTR_HOSTNAME not in matching.evaluate_dispatch_rule(None, rule, **kw).attributes
    rule.hide_phone_number = False
    assert matching.evaluate_dispatch_rule(None, rule, **kw).attributes[matching.ATTR_HOSTNAME] == "carrier.example"
    trunk = sip_pb.SIPOutboundTrunkInfo(sip_trunk_id="ST_o", address="sip.example.com:5080", numbers=["+1"])
    req = sip_pb.CreateSIPParticipantRequest(sip_trunk_id="ST_o", sip_call_to="+2", room_name="r")
    assert plan_outbound_call(req, trunk, call_id="SCL_2").hostname == "sip.example.com:5080"
    req.hide_phone_number = True
    assert plan_outbound_call(req, trunk, call_id="SCL_3").hostname == ""
