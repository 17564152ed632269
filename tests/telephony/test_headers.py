"""SIP headers <-> participant attributes, end to end with SIPp and the official livekit-api client.

SIPp is the carrier: its scenarios send X- headers (INVITE inbound, 200 OK outbound) and check,
with ``ereg ... check_it``, the headers roomtone sends (the INVITE, our 200 OK, the BYE); a check
that fails marks the SIPp call failed, which the test asserts on. The room side is read from the
room manager (the participant's attributes) and through livekit-api.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from html import escape

import pytest
from livekit import api
from livekit.api.twirp_client import TwirpError
from livekit.protocol import sip as sip_pb

from roomtone.telephony.gateway import SipGateway
from tests.phones.sipp import CALLER_ACK, PCMU_SDP, Sipp, callee_response, caller_invite, sipp

from .conftest import api_server, wait_for

pytestmark = pytest.mark.interop

KEY, SECRET = "APIheaders", "headers-secret-0123456789abcdefghij"

_SDP = PCMU_SDP


_VARS: list[str] = []


def _checks(present: list[str], absent: list[str] = ()) -> str:  # type: ignore[assignment]
    """SIPp actions failing the call unless each regexp of ``present`` matches the message and
    none of ``absent`` does. (SIPp refuses variables assigned and never read: :func:`_reference`.)"""
    lines = []
    for regexp, how in [(r, "check_it") for r in present] + [(r, "check_it_inverse") for r in absent]:
        var = f"v{len(_VARS)}"
        _VARS.append(var)
        lines.append(f'      <ereg regexp="{escape(regexp)}" search_in="msg" {how}="true" assign_to="{var}"/>')
    return "    <action>\n" + "\n".join(lines) + "\n    </action>\n"


def _reference() -> str:
    names = ",".join(_VARS)
    _VARS.clear()
    return f'  <Reference variables="{names}"/>\n'


def _ok(extra: str = "") -> str:
    return f"""SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
{extra}Content-Length: 0

"""


def callee_scenario(*, invite_present: list[str], invite_absent: list[str], ok_headers: str,
                    bye_present: list[str]) -> str:
    """A carrier answering our INVITE: checks its headers, answers 200 with ``ok_headers``, then
    checks the BYE roomtone sends."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee checking headers">
  <recv request="INVITE">
{_checks(invite_present, invite_absent)}  </recv>
{callee_response("200 OK", headers=ok_headers, body=_SDP, retrans=True)}  <recv request="ACK"/>
  <recv request="BYE">
{_checks(bye_present)}  </recv>
  <send><![CDATA[
{_ok()}]]></send>
  <timewait milliseconds="300"/>
{_reference()}</scenario>
"""


def caller_scenario(*, invite_headers: str, ok_present: list[str], bye_present: list[str],
                    refer_present: list[str] | None = None) -> str:
    """A carrier calling in with ``invite_headers``: checks our 200 OK, then (``refer_present``)
    a REFER we send, answered 202, then the BYE we send."""
    refer = "" if refer_present is None else f"""  <recv request="REFER">
{_checks(refer_present)}  </recv>
  <send><![CDATA[
{_ok().replace("200 OK", "202 Accepted")}]]></send>
"""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller sending headers">
{caller_invite(invite_headers)}  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200">
{_checks(ok_present)}  </recv>
{CALLER_ACK}{refer}  <recv request="BYE">
{_checks(bye_present)}  </recv>
  <send><![CDATA[
{_ok()}]]></send>
  <timewait milliseconds="300"/>
{_reference()}</scenario>
"""


@pytest.fixture
async def api_url(gw: SipGateway) -> AsyncIterator[str]:
    async with api_server(gw, KEY, SECRET) as url:
        yield url


