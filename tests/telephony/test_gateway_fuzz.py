"""The SIP gateway fuzzed over real UDP: sequences of well-formed-looking but hostile requests
(any method, dialogs that exist or not, wrong CSeq, odd headers, broken or foreign bodies,
INFO, REFER, re-INVITE and BYE inside a live call). After each sequence the gateway still answers
OPTIONS, nothing is logged at ERROR or with a traceback, and a real call made afterwards
relays its digits into the room.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.protocol import sip as sip_pb

from roomtone.media.call import CallOptions, place_call
from roomtone.media.engine import MediaEngine
from roomtone.media.ports import PortAllocator
from roomtone.sip.ua import UserAgent
from roomtone.telephony.gateway import SipGateway

from .conftest import listen, media_flowing, wait_for

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

_SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")

_BODIES = st.sampled_from([
    ("", ""),
    ("application/sdp", _SDP.format(port=9)),
    ("application/sdp", _SDP.format(port=0)),
    ("application/sdp", "v=0\r\nm=audio x RTP/AVP\r\n"),
    ("application/sdp", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=video 9 RTP/AVP 96\r\n"),
    ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
    ("application/dtmf-relay", "Signal=%\r\nDuration=-1\r\n"),
    ("application/dtmf", "12"),
    ("message/sipfrag", "SIP/2.0 200 OK\r\n"),
    ("text/plain", "\x00\x01hello"),
]) | st.tuples(st.sampled_from(["application/sdp", "application/dtmf-relay", "x/y"]), st.text(max_size=40))

_EXTRA_HEADERS = st.lists(st.sampled_from([
    "Refer-To: <sip:elsewhere@127.0.0.1>",
    "Refer-To: garbage",
    "Replaces: abc;to-tag=1;from-tag=2",
    "Require: 100rel, timer",
    "Supported: replaces",
    "Session-Expires: 1",
    "Event: refer",
    "Subscription-State: active",
    "X-Custom: " + "v" * 300,
    "Allow: INFO",
    "Authorization: Digest username=\"x\", realm=\"y\", nonce=\"z\", uri=\"sip:a\", response=\"0\"",
    "Expires: 99999999999999999999",
]), max_size=3)

_METHODS = st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "INFO", "OPTIONS", "REFER", "NOTIFY", "MESSAGE",
                            "UPDATE", "PRACK", "SUBSCRIBE", "REGISTER", "PUBLISH", "FOO"])


@st.composite
def _request(draw: st.DrawFn) -> dict[str, object]:
    return {
        "method": draw(_METHODS),
        "call": draw(st.integers(0, 2)),  # which Call-ID: 0/1 shared within a sequence, 2 fresh
        "to_tag": draw(st.sampled_from(["", ";tag=unknown", "DIALOG"])),
        "cseq": draw(st.sampled_from([1, 2, 5, 0, 2**31, 10])),
        "cseq_method": draw(st.sampled_from(["same", "INVITE", "BYE"])),
        "user": draw(st.sampled_from(["+1000", "nobody", "", "%00"])),
        "body": draw(_BODIES),
        "extra": draw(_EXTRA_HEADERS),
    }


def _render(req: dict[str, object], port: int, gw_port: int, seq: int, tags: dict[int, str]) -> bytes:
    call = int(req["call"])  # type: ignore[call-overload]
    call_id = f"fuzz-{seq}-{call}" if call < 2 else f"fuzz-{seq}-fresh-{req['cseq']}"
    to_tag = str(req["to_tag"])
    if to_tag == "DIALOG":
        to_tag = f";tag={tags[call]}" if call in tags else ""
    method = str(req["method"])
    cseq_method = method if req["cseq_method"] == "same" else str(req["cseq_method"])
    ctype, body = req["body"]  # type: ignore[misc]
    lines = [
        f"{method} sip:{req['user']}@127.0.0.1:{gw_port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-fz{seq}-{os.urandom(4).hex()};rport",
        f"From: <sip:fuzzer@127.0.0.1:{port}>;tag=fz{seq}",
        f"To: <sip:{req['user']}@127.0.0.1:{gw_port}>{to_tag}",
        f"Call-ID: {call_id}",
        f"CSeq: {req['cseq']} {cseq_method}",
        f"Contact: <sip:fuzzer@127.0.0.1:{port}>",
        "Max-Forwards: 70",
        *[str(h) for h in req["extra"]],  # type: ignore[attr-defined]
    ]
    payload = str(body).encode()
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _drain(sock: socket.socket, tags: dict[int, str], seconds: float) -> list[bytes]:
    """Read replies for a while; note the gateway's To-tags (so later requests can hit dialogs)."""
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            await asyncio.sleep(0.01)
            continue
        got.append(data)
        text = data.decode(errors="replace")
        call = re.search(r"^Call-ID: fuzz-\d+-(\d)\r$", text, re.M | re.I)
        tag = re.search(r"^To: .*;tag=([^;\r]+)", text, re.M | re.I)
        if call and tag:
            tags[int(call.group(1))] = tag.group(1)
    return got


