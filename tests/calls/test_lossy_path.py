"""RFC 4733 between two roomtone calls through a lossy, reordering UDP relay (real sockets).

``tc netem`` is not available in this kernel (no sch_netem), so the impairment is a small asyncio
relay between the two media sessions: it drops, duplicates, delays with jitter (which reorders)
every RTP packet in both directions. The SIP dialog is direct. Every digit must arrive exactly
once and in order.
"""

from __future__ import annotations

import asyncio
import random

from roomtone.media.call import CallOptions

from .endpoint import Pair

SEQUENCE = "0123456789*#ABCD" * 2


class LossyRelay:
    """Forwards datagrams between a caller side and a callee, impairing each one."""

    def __init__(self, target: tuple[str, int], loss: float, duplicate: float, delay: float, jitter: float,
                 seed: int) -> None:
        self.target = target
        self.loss, self.duplicate, self.delay, self.jitter = loss, duplicate, delay, jitter
        self.rng = random.Random(seed)
        self.client: tuple[str, int] | None = None
        self.front: asyncio.DatagramTransport | None = None
        self.back: asyncio.DatagramTransport | None = None
        self.passed = self.dropped = 0

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        relay = self

        class Front(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple) -> None:
                relay.client = addr[:2]
                relay._forward(data, "back")

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple) -> None:
                relay._forward(data, "front")

        self.front, _ = await loop.create_datagram_endpoint(Front, local_addr=("127.0.0.1", 0))
        self.back, _ = await loop.create_datagram_endpoint(Back, local_addr=("127.0.0.1", 0))
        return self.front.get_extra_info("sockname")[:2]

    def _forward(self, data: bytes, way: str) -> None:
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        loop = asyncio.get_running_loop()
        for _ in range(copies):
            self.passed += 1
            loop.call_later(self.delay + self.rng.uniform(0, self.jitter), self._send, data, way)

    def _send(self, data: bytes, way: str) -> None:
        if way == "back" and self.back is not None:
            self.back.sendto(data, self.target)
        elif way == "front" and self.front is not None and self.client is not None:
            self.front.sendto(data, self.client)

    def close(self) -> None:
        for t in (self.front, self.back):
            if t is not None:
                t.close()


async def test_rfc4733_over_a_lossy_reordering_udp_path_every_digit_exactly_once():
    async with Pair() as p:
        p.callee.options = CallOptions(inband_detection=False)
        caller, callee = await p.call(CallOptions(inband_detection=False))
        relay = LossyRelay(callee.stream.local, loss=0.15, duplicate=0.05, delay=0.02, jitter=0.05, seed=11)
        try:
            front = await relay.start()
            caller.stream.set_remote(front)  # the caller's media now crosses the relay, both ways
            await asyncio.sleep(0.9)  # the callee follows the relay's address (symmetric RTP)
            assert relay.back is not None
            assert callee.stream.session.remote == relay.back.get_extra_info("sockname")[:2]
            await caller.send_dtmf(SEQUENCE, method="rfc4733")
            await callee.send_dtmf("#*", method="rfc4733")
            await asyncio.sleep(1.0)
        finally:
            relay.close()
        assert relay.dropped > 20 and relay.passed > 200  # the path really was lossy
        assert "".join(e.digit for e in callee.received) == SEQUENCE
        assert "".join(e.digit for e in caller.received) == "#*"
        assert {e.method for e in callee.received} == {"rfc4733"}
