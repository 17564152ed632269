"""SIP INFO DTMF from the caller inside the early dialog (RFC 6086 §4.2 allows INFO once a
provisional response has created it): with the trunk option ``early_media`` the gateway answers
183 + SDP and collects the PIN or relays key presses before the 200. INFO digits then count like
RFC 4733 ones: into the PIN collector, or published once to the room with the canonical digit; a
broken body gets a 400 naming the problem and the call goes on.

The phone is SIPp: after the 183 it sends INFO ``application/dtmf-relay`` and ``application/dtmf``
requests in the early dialog (To tag from the 183) and checks each answer's status and reason.
"""

from __future__ import annotations

import logging
import re

import pytest

from roomtone.rooms import CallbackEndpoint, Permission
from roomtone.telephony.gateway import SipGateway
from tests.phones.sipp import CALLER_ACK, Sipp, caller_invite, caller_request

from .conftest import Listener, wait_for
from .test_early_media_inbound import setup

pytestmark = pytest.mark.interop

RELAY, DTMF = "application/dtmf-relay", "application/dtmf"


def info(cseq: int, content_type: str, body: str, status: int = 200, reason: str = "") -> str:
    """An early-dialog INFO and the answer SIPp insists on (``reason``: a regexp the status line
    must match; SIPp fails the call otherwise)."""
    check = ""
    if reason:
        check = (f'\n    <action><ereg regexp="^SIP/2.0 {status} {reason}" search_in="msg" check_it="true"'
                 f' assign_to="r{cseq}"/></action>\n  ')
    return (caller_request("INFO", cseq, content_type=content_type, body=body)
            + f'  <recv response="{status}">{check}</recv>\n')


def caller(infos: list[str]) -> str:
    """INVITE; the 183 (whose Allow must list INFO: callers read it before sending INFO);
    ``infos`` in the early dialog; then the 200 (whenever the room answers), ACK and BYE."""
    cseq = 2 + sum(i.count(" INFO\n") for i in infos)
    body = f"""{caller_invite()}  <recv response="100" optional="true"/>
  <recv response="183">
    <action><ereg regexp="Allow:[ A-Z,]*INFO" search_in="msg" check_it="true" assign_to="allow"/></action>
  </recv>
  <pause milliseconds="300"/>
{"".join(infos)}  <recv response="183" optional="true"/>
  <recv response="200"/>
{CALLER_ACK}{caller_request("BYE", cseq)}  <recv response="200"/>
"""
    names = ",".join(re.findall(r'assign_to="(\w+)"', body))
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller sending INFO digits in the early dialog">
{body}  <Reference variables="{names}"/>
</scenario>
"""


async def test_pin_entered_by_info_during_early_media(gw: SipGateway, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """``4`` by dtmf-relay, a broken body (400, call unharmed), ``3`` by application/dtmf, ``#``
    by dtmf-relay: the PIN 43 is accepted while the call is still unanswered."""
    await setup(gw, "vault", pin="43")
    scenario = caller([
        info(2, RELAY, "Signal=4\nDuration=120\n"),
        info(3, RELAY, "Signal=Q\nDuration=120\n", status=400, reason="unknown DTMF signal 'Q'"),
        info(4, DTMF, "3\n"),
        info(5, RELAY, "Signal=#\nDuration=120\n"),
    ])
    caplog.set_level(logging.INFO, logger="roomtone.media.call")
    proc = Sipp(scenario, f"127.0.0.1:{gw.port}", service="+15550100", timeout=30)
    try:
        sip = await wait_for(lambda: gw.rooms.participant("vault", "sip_15550123"), 20, "PIN accepted, caller joined")
        assert sip.record.attributes["sip.callStatus"] == "ringing"
        (active,) = gw.calls.values()
        assert active.media is not None and active.media.state == "early"
        assert [(ev.digit, ev.method) for ev in active.media.received] == [("4", "info"), ("3", "info"), ("#", "info")]
        agent = await gw.rooms.join("vault", "agent", endpoint=CallbackEndpoint())
        result = await proc.finished(20)
    finally:
        proc.close()
    assert result.ok, result.report()
    assert any("refusing INFO (400)" in r.getMessage() and "'Q'" in r.getMessage() for r in caplog.records)
    await wait_for(lambda: not gw.calls, 5, "call ended")
    await agent.leave()


async def test_info_digits_in_early_media_reach_the_room_once(gw: SipGateway) -> None:  # noqa: F811
    """Without a PIN the caller joins ``ringing``; INFO digits pressed then are published once
    each as ``sip_dtmf`` with the canonical digit (``a`` -> ``A``, code ``11`` -> ``#``), as
    RFC 4733 ones are. A hidden observer listens without releasing the 200."""
    await setup(gw, "desk")
    packets: list = []
    observer = await gw.rooms.join("desk", "observer", endpoint=CallbackEndpoint(on_data=packets.append),
                                   permission=Permission(hidden=True))
    listener = Listener(observer, packets)
    scenario = caller([
        info(2, RELAY, "Signal=a\nDuration=100\n"),  # lowercase: canonical A
        info(3, DTMF, "11\n"),
        info(4, RELAY, "Duration=100\n", status=400, reason="dtmf-relay body has no Signal line"),
        info(5, DTMF, "7\n"),
    ])
    proc = Sipp(scenario, f"127.0.0.1:{gw.port}", service="+15550100", timeout=30)
    try:
        await wait_for(lambda: len(listener.dtmf()) >= 3, 20, "three digits in the room")
        (active,) = gw.calls.values()
        assert active.media is not None and active.media.state == "early"
        sip = gw.rooms.participant("desk", "sip_15550123")
        assert sip is not None and sip.record.attributes["sip.callStatus"] == "ringing"
        agent = await gw.rooms.join("desk", "agent", endpoint=CallbackEndpoint())
        result = await proc.finished(20)
    finally:
        proc.close()
    assert result.ok, result.report()
    assert listener.dtmf() == [("sip_15550123", "A", 12), ("sip_15550123", "#", 11), ("sip_15550123", "7", 7)]
    details = listener.details()
    assert [(d["digit"], d["method"]) for d in details] == [("A", "info"), ("#", "info"), ("7", "info")]
    assert details[0]["duration_ms"] == 100  # the INFO's own Duration
    await wait_for(lambda: not gw.calls, 5, "call ended")
    await agent.leave()
    await observer.leave()

