"""Call control through the official livekit-api client and the roomtone CLI, against SIPp.

SIPp plays a SIP provider that demands digest authentication (its ``verifyauth`` action checks
our answer) and accepts SIP INFO digits; its message trace is what the assertions read.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator

import pytest
from livekit import api
from livekit.api.twirp_client import TwirpError

from roomtone.telephony.gateway import SipGateway
from tests.phones.sipp import PCMU_SDP, callee_response, sipp

from .conftest import api_server, wait_for, watch

pytestmark = pytest.mark.interop

KEY, SECRET = "APIcalls", "calls-secret-0123456789abcdefghijkl"

_SDP = PCMU_SDP

_REPLY = """SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
{extra}Content-Length: 0

"""

PROVIDER = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="provider with digest">
  <recv request="INVITE"/>
  <send><![CDATA[
{_REPLY.format(status="401 Unauthorized", extra='WWW-Authenticate: Digest realm="provider", nonce="n0nce4roomtone", algorithm=MD5' + chr(10))}]]></send>
  <recv request="ACK"/>
  <recv request="INVITE">
    <action>
      <verifyauth assign_to="authvalid" username="trunkuser" password="s3cret"/>
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="10"/>
  <send><![CDATA[
{_REPLY.format(status="403 Forbidden", extra="")}]]></send>
  <recv request="ACK" next="99"/>
  <label id="10"/>
  <send><![CDATA[
{_REPLY.format(status="180 Ringing", extra="Contact: <sip:sipp@[local_ip]:[local_port]>" + chr(10))}]]></send>
{callee_response("200 OK", body=_SDP, retrans=True)}  <recv request="ACK"/>
  <label id="20"/>
  <recv request="INFO" optional="true" next="30"/>
  <recv request="BYE" next="40"/>
  <label id="30"/>
  <send><![CDATA[
{_REPLY.format(status="200 OK", extra="")}]]></send>
  <nop hide="true" next="20"/>
  <label id="40"/>
  <send><![CDATA[
{_REPLY.format(status="200 OK", extra="")}]]></send>
  <label id="99"/>
</scenario>
"""


@pytest.fixture
async def api_url(gateway: SipGateway) -> AsyncIterator[str]:
    async with api_server(gateway, KEY, SECRET) as url:
        yield url


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roomtone.cli", "api", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_create_sip_participant_with_digest_then_cli_send_dtmf_and_remove(gateway: SipGateway, api_url: str) -> None:
    with sipp(PROVIDER, timeout=60) as provider:
        async with api.LiveKitAPI(api_url, KEY, SECRET) as lk:
            trunk = await lk.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=api.SIPOutboundTrunkInfo(
                name="provider", address=f"127.0.0.1:{provider.port}", numbers=["+15550999"],
                auth_username="trunkuser", auth_password="s3cret",
                metadata='{"roomtone": {"dtmf_mode": "info"}}')))
            _, watcher = await watch(gateway.rooms, "calls")
            info = await lk.sip.create_sip_participant(api.CreateSIPParticipantRequest(
                sip_trunk_id=trunk.sip_trunk_id, sip_call_to="service", room_name="calls",
                participant_identity="provider-leg", wait_until_answered=True))
            assert info.participant_identity == "provider-leg" and info.room_name == "calls"
            p = await lk.room.get_participant(api.RoomParticipantIdentity(room="calls", identity="provider-leg"))
            assert p.kind == api.ParticipantInfo.SIP and p.attributes["sip.callStatus"] == "active"
            assert p.attributes["sip.callID"] == info.sip_call_id
            assert watcher.statuses == ["dialing", "ringing", "active"]

            code, out, err = await cli("send-dtmf", "--url", api_url, "--api-key", KEY, "--api-secret", SECRET,
                                       "--room", "calls", "--identity", "provider-leg", "--wait", "12#")
            assert code == 0, err
            assert '"method": "info"' in out and '"digits": "12#"' in out

            await lk.room.remove_participant(api.RoomParticipantIdentity(room="calls", identity="provider-leg"))
            result = await asyncio.to_thread(provider.wait, 30)
    assert result.ok, result.report()
    signals = re.findall(r"Signal=(\S+)", result.messages)
    assert signals == ["1", "2", "#"], result.report()
    assert "Authorization: Digest" in result.messages
    await wait_for(lambda: gateway.calls == {}, 5, "call forgotten")
    # removed participants are gone (no status update after removal); the BYE above ended the call
    assert gateway.rooms.participant("calls", "provider-leg") is None


async def test_wrong_trunk_password_is_a_clear_error(gateway: SipGateway, api_url: str) -> None:
    with sipp(PROVIDER, timeout=30) as provider:
        async with api.LiveKitAPI(api_url, KEY, SECRET) as lk:
            trunk = await lk.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=api.SIPOutboundTrunkInfo(
                address=f"127.0.0.1:{provider.port}", numbers=["+15550999"],
                auth_username="trunkuser", auth_password="wrong")))
            with pytest.raises(TwirpError) as err:
                await lk.sip.create_sip_participant(api.CreateSIPParticipantRequest(
                    sip_trunk_id=trunk.sip_trunk_id, sip_call_to="service", room_name="calls",
                    wait_until_answered=True))
            assert err.value.code == "permission_denied"
            assert err.value.metadata.get("sip_status_code") == "403"
            # SendDTMF for someone who is not there
            code, _, errtext = await cli("send-dtmf", "--url", api_url, "--api-key", KEY, "--api-secret", SECRET,
                                         "--room", "calls", "--identity", "nobody", "1")
            assert code == 1 and "not_found" in errtext
        result = await asyncio.to_thread(provider.wait, 20)
    assert result.ok, result.report()


async def test_transfer_sip_participant_by_refer(gateway: SipGateway, api_url: str) -> None:
    from livekit.protocol import sip as sip_pb

    from tests.phones.pjsua import pjsua_phone

    await gateway.store.put_inbound_trunk(sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_t", numbers=["+15550100"]))
    await gateway.store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_t",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name="xfer"))))
    with pjsua_phone(user="15550777") as caller, pjsua_phone(user="desk", auto_answer=True) as desk:
        await asyncio.to_thread(caller.call, f"sip:+15550100@127.0.0.1:{gateway.port}")
        await asyncio.to_thread(caller.wait_state, "CONFIRMED", 10)
        await wait_for(lambda: gateway.rooms.participant("xfer", "sip_15550777"), 10, "caller joined")
        async with api.LiveKitAPI(api_url, KEY, SECRET) as lk:
            await lk.sip.transfer_sip_participant(api.TransferSIPParticipantRequest(
                room_name="xfer", participant_identity="sip_15550777", transfer_to=desk.uri))
            with pytest.raises(TwirpError) as err:  # nobody left to transfer
                await lk.sip.transfer_sip_participant(api.TransferSIPParticipantRequest(
                    room_name="xfer", participant_identity="sip_15550777", transfer_to=desk.uri))
            assert err.value.code == "not_found"
        # the caller's phone followed the REFER and called the desk
        incoming = await asyncio.to_thread(desk.wait_event, "incoming", 10)
        assert "15550777" in incoming["remote_uri"]
        await wait_for(lambda: gateway.rooms.participant("xfer", "sip_15550777") is None, 10, "participant left")
