"""Early media on outbound calls: SDP in a 183 starts media before the answer.

Real peers: a SIPp UAS answers 183 with SDP and plays an RFC 4733 or in-band pcap before its 200
(an IVR or announcement that answers with 183); with ``-rtp_echo`` it returns our own RTP, so
digits roomtone sends during early media come back. The 200 then repeats the answer, omits it,
or (another fork, another To-tag) answers differently: media follows the 200. Two roomtone UAs
on loopback send digits both ways during a 183 and keep the same call object through the 200.
"""

from __future__ import annotations

import asyncio

import pytest

from roomtone.dtmf.digits import parse_sequence
from roomtone.media.call import CallOptions, MediaCall, place_call
from roomtone.media.engine import MediaEngine
from roomtone.media.ports import PortAllocator
from roomtone.sip import sdp as sdp_mod
from roomtone.sip.ua import Call, CallState, UserAgent
from tests.pcaps import inband_pcap, rfc4733_pcap
from tests.phones.sipp import OK_TO_LAST, callee_response, sipp

pytestmark = pytest.mark.interop

_SDP = """v=0
o=sipp 1 {version} IN IP4 [local_ip]
s=sipp
c=IN IP4 [media_ip]
t=0 0
m=audio {port} RTP/AVP {pt} 101
a=rtpmap:{pt} {codec}/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
"""


def early_media_uas(*, pcap: str | None = None, early_ms: int = 1000, final: str = "same") -> str:
    """183 with SDP (PCMU on [media_port]), optional pcap, pause, then the 200:
    ``same`` answer, ``none`` (no SDP, same To-tag), or ``fork`` (another To-tag, PCMA, port+2)."""
    early_sdp = _SDP.format(version=1, port="[media_port]", pt=0, codec="PCMU")
    if final == "same":
        tag, body = "01", early_sdp
    elif final == "none":
        tag, body = "01", ""
    else:
        tag, body = "02", _SDP.format(version=1, port="[media_port+2]", pt=8, codec="PCMA")
    play = f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n' if pcap else ""
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="early media uas">\n'
            '  <recv request="INVITE" crlf="true"/>\n'
            + callee_response("183 Session Progress", body=early_sdp) + play
            + f'  <pause milliseconds="{early_ms}"/>\n'
            + callee_response("200 OK", body=body, retrans=True, tag=tag)
            + '  <recv request="ACK" crlf="true"/>\n  <recv request="BYE"/>\n'
            + OK_TO_LAST + """  <timewait milliseconds="300"/>
</scenario>
""")


class Caller:
    def __init__(self) -> None:
        self.engine = MediaEngine("127.0.0.1", PortAllocator(26400, 26599))
        self.ua = UserAgent("127.0.0.1", 0, transports=("UDP",), user="caller")

    async def __aenter__(self) -> Caller:
        await self.ua.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ua.close()
        await self.engine.close()


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("method", ["rfc4733", "inband"])
async def test_sipp_183_digits_arrive_before_the_answer(tmp_path, method):
    pcap = str(tmp_path / "early.pcap")
    length = (rfc4733_pcap if method == "rfc4733" else inband_pcap)(pcap, "4#7")
    heard: list[tuple[str, str, CallState]] = []
    early: list[MediaCall] = []
    provisional: list[int] = []

    def on_early(call: MediaCall) -> None:
        early.append(call)
        assert call.state == "early"
        call.on_dtmf = lambda ev: heard.append((ev.digit, ev.method, call.sip.state))

    async with Caller() as rt:
        with sipp(early_media_uas(pcap=pcap, early_ms=int(length * 1000) + 700), timeout=30) as s:
            call = await place_call(rt.ua, rt.engine, s.uri, on_early_media=on_early,
                                    on_provisional=lambda c, r: provisional.append(r.status))
            assert early == [call] and provisional == [183]
            assert call.state == "established"
            await call.hangup()
            result = await s.finished()
        assert result.ok, result.report()
    assert heard == [(d, method, CallState.EARLY) for d in "4#7"]


