"""A phone that sends garbage gets clear SIP errors, and the room and other calls keep working.

SIPp sends an INVITE with a broken SDP, then a call with a malformed DTMF INFO body between two
good ones; a pjsua2 phone in the same room keeps relaying digits throughout.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from livekit.protocol import sip as sip_pb

from roomtone.telephony.gateway import SipGateway
from tests.phones.pjsua import pjsua_phone
from tests.phones.sipp import PCMU_SDP, run_sipp

from .conftest import listen, wait_for

pytestmark = pytest.mark.interop

_HEAD = """Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}
Call-ID: [call_id]
CSeq: {cseq}
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
"""

BAD_SDP = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bad sdp">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{_HEAD.format(to_tag="", cseq="1 INVITE")}Content-Type: application/sdp
Content-Length: [len]

v=0
this is not sdp
m=audio nonsense
]]></send>
  <recv response="100" optional="true"/>
  <recv response="400"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0

]]></send>
</scenario>
"""


def _info(cseq: int, body: str, expect: int) -> str:
    return f"""  <send retrans="500"><![CDATA[
INFO [next_url] SIP/2.0
{_HEAD.format(to_tag="[peer_tag_param]", cseq=f"{cseq} INFO")}Content-Type: application/dtmf-relay
Content-Length: [len]

{body}
]]></send>
  <recv response="{expect}"/>
"""


BAD_INFO = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bad info">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{_HEAD.format(to_tag="", cseq="1 INVITE")}Content-Type: application/sdp
Content-Length: [len]

{PCMU_SDP}]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
{_HEAD.format(to_tag="[peer_tag_param]", cseq="1 ACK")}Content-Length: 0

]]></send>
{_info(2, "Signal=5" + chr(10) + "Duration=160", 200)}
{_info(3, "Signal=Z" + chr(10) + "Duration=abc", 400)}
{_info(4, "Signal=6" + chr(10) + "Duration=160", 200)}
  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
{_HEAD.format(to_tag="[peer_tag_param]", cseq="5 BYE")}Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""


async def test_garbage_gets_sip_errors_and_the_room_keeps_working(gateway: SipGateway) -> None:
    await gateway.store.put_inbound_trunk(sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_g", numbers=["+15550100"]))
    await gateway.store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_g",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name="g"))))
    agent = await listen(gateway.rooms, "g")
    remote = f"127.0.0.1:{gateway.port}"
    with pjsua_phone(user="15550042") as good:
        await asyncio.to_thread(good.call, f"sip:+15550100@{remote}")
        await asyncio.to_thread(good.wait_state, "CONFIRMED", 10)
        await wait_for(lambda: gateway.rooms.participant("g", "sip_15550042"), 10, "good phone joined")

        bad_sdp = await asyncio.to_thread(run_sipp, BAD_SDP, remote, service="+15550100", timeout=15)
        assert bad_sdp.ok, bad_sdp.report()
        assert "SIP/2.0 400 Bad SDP" in bad_sdp.messages, bad_sdp.report()

        bad_info = await asyncio.to_thread(run_sipp, BAD_INFO, remote, service="+15550100", timeout=20)
        assert bad_info.ok, bad_info.report()
        assert re.search(r"SIP/2.0 400 [^\n]*'Z'", bad_info.messages), bad_info.report()  # names the culprit
        # the SIPp caller's good digits reached the room; the broken one did not
        await wait_for(lambda: [d for i, d, _ in agent.dtmf() if i == "sip_sipp"] == ["5", "6"], 5, "SIPp digits")

        # the good phone still relays both ways
        await asyncio.to_thread(good.send_dtmf, "42", "rfc4733", 120)
        await wait_for(lambda: [d for i, d, _ in agent.dtmf() if i == "sip_15550042"] == ["4", "2"], 10, "good digits")
        agent.participant.publish_dtmf(7)
        got = await asyncio.to_thread(good.wait_digits, 1, 10)
        assert got[-1]["digit"] == "7"
        await asyncio.to_thread(good.hangup)
    await wait_for(lambda: gateway.calls == {}, 10, "calls cleared")


WITH_HEADER = BAD_INFO.replace("Content-Type: application/sdp\n", "X-Customer-Id: cust-42\nContent-Type: application/sdp\n", 1)


async def test_headers_to_attributes(gateway: SipGateway) -> None:
    trunk = sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_h", numbers=["+15550100"])
    trunk.headers_to_attributes["X-Customer-Id"] = "customer"
    await gateway.store.put_inbound_trunk(trunk)
    await gateway.store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_h",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name="h"))))
    seen: list[dict[str, str]] = []

    def on_participants(infos):  # type: ignore[no-untyped-def]
        seen.extend(dict(i.attributes) for i in infos if i.identity == "sip_sipp")

    from roomtone.rooms import CallbackEndpoint

    await gateway.rooms.join("h", "agent", endpoint=CallbackEndpoint(on_participants=on_participants))
    result = await asyncio.to_thread(run_sipp, WITH_HEADER, f"127.0.0.1:{gateway.port}", service="+15550100", timeout=20)
    assert result.ok, result.report()
    assert "X-Customer-Id: cust-42" in result.messages
    assert seen and seen[0]["customer"] == "cust-42" and seen[0]["sip.trunkID"] == "ST_h"
