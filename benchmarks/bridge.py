"""SIP bridge DTMF latency, both directions, with 1 and N concurrent calls.

Everything runs in one process on loopback (the figures are the gateway's own latency, the part
roomtone adds between a phone and the room; ``benchmarks/bridge_sdk.py`` measures the same
directions end to end, from a phone to an official SDK participant's DTMF event and back, through
``roomtone serve`` and WebRTC, beside livekit-server's SDK-to-SDK hop):

* a roomtone :class:`~roomtone.telephony.gateway.SipGateway`; each call gets its own room
  (individual dispatch rule, the usual one-call-one-agent deployment) with a room participant
  ``agent`` (a server-side endpoint, so no WebRTC client sits in the path); ``--shared-room``
  puts every call and one agent in a single room instead (every digit fans out to all calls);
* N phones: SIP by roomtone's own UA, media by one bare UDP socket each (no media engine on the
  phone side, so the CPU goes to the gateway under test); like real phones they send 20 ms of
  PCMU every 20 ms all the time (``--no-audio``: only the events), and a press's event packets
  share the audio's SSRC, sequence and clock.

**phone -> room**: each phone's RTP socket sends an RFC 4733 *start* packet (marker set) to the
call's RTP port, all N back to back; latency = from the start of that burst until ``agent``
receives the ``sip_dtmf`` packet for that call.
**room -> phone**: ``agent`` publishes ``sip_dtmf`` to one SIP participant; latency = from the start
of the burst (all N ``publish_dtmf`` calls back to back, as N data packets arriving together are
handled) to the kernel's receive stamp (``SO_TIMESTAMPNS``) of the first telephone-event packet on
that phone's socket: when it reached the phone, not when this event loop got round to reading it.
An idle call sends a digit's first event packet before ``publish_dtmf`` returns
(``MediaCall.queue_dtmf``, ``RtpSession.start_dtmf_now``), so with N calls the figure is the
relay chain's per-digit cost times the digit's place in the burst.

With N calls every round fires all N at once (a burst), rounds 300 ms apart.

**Anchors**, same run, bare asyncio UDP on loopback in the same burst sizes: for phone -> room, a
datagram's one-way latency (sendto -> ``datagram_received`` in the same loop), the floor for any
asyncio server that must receive one packet and react; for room -> phone, from the start of a burst
of N ``sendto`` calls to each datagram's kernel receive stamp, the floor for putting N packets on
the wire from one loop.

    python benchmarks/bridge.py                    # 1 and 100 calls, 30 rounds
    python benchmarks/bridge.py --calls 1,20 --rounds 10
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import random
import re
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from livekit.protocol import models  # noqa: E402
from livekit.protocol import sip as sip_pb  # noqa: E402

from roomtone.media.g711 import ulaw_encode  # noqa: E402
from roomtone.rooms import CallbackEndpoint, RoomManager  # noqa: E402
from roomtone.sip.ua import UserAgent  # noqa: E402
from roomtone.telephony.gateway import GatewayConfig, SipGateway  # noqa: E402
from roomtone.telephony.service import Telephony  # noqa: E402
from roomtone.telephony.store import SQLiteTelephonyStore  # noqa: E402


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.array(values) * 1000, p)) if values else float("nan")


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux


class KernelStampedSocket:
    """A UDP socket whose datagrams carry the kernel's receive time (``SO_TIMESTAMPNS``,
    CLOCK_REALTIME): when the packet reached the socket, however long the event loop then took
    to read it. ``on_packet(data, stamp)`` is called for each datagram."""

    def __init__(self, on_packet: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.on_packet = on_packet
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return
            stamp = float("nan")
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    stamp = sec + nsec / 1e9
            self.on_packet(data, stamp)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sock.sendto(data, addr)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def phone_socket(index: int, rx: dict[tuple[int, int], float]) -> KernelStampedSocket:
    """A phone's RTP socket: notes when the first packet of each telephone-event reached it."""

    def on_packet(data: bytes, stamp: float) -> None:
        if len(data) >= 16 and data[1] & 0x7F == 101:
            rx.setdefault((index, data[12]), stamp)

    return KernelStampedSocket(on_packet)