async def _options_answered(sock: socket.socket, port: int, gw_port: int, seq: int) -> bool:
    probe = (f"OPTIONS sip:+1000@127.0.0.1:{gw_port} SIP/2.0\r\n"
             f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-probe{seq}\r\n"
             f"From: <sip:probe@127.0.0.1>;tag=p{seq}\r\nTo: <sip:+1000@127.0.0.1>\r\n"
             f"Call-ID: probe-{seq}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    sock.sendto(probe, ("127.0.0.1", gw_port))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3.0
    while loop.time() < deadline:
        try:
            reply = sock.recv(65535)
        except BlockingIOError:
            await asyncio.sleep(0.005)
            continue
        if f"probe-{seq}".encode() in reply and reply.startswith(b"SIP/2.0 "):
            return True
    return False


_counter = iter(range(10**9))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(requests=st.lists(_request(), min_size=1, max_size=8))
async def test_hostile_request_sequences_leave_the_gateway_serving(gateway: SipGateway, caplog, requests) -> None:
    store = gateway.telephony.store
    if not await store.list_inbound_trunks():
        await store.put_inbound_trunk(sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_fz", numbers=["+1000"]))
        await store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
            sip_dispatch_rule_id="SDR_fz",
            rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name="fuzz"))))
    caplog.clear()
    seq = next(_counter)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    tags: dict[int, str] = {}
    try:
        with caplog.at_level(logging.INFO):
            for req in requests:
                sock.sendto(_render(req, port, gateway.port, seq, tags), ("127.0.0.1", gateway.port))
                await _drain(sock, tags, 0.02)
            assert await _options_answered(sock, port, gateway.port, seq)
        bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not bad, [(r.name, r.getMessage()) for r in bad]
    finally:
        sock.close()


async def test_after_fuzzing_a_real_call_still_relays_digits(gateway: SipGateway) -> None:
    """The hostile sequences above run against their own gateway instance; this checks the same
    kind of junk followed by an ordinary call on one gateway."""
    store = gateway.telephony.store
    await store.put_inbound_trunk(sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_fz", numbers=["+1000"]))
    await store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_fz",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name="fuzz"))))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    tags: dict[int, str] = {}
    junk = [{"method": m, "call": 0, "to_tag": "DIALOG", "cseq": c, "cseq_method": "same", "user": "+1000",
             "body": b, "extra": e}
            for m, c, b, e in [("INVITE", 1, ("application/sdp", _SDP.format(port=9)), []),
                               ("INFO", 2, ("application/dtmf-relay", "Signal=%\r\n"), []),
                               ("REFER", 3, ("", ""), ["Refer-To: garbage"]),
                               ("INVITE", 4, ("application/sdp", "v=0\r\nm=audio x\r\n"), []),
                               ("BYE", 1, ("", ""), []), ("UPDATE", 9, ("text/plain", "x"), []),
                               ("BYE", 10, ("", ""), [])]]
    for req in junk:
        sock.sendto(_render(req, port, gateway.port, 999999, tags), ("127.0.0.1", gateway.port))
        await _drain(sock, tags, 0.1)
    sock.close()

    listener = await listen(gateway.rooms, "fuzz")
    ua = UserAgent("127.0.0.1", 0, transports=("UDP",))
    await ua.start()
    engine = MediaEngine("127.0.0.1", PortAllocator(26900, 26980))
    try:
        call = await place_call(ua, engine, f"sip:+1000@127.0.0.1:{gateway.port}", CallOptions(), from_user="+1555")
        await wait_for(lambda: media_flowing(gateway), 5)
        await call.send_dtmf("47", method="rfc4733")
        await wait_for(lambda: [d for _, d, _ in listener.dtmf()] == ["4", "7"], 5)
        await call.hangup()
    finally:
        await engine.close()
        await ua.close()
