"""SipTransport over TCP with a peer that sends garbage: errors go back on the connection, a
message-level error keeps the connection, a framing error closes only that connection, and the
listener keeps serving. Real sockets on loopback."""

from __future__ import annotations

import asyncio
import re

from roomtone.sip.message import Request, Response
from roomtone.sip.transport import Address, SipTransport


def options(cseq: str, content_length: str | None = None) -> bytes:
    return (
        "OPTIONS sip:roomtone@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-garbage-" + cseq.split()[0] + "\r\n"
        "From: <sip:peer@127.0.0.1>;tag=p1\r\nTo: <sip:roomtone@127.0.0.1>\r\n"
        "Call-ID: garbage-test\r\nCSeq: " + cseq + "\r\nMax-Forwards: 70\r\n"
        "Content-Length: " + (content_length if content_length is not None else "0") + "\r\n\r\n"
    ).encode()


async def read_status(reader: asyncio.StreamReader) -> tuple[int, str]:
    """Status and reason of the next response. Read by hand: a 400 for a bad CSeq copies that
    CSeq (RFC 3261 §8.2.6.2), so our own parser would refuse the response."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
    version, status, reason = head.split("\r\n", 1)[0].split(" ", 2)
    assert version == "SIP/2.0", head
    match = re.search(r"^content-length:\s*(\d+)", head, re.I | re.M)
    if match and int(match.group(1)):
        await reader.readexactly(int(match.group(1)))
    return int(status), reason


async def test_tcp_garbage_is_answered_and_contained() -> None:
    got: list[tuple[Request | Response, Address]] = []
    transport = SipTransport(lambda m, a: got.append((m, a)))
    _, port = await transport.listen("TCP", "127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # a bad CSeq: framing is intact, so a 400 naming the defect and the connection stays
        writer.write(options("x OPTIONS"))
        await writer.drain()
        status, reason = await read_status(reader)
        assert status == 400 and "CSeq" in reason
        writer.write(options("2 OPTIONS"))
        await writer.drain()
        for _ in range(500):
            if got:
                break
            await asyncio.sleep(0.01)
        assert [(m.method, m.cseq) for m, _ in got if isinstance(m, Request)] == [("OPTIONS", (2, "OPTIONS"))]
        # a broken Content-Length: framing is lost, so a 400 and this connection closes
        writer.write(options("3 OPTIONS", content_length="banana"))
        await writer.drain()
        status, reason = await read_status(reader)
        assert status == 400 and "Content-Length" in reason
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by roomtone
        writer.close()
        # the listener still serves new connections
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", port)
        writer2.write(b"\x00\xff" * 40 + b"\r\n\r\n")
        await writer2.drain()
        status, reason = await read_status(reader2)  # framed (blank line, no body), so a 400
        assert status == 400 and "UTF-8" in reason
        writer2.close()
        reader3, writer3 = await asyncio.open_connection("127.0.0.1", port)
        writer3.write(options("4 OPTIONS"))
        await writer3.drain()
        for _ in range(500):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        assert [m.cseq for m, _ in got if isinstance(m, Request)] == [(2, "OPTIONS"), (4, "OPTIONS")]
        assert transport.stats["malformed"] >= 2
        writer3.close()
    finally:
        await transport.close()