class Phones:
    """N phones: SIP by roomtone's UA, RTP by one bare kernel-stamped socket each (no media engine,
    so the CPU goes to the server under test). Like real phones they send 20 ms of PCMU every
    20 ms once :meth:`start_audio` is called; a press's event packets share the call's SSRC,
    sequence numbers and clock (RFC 4733 §2.1). ``rx[(i, code)]``: when phone ``i`` got the first
    telephone-event packet of ``code`` (kernel stamp, wall clock)."""

    def __init__(self, ua: UserAgent, te_pt: int = 101) -> None:
        self.ua = ua
        self.te_pt = te_pt
        self.rx: dict[tuple[int, int], float] = {}
        self.socks: list[KernelStampedSocket] = []
        self.dests: list[tuple[str, int]] = []
        self.calls: list[Any] = []
        self.ssrc: list[int] = []
        self.seq: list[int] = []
        self.ts: list[int] = []
        self._audio: asyncio.Future[None] | None = None
        self._noise = ulaw_encode(np.random.default_rng(1).normal(0, 100, 160).astype(np.int16))

    async def call(self, uri: str, user: str) -> None:
        i = len(self.socks)
        sock = phone_socket(i, self.rx)
        pt = self.te_pt
        offer = (f"v=0\r\no=- {i} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                 f"m=audio {sock.port} RTP/AVP 0 {pt}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:{pt} telephone-event/8000\r\n"
                 f"a=fmtp:{pt} 0-16\r\na=ptime:20\r\na=sendrecv\r\n").encode()
        call = await self.ua.invite(uri, offer, from_user=user)
        await call.wait_answered()
        answer = call.remote_body.decode()
        addr = re.search(r"c=IN IP4 (\S+)", answer)
        media = re.search(r"m=audio (\d+)", answer)
        assert addr and media, answer
        self.socks.append(sock)
        self.dests.append((addr.group(1), int(media.group(1))))
        self.calls.append(call)
        self.ssrc.append(random.getrandbits(32))
        self.seq.append(0)
        self.ts.append(random.getrandbits(32))

    def rtp(self, i: int, pt: int, timestamp: int, payload: bytes, marker: bool = False) -> None:
        header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, self.seq[i], timestamp & 0xFFFFFFFF,
                             self.ssrc[i])
        self.seq[i] = (self.seq[i] + 1) & 0xFFFF
        self.socks[i].sendto(header + payload, self.dests[i])

    def start_audio(self) -> None:
        async def run() -> None:
            next_at = time.monotonic()
            while True:
                for i in range(len(self.socks)):
                    self.rtp(i, 0, self.ts[i], self._noise)
                    self.ts[i] = (self.ts[i] + 160) & 0xFFFFFFFF
                next_at += 0.02
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        self._audio = asyncio.ensure_future(run())

    def press_start(self, code: int) -> list[int]:
        """Every phone starts a key press now (timestamp: its audio's, now); returns them."""
        return [self.press_start_one(i, code) for i in range(len(self.socks))]

    def press_end(self, code: int, starts: list[int]) -> None:
        for i in range(len(self.socks)):
            self.press_end_one(i, code, starts[i])

    def press_start_one(self, i: int, code: int) -> int:
        """Phone ``i`` starts a key press now; returns the press's RTP timestamp."""
        if self._audio is None:  # no audio clock running: move on, so no two presses share a timestamp
            self.ts[i] = (self.ts[i] + 160 * 1000) & 0xFFFFFFFF
        start = self.ts[i]
        self.rtp(i, self.te_pt, start, struct.pack("!BBH", code, 10, 160), marker=True)
        return start

    def press_end_one(self, i: int, code: int, start: int) -> None:
        for _ in range(3):
            self.rtp(i, self.te_pt, start, struct.pack("!BBH", code, 0x80 | 10, 800))

    async def close(self) -> None:
        if self._audio is not None:
            self._audio.cancel()
        for call in self.calls:
            await call.hangup()
        for sock in self.socks:
            sock.close()