async def test_outbound_headers_on_invite_200_ok_to_attributes_and_attributes_on_bye(
        gw: SipGateway, api_url: str) -> None:
    scenario = callee_scenario(
        invite_present=["X-Trunk: t1", "X-Shared: req", "X-Req: r-1", "X-Crm-Id: c-7", "User-Agent: acme-dialer"],
        invite_absent=["X-Shared: trunk", "User-Agent: roomtone"],
        ok_headers="X-Account: acct-9\nX-Callee-Info: hello\nX-Callee-Info: again\nP-Other: no\n",
        bye_present=["X-Crm-Id: c-8"],
    )
    with sipp(scenario, timeout=30) as callee:
        async with api.LiveKitAPI(api_url, KEY, SECRET) as lk:
            trunk = await lk.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=api.SIPOutboundTrunkInfo(
                name="carrier", address=f"127.0.0.1:{callee.port}", numbers=["+15550999"],
                headers={"X-Trunk": "t1", "X-Shared": "trunk"},
                headers_to_attributes={"x-account": "account"},
                attributes_to_headers={"crm.id": "X-Crm-Id"},
                include_headers=api.SIPHeaderOptions.SIP_X_HEADERS)))
            await lk.sip.create_sip_participant(api.CreateSIPParticipantRequest(
                sip_trunk_id=trunk.sip_trunk_id, sip_call_to="service", room_name="hdr",
                participant_identity="callee", participant_attributes={"crm.id": "c-7"},
                headers={"X-Shared": "req", "X-Req": "r-1", "User-Agent": "acme-dialer"},
                wait_until_answered=True))
            p = await lk.room.get_participant(api.RoomParticipantIdentity(room="hdr", identity="callee"))
            attrs = dict(p.attributes)
            assert attrs["sip.callStatus"] == "active"
            assert attrs["account"] == "acct-9"  # headers_to_attributes, any case
            assert attrs["sip.h.x-account"] == "acct-9" and attrs["sip.h.x-callee-info"] == "hello, again"
            assert not [k for k in attrs if k.startswith("sip.h.") and not k.startswith("sip.h.x-")], attrs
            # the attribute changes in the room; the BYE carries the value current then
            await lk.room.update_participant(api.UpdateParticipantRequest(
                room="hdr", identity="callee", attributes={"crm.id": "c-8"}))
            await lk.room.remove_participant(api.RoomParticipantIdentity(room="hdr", identity="callee"))
        result = await callee.finished(20)
    assert result.ok, result.report()
    await wait_for(lambda: not gw.calls, 5, "call forgotten")


@pytest.mark.parametrize("include", ["x", "all"])
async def test_inbound_headers_to_attributes_and_attributes_to_bye(gw: SipGateway, include: str) -> None:
    options = {"x": sip_pb.SIP_X_HEADERS, "all": sip_pb.SIP_ALL_HEADERS}[include]
    await gw.store.put_inbound_trunk(sip_pb.SIPInboundTrunkInfo(
        sip_trunk_id="ST_in", numbers=["+15550100"], include_headers=options,
        headers={"X-Served-By": "roomtone-test"},
        headers_to_attributes={"P-Asserted-Identity": "caller.pai", "x-customer-id": "customer"},
        attributes_to_headers={"customer": "X-Customer-Echo", "agent.note": "X-Agent-Note"}))
    await gw.store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_in",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name="inbound"))))
    scenario = caller_scenario(
        invite_headers=("X-Customer-Id: 42\nX-Tag: a\nX-Tag: b\n"
                        "P-Asserted-Identity: <sip:+15550123@carrier.example>\n"),
        ok_present=["X-Served-By: roomtone-test", "X-Customer-Echo: 42"],
        bye_present=["X-Customer-Echo: 42", "X-Agent-Note: vip"],
    )
    proc = Sipp(scenario, f"127.0.0.1:{gw.port}", service="+15550100", timeout=30)
    try:
        sip = await wait_for(lambda: gw.rooms.participant("inbound", "sip_15550123"), 10, "caller joined")
        attrs = dict(sip.record.attributes)
        assert attrs["customer"] == "42" and attrs["caller.pai"] == "<sip:+15550123@carrier.example>"
        assert attrs["sip.h.x-customer-id"] == "42" and attrs["sip.h.x-tag"] == "a, b"
        if include == "x":
            assert not [k for k in attrs if k.startswith("sip.h.") and not k.startswith("sip.h.x-")], attrs
        else:
            assert attrs["sip.h.p-asserted-identity"] == "<sip:+15550123@carrier.example>"
            assert attrs["sip.h.cseq"] == "1 INVITE" and "sip.h.from" in attrs and "sip.h.via" in attrs
        await sip.update(attributes={"agent.note": "vip"})
        await gw.rooms.remove_participant("inbound", "sip_15550123")
        result = await proc.finished(20)
    finally:
        proc.close()
    assert result.ok, result.report()


async def test_header_injection_and_reserved_headers_are_invalid_argument(gw: SipGateway, api_url: str) -> None:
    async with api.LiveKitAPI(api_url, KEY, SECRET) as lk:
        trunk = await lk.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=api.SIPOutboundTrunkInfo(
            address="127.0.0.1:9", numbers=["+15550999"], attributes_to_headers={"note": "X-Note"})))
        bad = [
            ({"headers": {"X-Evil": "a\r\nContact: <sip:attacker@example.com>"}}, "CR"),
            ({"headers": {"X-Evil": "a\nb"}}, "LF"),
            ({"headers": {"Contact": "<sip:x@example.com>"}}, "set by roomtone"),
            ({"headers": {"X Bad": "1"}}, "token"),
            ({"participant_attributes": {"note": "ok\r\nX-Injected: 1"}}, "CR"),
        ]
        for fields, words in bad:
            with pytest.raises(TwirpError) as err:
                await lk.sip.create_sip_participant(api.CreateSIPParticipantRequest(
                    sip_trunk_id=trunk.sip_trunk_id, sip_call_to="service", room_name="bad", **fields))
            assert err.value.code == "invalid_argument", (fields, err.value)
            assert words in err.value.message, (fields, err.value.message)
        for info in (api.SIPOutboundTrunkInfo(address="127.0.0.1:9", numbers=["+1"], headers={"X-A": "1\r\n2"}),
                     api.SIPOutboundTrunkInfo(address="127.0.0.1:9", numbers=["+1"],
                                              attributes_to_headers={"a": "Call-ID"})):
            with pytest.raises(TwirpError) as err:
                await lk.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=info))
            assert err.value.code == "invalid_argument", err.value
        with pytest.raises(TwirpError) as err:
            await lk.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(
                numbers=["+15550100"], headers={"X-Served-By": "a\rb"})))
        assert err.value.code == "invalid_argument" and "CR" in err.value.message
    # nothing was dialled, nobody joined
    assert not gw.calls and gw.rooms.participant("bad", "sip_service") is None