@pytest.mark.parametrize("final", ["same", "none", "fork"])
async def test_sipp_final_answer_is_followed(final):
    async with Caller() as rt:
        with sipp(early_media_uas(early_ms=600, final=final), timeout=30) as s:
            early: list[tuple[int, str]] = []
            call = await place_call(rt.ua, rt.engine, s.uri,
                                    on_early_media=lambda c: early.append((c.negotiated.remote_port,
                                                                           c.negotiated.codec.name)))
            assert early == [(s.media_port, "PCMU")]
            if final == "fork":
                assert (call.negotiated.remote_port, call.negotiated.codec.name) == (s.media_port + 2, "PCMA")
                assert call.stream.session.remote == ("127.0.0.1", s.media_port + 2)
                assert call.stream.session.codec.name == "PCMA"
                assert call.sip.dialog is not None and call.sip.dialog.remote_tag.endswith("SIPpTag021")
            else:
                assert (call.negotiated.remote_port, call.negotiated.codec.name) == (s.media_port, "PCMU")
            await call.hangup()
            result = await s.finished()
        assert result.ok, result.report()


async def test_sipp_roomtone_sends_rfc4733_during_183_echoed_back():
    """RFC 4733 needs only the media stream, so digits go out during early media (an IVR that
    answers with 183); SIPp echoes them. INFO is refused before the answer."""
    heard: list[tuple[str, CallState]] = []
    outcome: dict[str, object] = {}

    async def on_early(call: MediaCall) -> None:
        call.on_dtmf = lambda ev: heard.append((ev.digit, call.sip.state)) if ev.method == "rfc4733" else None
        try:
            await call.send_dtmf("1", method="info")
        except ValueError as exc:
            outcome["info"] = str(exc)
        outcome["auto"] = call.choose_method(parse_sequence("2"))
        outcome["sent"] = await call.send_dtmf("28", method="rfc4733", tone_ms=100, gap_ms=100)

    async with Caller() as rt:
        with sipp(early_media_uas(early_ms=2500), timeout=30, extra=("-rtp_echo",)) as s:
            call = await place_call(rt.ua, rt.engine, s.uri, on_early_media=on_early)
            await call.hangup()
            result = await s.finished()
        assert result.ok, result.report()
    assert "before the call is answered" in str(outcome["info"])
    assert outcome["auto"] == "rfc4733"
    assert heard == [("2", CallState.EARLY), ("8", CallState.EARLY)]


async def test_ua_to_ua_early_media_both_ways_then_same_answer():
    """Two roomtone UAs: the callee sends 183 with its answer, digits flow both ways, then 200."""
    callee_engine = MediaEngine("127.0.0.1", PortAllocator(26600, 26699))
    callee_ua = UserAgent("127.0.0.1", 0, transports=("UDP",), user="ivr")
    await callee_ua.start()
    got_callee: list[tuple[str, str]] = []
    ready = asyncio.Event()
    release = asyncio.Event()

    async def on_invite(sip_call: Call) -> None:
        offer = sdp_mod.parse_sdp(sip_call.remote_body)
        assert not isinstance(offer, sdp_mod.SdpError)
        stream = await callee_engine.open()
        sdp_session = sdp_mod.SdpSession("127.0.0.1", stream.port)
        answer = sdp_session.answer(offer)
        assert isinstance(answer, sdp_mod.Answer)
        options = CallOptions()
        stream.configure(options.session_config(answer.audio, callee_ua.local_uri()))
        stream.set_remote((answer.audio.remote_address, answer.audio.remote_port))
        ivr = MediaCall(sip_call, stream, answer.audio, sdp_session, options, None)
        ivr.on_dtmf = lambda ev: got_callee.append((ev.digit, ev.method))
        await sip_call.progress(bytes(answer.sdp))
        await asyncio.sleep(0.2)  # like an IVR's prompt lead-in: the caller has the 183 by now
        await ivr.send_dtmf("9*", method="rfc4733", tone_ms=100, gap_ms=100)
        ready.set()
        await release.wait()
        await sip_call.answer(bytes(answer.sdp))

    callee_ua.on_invite = on_invite
    got_caller: list[tuple[str, str, CallState]] = []

    async def on_early(call: MediaCall) -> None:
        call.on_dtmf = lambda ev: got_caller.append((ev.digit, ev.method, call.sip.state))
        await ready.wait()
        await call.send_dtmf("36", method="auto", tone_ms=100, gap_ms=100)
        await wait_for(lambda: len(got_callee) >= 2, 5)
        release.set()

    try:
        async with Caller() as rt:
            call = await place_call(rt.ua, rt.engine, f"sip:ivr@127.0.0.1:{callee_ua.port}",
                                    on_early_media=on_early)
            assert call.state == "established"
            assert got_caller == [("9", "rfc4733", CallState.EARLY), ("*", "rfc4733", CallState.EARLY)]
            assert got_callee == [("3", "rfc4733"), ("6", "rfc4733")]
            await call.hangup()
    finally:
        await callee_ua.close()
        await callee_engine.close()