class _Sink(asyncio.DatagramProtocol):
    def __init__(self, arrivals: dict[int, float]) -> None:
        self.arrivals = arrivals

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.arrivals[struct.unpack("!I", data[:4])[0]] = time.perf_counter()


async def anchor(burst: int, rounds: int) -> tuple[list[float], list[float]]:
    """Bare asyncio UDP on loopback, bursts of ``burst`` datagrams: (in-loop latency per packet,
    send -> ``datagram_received``; wire latency from the burst's start to each packet's kernel
    receive stamp: the floor for putting ``burst`` packets on the wire from one loop)."""
    loop = asyncio.get_running_loop()
    arrivals: dict[int, float] = {}
    stamps: dict[int, float] = {}
    rx, _ = await loop.create_datagram_endpoint(lambda: _Sink(arrivals), local_addr=("127.0.0.1", 0))
    addr = rx.get_extra_info("sockname")
    tx, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=addr)
    stamped = KernelStampedSocket(lambda data, stamp: stamps.__setitem__(struct.unpack("!I", data[:4])[0], stamp))
    own = stamped.sock.getsockname()
    in_loop: list[float] = []
    wire: list[float] = []
    n = 0
    for _ in range(rounds):
        sent: dict[int, float] = {}
        for _ in range(burst):
            n += 1
            sent[n] = time.perf_counter()
            tx.sendto(struct.pack("!I", n) + b"\0" * 16)
        await asyncio.sleep(0.05)
        in_loop += [arrivals[k] - t for k, t in sent.items() if k in arrivals]
        first = n + 1
        start = time.time()
        for _ in range(burst):
            n += 1
            stamped.sendto(struct.pack("!I", n) + b"\0" * 16, own)
        await asyncio.sleep(0.05)
        wire += [stamps[k] - start for k in range(first, n + 1) if k in stamps]
        await asyncio.sleep(0.2)
    rx.close()
    tx.close()
    stamped.close()
    return in_loop, wire


