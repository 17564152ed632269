"""The UA's part of late offer (RFC 3261 §13.2.1): a 2xx carrying our offer, its ACK carrying the
answer (``call.ack``, ``call.on_ack``), and a body-less re-INVITE answered with ``local_body``.

The peer is a plain UDP socket speaking SIP by hand, so every byte of the exchange is the test's.
"""

from __future__ import annotations

import asyncio
import socket

from roomtone.sip.message import Request, Response, parse
from roomtone.sip.ua import Call, CallState, Reply, UserAgent

OFFER = b"v=0\r\no=roomtone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
ANSWER = b"v=0\r\no=peer 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"


class RawPeer:
    """A UDP socket that sends hand-written requests and reads what comes back."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.tag = "peer1"
        self.call_id = f"late-{self.port}@127.0.0.1"
        self.to_tag = ""
        self.n = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, cseq: int, ua_port: int, body: bytes = b"", cseq_method: str | None = None,
                branch: str | None = None) -> str:
        self.n += 1
        branch = branch or f"z9hG4bK-raw-{self.n}"
        to = f"<sip:roomtone@127.0.0.1:{ua_port}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        lines = [f"{method} sip:roomtone@127.0.0.1:{ua_port} SIP/2.0",
                 f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport",
                 f"From: <sip:peer@127.0.0.1:{self.port}>;tag={self.tag}", f"To: {to}",
                 f"Call-ID: {self.call_id}", f"CSeq: {cseq} {cseq_method or method}",
                 f"Contact: <sip:peer@127.0.0.1:{self.port}>", "Max-Forwards: 70"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        self.sock.sendto(data, ("127.0.0.1", ua_port))
        return branch

    async def response(self, status: int, timeout: float = 5.0) -> Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), max(0.01, deadline - loop.time()))
            msg = parse(data)
            if isinstance(msg, Response) and msg.status == status:
                if msg.to.tag:
                    self.to_tag = msg.to.tag
                return msg


async def test_invite_without_sdp_offer_in_200_answer_in_ack_once():
    acks: list[Request] = []
    answered: list[Call] = []
    async with UserAgent("127.0.0.1", 0, transports=("UDP",)) as ua:
        async def on_invite(call: Call) -> None:
            assert call.remote_body == b""  # a late offer: nothing to answer yet
            call.on_ack = lambda c, ack: acks.append(ack)
            await call.answer(OFFER)  # our offer goes in the 200
            answered.append(call)

        ua.on_invite = on_invite
        peer = RawPeer()
        try:
            peer.request("INVITE", 1, ua.port)
            ok = await peer.response(200)
            assert ok.body == OFFER and ok.content_type == "application/sdp"
            peer.request("ACK", 1, ua.port, ANSWER)
            peer.request("ACK", 1, ua.port, ANSWER)  # a retransmitted ACK is not reported twice
            for _ in range(100):
                if answered:
                    break
                await asyncio.sleep(0.02)
            call = answered[0]
            assert call.state is CallState.ESTABLISHED
            assert call.ack is not None and call.ack.body == ANSWER and call.remote_body == ANSWER
            await asyncio.sleep(0.1)
            assert len(acks) == 1
        finally:
            peer.close()


async def test_reinvite_without_sdp_gets_local_body_and_its_ack_is_reported():
    acks: list[Request] = []
    calls: list[Call] = []
    async with UserAgent("127.0.0.1", 0, transports=("UDP",)) as ua:
        async def on_invite(call: Call) -> None:
            calls.append(call)
            call.on_ack = lambda c, ack: acks.append(ack)
            await call.answer(ANSWER)

        ua.on_invite = on_invite
        peer = RawPeer()
        try:
            peer.request("INVITE", 1, ua.port, OFFER)
            await peer.response(200)
            peer.request("ACK", 1, ua.port)
            # re-INVITE without SDP, no handler: the default 200 carries our current SDP as the offer
            peer.request("INVITE", 2, ua.port)
            ok = await peer.response(200)
            assert ok.cseq == (2, "INVITE") and ok.body == ANSWER
            peer.request("ACK", 2, ua.port, OFFER)
            for _ in range(100):
                if len(acks) == 2:
                    break
                await asyncio.sleep(0.02)
            assert [a.cseq[0] for a in acks] == [1, 2]
            assert calls[0].ack is acks[1] and calls[0].remote_body == OFFER
            # an application handler may answer the body-less re-INVITE with another offer
            calls[0].on_request = lambda c, req: Reply(200, body=OFFER + b"a=sendonly\r\n")
            peer.request("INVITE", 3, ua.port)
            ok = await peer.response(200)
            assert ok.cseq == (3, "INVITE") and ok.body.endswith(b"a=sendonly\r\n")
            peer.request("ACK", 3, ua.port)
            for _ in range(100):
                if len(acks) == 3:
                    break
                await asyncio.sleep(0.02)
            assert acks[2].body == b""
        finally:
            peer.close()


async def test_bye_carries_reason_header():
    async with UserAgent("127.0.0.1", 0, transports=("UDP",)) as ua:
        calls: list[Call] = []

        async def on_invite(call: Call) -> None:
            calls.append(call)
            await call.answer(ANSWER)

        ua.on_invite = on_invite
        peer = RawPeer()
        try:
            peer.request("INVITE", 1, ua.port, OFFER)
            await peer.response(200)
            peer.request("ACK", 1, ua.port)
            for _ in range(100):
                if calls and calls[0].ack is not None:
                    break
                await asyncio.sleep(0.02)
            task = asyncio.ensure_future(calls[0].bye(headers=[("Reason", 'SIP ;cause=488 ;text="test"')],
                                                      reason="unusable answer"))
            loop = asyncio.get_running_loop()
            data = await asyncio.wait_for(loop.sock_recv(peer.sock, 65535), 5)
            bye = parse(data)
            assert isinstance(bye, Request) and bye.method == "BYE"
            assert bye.get("Reason") == 'SIP ;cause=488 ;text="test"'
            assert calls[0].end_reason == "unusable answer"
            task.cancel()
        finally:
            peer.close()
