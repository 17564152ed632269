"""roomtone.rtc.sctp.PromptSctpTransport against stock aiortc, over real loopback connections."""

from __future__ import annotations

import asyncio

from aiortc import RTCDataChannel, RTCPeerConnection

from roomtone.rtc import sctp

_TX = "_RTCDtlsTransport__tx_packets"  # aiortc's own count of DTLS records sent


class Pair:
    """Two connected aiortc PeerConnections; ``a`` sends on a data channel, ``b`` receives."""

    def __init__(self) -> None:
        self.a, self.b = RTCPeerConnection(), RTCPeerConnection()
        self.channel = self.a.createDataChannel("_reliable")
        self.got: list[bytes] = []
        self.on_message = self.got.append

    async def connect(self, tuned: bool) -> None:
        opened = asyncio.Event()

        @self.b.on("datachannel")
        def on_channel(remote: RTCDataChannel) -> None:
            remote.on("message", lambda m: self.on_message(m))
            opened.set()

        await self.a.setLocalDescription(await self.a.createOffer())
        await self.b.setRemoteDescription(self.a.localDescription)
        await self.b.setLocalDescription(await self.b.createAnswer())
        await self.a.setRemoteDescription(self.b.localDescription)
        if tuned:
            sctp.tune(self.a)
            sctp.tune(self.b)
        await asyncio.wait_for(opened.wait(), 10)

    def records_sent(self, pc: RTCPeerConnection) -> int:
        assert pc.sctp is not None
        return int(getattr(pc.sctp.transport, _TX))

    async def settle(self, count: int) -> None:
        """Until ``count`` messages arrived and the sender holds no unacknowledged data."""
        assert self.a.sctp is not None
        for _ in range(100):
            if len(self.got) >= count and not self.a.sctp._outbound_queue:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{len(self.got)} of {count} messages; unacknowledged: {len(self.a.sctp._outbound_queue)}")

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()


async def _pairs(n: int, tuned: bool) -> list[Pair]:
    pairs = [Pair() for _ in range(n)]
    for pair in pairs:
        await pair.connect(tuned)
    await asyncio.sleep(0.3)  # let the handshakes' own SACKs settle
    return pairs


async def test_send_puts_the_message_on_the_wire_before_returning() -> None:
    for tuned, expected in ((False, 0), (True, 10)):  # stock aiortc: only once the sender yields
        (pair,) = await _pairs(1, tuned)
        before = pair.records_sent(pair.a)
        for i in range(10):
            pair.channel.send(b"digit %d" % i)
        assert pair.records_sent(pair.a) - before == expected, tuned
        await pair.settle(10)
        assert pair.got == [b"digit %d" % i for i in range(10)]
        await pair.close()


async def _sacks_seen_by_each_handler(tuned: bool) -> list[int]:
    """Five connections each get one message at the same moment (as five SDKs' digits reach the
    server together); each receiving handler notes how many records the receivers had sent."""
    pairs = await _pairs(5, tuned)
    before = sum(p.records_sent(p.b) for p in pairs)
    seen: list[int] = []
    for p in pairs:
        p.on_message = lambda m, p=p: (p.got.append(m), seen.append(sum(q.records_sent(q.b) for q in pairs) - before))
    for p in pairs:
        p.channel.send(b"5")
    for p in pairs:
        await p.settle(1)
        await p.close()
    return seen


async def test_sacks_wait_until_the_burst_is_handed_on() -> None:
    stock = await _sacks_seen_by_each_handler(tuned=False)
    ours = await _sacks_seen_by_each_handler(tuned=True)
    assert len(stock) == len(ours) == 5
    assert stock[-1] >= 1, stock  # stock aiortc: a SACK right after each handler
    assert ours == [0] * 5, ours  # deferred: every handler ran before any SACK went out


async def test_every_message_is_acknowledged_one_at_a_time() -> None:
    """One message per loop turn: each still gets its SACK, the sender's queue drains."""
    (pair,) = await _pairs(1, tuned=True)
    for i in range(20):
        pair.channel.send(b"m%d" % i)
        await asyncio.sleep(0.01)
    await pair.settle(20)
    assert pair.got == [b"m%d" % i for i in range(20)]
    await pair.close()