async def run(n_calls: int, rounds: int, shared: bool, freeze: bool = True, audio: bool = True) -> dict[str, Any]:
    base = random.randrange(40000, 50000, 1000)
    telephony = Telephony(SQLiteTelephonyStore(":memory:"))
    rooms = RoomManager()
    gw = SipGateway(telephony, rooms, GatewayConfig(sip_port=base, transports=("UDP",),
                                                    rtp_ports=(base + 10, base + 60 + 4 * n_calls)))
    await gw.start()
    await telephony.store.put_inbound_trunk(sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_b", numbers=["+1000"]))
    if shared:
        rule = sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name="bench"))
    else:
        rule = sip_pb.SIPDispatchRule(dispatch_rule_individual=sip_pb.SIPDispatchRuleIndividual(
            room_prefix="bench", no_randomness=True))
    await telephony.store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(sip_dispatch_rule_id="SDR_b", rule=rule))
    room_rx: dict[tuple[str, int], float] = {}

    def on_data(pkt: models.DataPacket) -> None:
        if pkt.WhichOneof("value") == "sip_dtmf":
            room_rx.setdefault((pkt.participant_identity, pkt.sip_dtmf.code), time.perf_counter())

    def room_of(i: int) -> str:
        return "bench" if shared else f"bench_p{i}"

    agents = {}
    for i in range(1 if shared else n_calls):
        agents[room_of(i)] = await rooms.join(room_of(i), "agent", endpoint=CallbackEndpoint(on_data=on_data))
    ua = UserAgent("127.0.0.1", 0, transports=("UDP",))
    await ua.start()
    phones = Phones(ua)
    for i in range(n_calls):
        await phones.call(f"sip:+1000@127.0.0.1:{gw.port}", f"p{i}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
            rooms.participant(room_of(i), f"sip_p{i}") is None for i in range(n_calls)):
        await asyncio.sleep(0.05)
    if freeze:  # as `roomtone serve` does after start-up: full collections skip the set-up objects
        gc.collect()
        gc.freeze()
    if audio:
        phones.start_audio()
    await asyncio.sleep(0.5)
    up: list[float] = []
    down: list[float] = []
    for r in range(rounds):
        code = r % 10
        # phone -> room: one start packet per call, all at once (timestamp: the audio's, now)
        t0 = time.perf_counter()
        starts = phones.press_start(code)
        await asyncio.sleep(0.1)
        phones.press_end(code, starts)
        await asyncio.sleep(0.1)
        # each press from the start of the burst (so the phones' own sending, ~5 µs a packet,
        # counts against us too; before 2026-11-25 01:15 each was timed from its own send)
        sent = {i: t0 for i in range(n_calls)}
        up += [room_rx[(f"sip_p{i}", code)] - t for i, t in sent.items() if (f"sip_p{i}", code) in room_rx]
        room_rx.clear()
        # room -> phone: N digits published back to back, as N data packets arriving together are
        # handled; each from the burst's start to its first packet's kernel receive stamp
        start = time.time()
        for i in range(n_calls):
            agents[room_of(i)].publish_dtmf(code, destination_identities=[f"sip_p{i}"])
        await asyncio.sleep(0.4)
        down += [phones.rx[(i, code)] - start for i in range(n_calls) if (i, code) in phones.rx]
        phones.rx.clear()
    await phones.close()
    await ua.close()
    await gw.close()
    await rooms.close()
    telephony.close()
    if freeze:
        gc.unfreeze()
    return {"up": up, "down": down, "expected": rounds * n_calls}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", default="1,100")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("-v", action="store_true", help="log at INFO")
    ap.add_argument("--shared-room", action="store_true", help="all calls in one room")
    ap.add_argument("--no-audio", action="store_true",
                    help="phones send only telephone-events, no audio (the figures before 2026-11-25)")
    ap.add_argument("--no-gc-freeze", action="store_true",
                    help="leave set-up objects in the GC (roomtone serve freezes them after start-up)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if "-v" in sys.argv else logging.ERROR)
    rows = []
    for n in [int(x) for x in args.calls.split(",")]:
        res = await run(n, args.rounds, args.shared_room, freeze=not args.no_gc_freeze, audio=not args.no_audio)
        anc = await anchor(n, args.rounds)
        rows.append((n, res, anc))
    print(f"rooms: {'one shared room' if args.shared_room else 'one room per call'}; {args.rounds} rounds; "
          f"gc {'not frozen' if args.no_gc_freeze else 'frozen after set-up'}; "
          f"phones {'send no audio' if args.no_audio else 'send 20 ms PCMU all the time'}")
    print(f"{'direction':<14}{'calls':>6}{'p50':>9}{'p99':>9}{'anchor p50':>12}{'anchor p99':>12}"
          f"{'ratio p99':>11}{'samples':>9}{'lost':>6}")
    print("-" * 88)
    for n, res, anc in rows:
        for name, key, floor in (("phone->room", "up", anc[0]), ("room->phone", "down", anc[1])):
            lat = res[key]
            print(f"{name:<14}{n:>6}{pct(lat, 50):>8.2f}ms{pct(lat, 99):>7.2f}ms{pct(floor, 50):>10.3f}ms"
                  f"{pct(floor, 99):>10.3f}ms{pct(lat, 99) / pct(floor, 99):>11.1f}{len(lat):>9}"
                  f"{res['expected'] - len(lat):>6}")


if __name__ == "__main__":
    asyncio.run(main())