async def test_transfer_refer_carries_request_headers_and_mapped_attributes(gw: SipGateway, api_url: str) -> None:
    await gw.store.put_inbound_trunk(sip_pb.SIPInboundTrunkInfo(
        sip_trunk_id="ST_x", numbers=["+15550100"], attributes_to_headers={"crm.id": "X-Crm-Id"}))
    await gw.store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_x",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name="xfer")),
        attributes={"crm.id": "c-1"}))
    scenario = caller_scenario(
        invite_headers="", ok_present=[],
        refer_present=["Refer-To: <sip:desk@example.com>", "X-Transfer-Reason: after-hours", "X-Crm-Id: c-1"],
        bye_present=["X-Crm-Id: c-1"])
    proc = Sipp(scenario, f"127.0.0.1:{gw.port}", service="+15550100", timeout=30)
    try:
        await wait_for(lambda: gw.rooms.participant("xfer", "sip_15550123"), 10, "caller joined")
        async with api.LiveKitAPI(api_url, KEY, SECRET) as lk:
            with pytest.raises(TwirpError) as err:
                await lk.sip.transfer_sip_participant(api.TransferSIPParticipantRequest(
                    room_name="xfer", participant_identity="sip_15550123", transfer_to="sip:desk@example.com",
                    headers={"X-Transfer-Reason": "a\r\nBye: now"}))
            assert err.value.code == "invalid_argument" and "CR" in err.value.message
            await lk.sip.transfer_sip_participant(api.TransferSIPParticipantRequest(
                room_name="xfer", participant_identity="sip_15550123", transfer_to="sip:desk@example.com",
                headers={"X-Transfer-Reason": "after-hours"}))
        result = await proc.finished(20)
    finally:
        proc.close()
    assert result.ok, result.report()
    await wait_for(lambda: gw.rooms.participant("xfer", "sip_15550123") is None, 5, "participant left")


def ringing_callee_scenario(cancel_present: list[str]) -> str:
    """A callee that only rings: checks the CANCEL we send, 200 to it, 487 to the INVITE."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee checking the CANCEL">
  <recv request="INVITE"/>
{callee_response("180 Ringing")}  <recv request="CANCEL">
{_checks(cancel_present)}  </recv>
  <send><![CDATA[
{_ok()}]]></send>
  <send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [cseq] INVITE
Content-Length: 0

]]></send>
  <recv request="ACK"/>
  <timewait milliseconds="300"/>
{_reference()}</scenario>
"""


async def test_outbound_cancel_carries_attributes_to_headers(gw: SipGateway, api_url: str) -> None:
    with sipp(ringing_callee_scenario(["X-Crm-Id: c-2"]), timeout=30) as callee:
        async with api.LiveKitAPI(api_url, KEY, SECRET) as lk:
            trunk = await lk.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=api.SIPOutboundTrunkInfo(
                address=f"127.0.0.1:{callee.port}", numbers=["+15550999"], attributes_to_headers={"crm.id": "X-Crm-Id"})))
            await lk.sip.create_sip_participant(api.CreateSIPParticipantRequest(
                sip_trunk_id=trunk.sip_trunk_id, sip_call_to="service", room_name="ring",
                participant_identity="callee", participant_attributes={"crm.id": "c-1"}))
            await wait_for(lambda: (p := gw.rooms.participant("ring", "callee")) is not None
                           and p.record.attributes.get("sip.callStatus") == "ringing", 10, "ringing")
            await lk.room.update_participant(api.UpdateParticipantRequest(
                room="ring", identity="callee", attributes={"crm.id": "c-2"}))
            await lk.room.remove_participant(api.RoomParticipantIdentity(room="ring", identity="callee"))
        result = await callee.finished(20)
    assert result.ok, result.report()
    await wait_for(lambda: not gw.calls, 5, "call forgotten")
