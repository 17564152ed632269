"""Late offer (RFC 3261 §13.2.1): an INVITE without SDP, our offer in the 200, the answer in the ACK.

Real peers: SIPp calls roomtone without SDP (as Cisco CUBE's "delayed offer" does) and answers in
its ACK, then plays RFC 4733 digits from a pcap and sends INFO digits; with ``-rtp_echo`` SIPp
returns roomtone's own RTP, which proves roomtone sends to the address the ACK's answer gave.
An ACK without SDP must end the call with a BYE carrying a Reason header. Two roomtone UAs on
loopback cover the same failure from the other side and a body-less re-INVITE.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from roomtone.media.call import CallOptions, MediaCall, answer_call, place_call
from roomtone.media.engine import MediaEngine
from roomtone.media.ports import PortAllocator
from roomtone.sip import sdp as sdp_mod
from roomtone.sip.ua import Call, CallState, UserAgent
from tests.pcaps import rfc4733_pcap
from tests.phones.sipp import OK_TO_LAST, sipp

pytestmark = pytest.mark.interop

_HDRS = """Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}
Call-ID: [call_id]
CSeq: {cseq}
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70"""

_ANSWER = """v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=sipp
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a={direction}
"""


def _req(method: str, cseq: str, body: str = "", uri: str = "[next_url]", tagged: bool = True,
         retrans: bool = True) -> str:
    head = _HDRS.format(to_tag="[peer_tag_param]" if tagged else "", cseq=cseq)
    ctype = "Content-Type: application/sdp\n" if body else ""
    attr = ' retrans="500"' if retrans else ""
    return (f"  <send{attr}><![CDATA[\n{method} {uri} SIP/2.0\n{head}\n{ctype}Content-Length: [len]\n\n"
            f"{body}]]></send>\n")


def _ok_for_last() -> str:
    return OK_TO_LAST


def late_offer_uac(*, ack_answer: bool = True, pcap: str | None = None, info: str = "", hold_ms: int = 500,
                   reinvite_without_sdp: bool = False) -> str:
    """SIPp calls without SDP; checks our offer in the 200; answers in the ACK (or not)."""
    parts = ['<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="late offer uac">\n',
             _req("INVITE", "1 INVITE", uri="sip:[service]@[remote_ip]:[remote_port]", tagged=False),
             '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n',
             '  <recv response="200" rtd="true" rrs="true">\n'
             '    <action><ereg regexp="m=audio [0-9]+ RTP/AVP 0 8 9 101" search_in="body" check_it="true" '
             'assign_to="offer"/></action>\n  </recv>\n',
             _req("ACK", "1 ACK", _ANSWER.format(direction="sendrecv") if ack_answer else "", retrans=False)]
    if not ack_answer:
        parts.append('  <recv request="BYE">\n    <action><ereg regexp="SIP ;cause=488 ;text=.ACK carried no '
                     'SDP answer" search_in="hdr" header="Reason:" check_it="true" assign_to="why"/></action>\n'
                     '  </recv>\n')
        parts.append(_ok_for_last())
        parts.append('  <timewait milliseconds="300"/>\n  <Reference variables="offer,why"/>\n</scenario>\n')
        return "".join(parts)
    if pcap:
        parts.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n')
    cseq = 2
    for digit in info:
        parts.append(_req("INFO", f"{cseq} INFO").replace(
            "Content-Length: [len]", "Content-Type: application/dtmf-relay\nContent-Length: [len]").replace(
            "]]></send>", f"Signal={digit}\nDuration=160\n]]></send>"))
        parts.append('  <recv response="200"/>\n  <pause milliseconds="250"/>\n')
        cseq += 1
    if reinvite_without_sdp:
        # a session refresh without SDP: roomtone offers its media in the 200, SIPp holds it in the ACK
        parts.append(_req("INVITE", f"{cseq} INVITE"))
        parts.append('  <recv response="100" optional="true"/>\n'
                     '  <recv response="200">\n    <action><ereg regexp="a=sendrecv" search_in="body" '
                     'check_it="true" assign_to="reoffer"/></action>\n  </recv>\n')
        parts.append(_req("ACK", f"{cseq} ACK", _ANSWER.format(direction="sendonly"), retrans=False))
        cseq += 1
    parts.append(f'  <pause milliseconds="{hold_ms}"/>\n')
    parts.append(_req("BYE", f"{cseq} BYE"))
    refs = "offer,reoffer" if reinvite_without_sdp else "offer"
    parts.append(f'  <recv response="200" crlf="true"/>\n  <Reference variables="{refs}"/>\n</scenario>\n')
    return "".join(parts)


class Answerer:
    """roomtone answering every call with ``answer_call``; keeps each result (None = refused)."""

    def __init__(self, options: CallOptions | None = None) -> None:
        self.engine = MediaEngine("127.0.0.1", PortAllocator(26100, 26299))
        self.ua = UserAgent("127.0.0.1", 0, transports=("UDP",))
        self.options = options or CallOptions()
        self.results: asyncio.Queue[tuple[Call, MediaCall | None]] = asyncio.Queue()

    async def __aenter__(self) -> Answerer:
        await self.ua.start()

        async def on_invite(sip_call: Call) -> None:
            media = await answer_call(sip_call, self.engine, self.options)
            self.results.put_nowait((sip_call, media))

        self.ua.on_invite = on_invite
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ua.close()
        await self.engine.close()

    async def next(self, timeout: float = 15.0) -> tuple[Call, MediaCall | None]:
        return await asyncio.wait_for(self.results.get(), timeout)


async def wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)


async def test_sipp_late_offer_answer_in_ack_then_rfc4733_and_info_digits(tmp_path):
    pcap = str(tmp_path / "events.pcap")
    length = rfc4733_pcap(pcap, "37#")
    async with Answerer() as rt:
        with sipp(late_offer_uac(pcap=pcap, info="90", hold_ms=int(length * 1000) + 800),
                  f"127.0.0.1:{rt.ua.port}", timeout=30) as s:
            sip_call, call = await rt.next()
            assert call is not None, sip_call.end_reason
            assert sip_call.request.body == b"" and sip_call.ack is not None and sip_call.ack.body
            # the media follows the answer in SIPp's ACK
            assert call.negotiated.remote_port == s.media_port
            assert call.negotiated.codec.name == "PCMU" and call.telephone_event
            await wait_for(lambda: len(call.received) >= 5)
            result = await s.finished()
        assert result.ok, result.report()
    got = [(e.digit, e.method) for e in call.received]
    assert sorted(got) == sorted([("3", "rfc4733"), ("7", "rfc4733"), ("#", "rfc4733"),
                                  ("9", "info"), ("0", "info")]), got
    assert [d for d, m in got if m == "rfc4733"] == ["3", "7", "#"]
    assert [d for d, m in got if m == "info"] == ["9", "0"]


async def test_sipp_late_offer_rtp_flows_both_ways_via_echo():
    """SIPp echoes what it receives: our RFC 4733 digits come back only if we send where the ACK said."""
    async with Answerer() as rt:
        with sipp(late_offer_uac(hold_ms=4000), f"127.0.0.1:{rt.ua.port}", timeout=30,
                  extra=("-rtp_echo",)) as s:
            sip_call, call = await rt.next()
            assert call is not None, sip_call.end_reason
            sent = await call.send_dtmf("159", method="rfc4733", tone_ms=100, gap_ms=100)
            assert sent.method == "rfc4733"
            await wait_for(lambda: len(call.received) >= 3, 5)
            assert call.stream.session.stats.rtp_received > 0
            result = await s.finished()
        assert result.ok, result.report()
    assert [(e.digit, e.method) for e in call.received] == [("1", "rfc4733"), ("5", "rfc4733"), ("9", "rfc4733")]


async def test_sipp_ack_without_answer_gets_bye_with_reason(caplog):
    caplog.set_level(logging.INFO, logger="roomtone.media.call")
    async with Answerer() as rt:
        with sipp(late_offer_uac(ack_answer=False), f"127.0.0.1:{rt.ua.port}", timeout=20) as s:
            sip_call, call = await rt.next()
            assert call is None
            assert sip_call.ended and "no SDP answer" in (sip_call.end_reason or "")
            result = await s.finished()
        assert result.ok, result.report()  # SIPp checked the Reason header of our BYE
    assert any("ACK carried no SDP answer" in r.getMessage() and "hanging up" in r.getMessage()
               for r in caplog.records)
    assert not rt.engine.streams  # the media port was released


async def test_sipp_reinvite_without_sdp_gets_offer_answer_in_ack_followed():
    async with Answerer() as rt:
        with sipp(late_offer_uac(reinvite_without_sdp=True, hold_ms=800), f"127.0.0.1:{rt.ua.port}",
                  timeout=30) as s:
            sip_call, call = await rt.next()
            assert call is not None
            assert call.negotiated.direction == "sendrecv"
            # SIPp's ACK answers sendonly: it holds us, so we only receive
            await wait_for(lambda: call.negotiated.direction != "sendrecv", 10)
            assert call.negotiated.direction == "recvonly"
            assert not call.stream.session.send_enabled
            assert not call.ended
            result = await s.finished()
        assert result.ok, result.report()


# ---------------------------------------------------------------------------- roomtone <-> roomtone

class _Peers:
    async def __aenter__(self) -> _Peers:
        self.engine = MediaEngine("127.0.0.1", PortAllocator(26300, 26399))
        self.caller = UserAgent("127.0.0.1", 0, transports=("UDP",), user="alice")
        self.callee = Answerer()
        await self.caller.start()
        await self.callee.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.caller.close()
        await self.callee.__aexit__()
        await self.engine.close()

    @property
    def uri(self) -> str:
        return f"sip:bob@127.0.0.1:{self.callee.ua.port}"


async def test_ua_invite_without_sdp_and_ack_without_answer_is_hung_up():
    """Our UA as the caller sends no SDP and ACKs without a body: the callee offers, then BYEs."""
    async with _Peers() as p:
        call = await p.caller.invite(p.uri, b"")
        resp = await call.wait_answered()
        offer = sdp_mod.parse_sdp(resp.body)
        assert not isinstance(offer, sdp_mod.SdpError) and offer.media[0].port > 0
        sip_call, media = await p.callee.next()
        assert media is None and sip_call.ended
        await asyncio.wait_for(call.wait_ended(), 5)
        assert call.end_reason == "remote BYE"


async def test_reinvite_without_sdp_and_ack_without_answer_ends_the_call(caplog):
    caplog.set_level(logging.INFO, logger="roomtone.media.call")
    async with _Peers() as p:
        caller = await place_call(p.caller, p.engine, p.uri)
        _, callee = await p.callee.next()
        assert callee is not None
        before = callee.sip.local_body
        resp = await caller.sip.reinvite(b"")  # our UA sends no offer; its ACK carries no answer
        assert resp.status == 200
        reoffer = sdp_mod.parse_sdp(resp.body)
        assert not isinstance(reoffer, sdp_mod.SdpError)
        # a fresh offer: every codec we support and telephone-event, a newer o= version
        assert reoffer.media[0].formats == ["0", "8", "9", "101"]
        assert resp.body != before
        await asyncio.wait_for(callee.wait_ended(), 5)
        await asyncio.wait_for(caller.wait_ended(), 5)
        assert caller.end_reason == "remote BYE"
        assert callee.sip.state is CallState.ENDED and callee.stream.closed
    assert any("re-INVITE late offer" in r.getMessage() for r in caplog.records)


def _uas_in_dialog(method: str, cseq: str, body: str = "", retrans: bool = True) -> str:
    ctype = "Content-Type: application/sdp\n" if body else ""
    attr = ' retrans="500"' if retrans else ""
    return f"""  <send{attr}><![CDATA[
{method} [$remote_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[service]@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
To:[$remote_from]
Call-ID: [call_id]
CSeq: {cseq}
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
{ctype}Content-Length: [len]

{body}]]></send>
"""


#: SIPp answers roomtone's call, then refreshes the session with a re-INVITE without SDP; its ACK
#: answers roomtone's offer with media moved to [media_port+2]; then SIPp hangs up.
UAS_REINVITE_WITHOUT_SDP = ("""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uas re-INVITE without SDP">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" assign_to="remote_contact"/>
    </action>
  </recv>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

""" + _ANSWER.format(direction="sendrecv") + """]]></send>
  <recv request="ACK" crlf="true"/>
  <pause milliseconds="300"/>
""" + _uas_in_dialog("INVITE", "2 INVITE") + """  <recv response="100" optional="true"/>
  <recv response="200">
    <action><ereg regexp="m=audio [0-9]+ RTP/AVP 0 8 9 101" search_in="body" check_it="true"
                  assign_to="reoffer"/></action>
  </recv>
""" + _uas_in_dialog("ACK", "2 ACK", _ANSWER.format(direction="sendrecv").replace("[media_port]", "[media_port+2]"),
                     retrans=False) + """  <pause milliseconds="1000"/>
""" + _uas_in_dialog("BYE", "3 BYE") + """  <recv response="200" crlf="true"/>
  <Reference variables="remote_from,remote_contact,reoffer"/>
</scenario>
""")


async def test_sipp_uas_reinvite_without_sdp_on_our_outbound_call_moves_media():
    engine = MediaEngine("127.0.0.1", PortAllocator(26300, 26399))
    ua = UserAgent("127.0.0.1", 0, transports=("UDP",), user="alice")
    await ua.start()
    try:
        with sipp(UAS_REINVITE_WITHOUT_SDP, timeout=30) as s:
            call = await place_call(ua, engine, s.uri)
            assert call.negotiated.remote_port == s.media_port
            await wait_for(lambda: call.negotiated.remote_port != s.media_port, 10)
            assert call.negotiated.remote_port == s.media_port + 2
            assert call.stream.session.remote == ("127.0.0.1", s.media_port + 2)
            assert call.negotiated.direction == "sendrecv" and not call.ended
            await asyncio.wait_for(call.wait_ended(), 10)
            assert call.end_reason == "remote BYE"
            result = await s.finished()
        assert result.ok, result.report()
    finally:
        await ua.close()
        await engine.close()
