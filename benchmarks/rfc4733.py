"""RFC 4733 throughput: packets per second through the Sender and the Receiver, and RTP parsing.

Rows, each beside an anchor measured in the same run on the same packets:

1. Sender: ``Sender.enqueue`` + ``poll`` at every deadline, producing telephone-event payloads with
   marker, timestamp and duration. Anchor: a bare ``struct.pack`` loop emitting the same 4-byte
   payloads (the floor: no queue, no timing, no validation).
2. Receiver: ``Receiver.receive`` on those packets (parse, validate, key on SSRC/timestamp/code,
   dedupe, emit started/ended). Anchor: a bare ``struct.unpack`` of every payload (the floor for
   touching each packet in Python); LiveKit's own algorithm would be even cheaper, since it drops
   every packet whose timestamp equals the previous one before decoding, which is exactly what
   loses digits (see ``../shared/reference/livekit-telephony-dtmf.md``).
3. RTP parse: ``roomtone.media.rtp.parse_rtp`` on the same packets as RTP datagrams. Anchor:
   ``dpkt.rtp.RTP`` (the library parser) on the same bytes.

    python benchmarks/rfc4733.py [--digits N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

import dpkt  # noqa: E402

from roomtone.dtmf.rfc4733 import Receiver, Sender  # noqa: E402
from roomtone.media.rtp import RtpPacket, parse_rtp  # noqa: E402

DIGITS = "0123456789*#ABCD"


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--digits", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    text = (DIGITS * (args.digits // len(DIGITS) + 1))[: args.digits]

    def send() -> list:
        sender = Sender()
        sender.enqueue(text)
        out: list = []
        while (deadline := sender.next_deadline()) is not None:
            out += sender.poll(max(deadline, 0.0))
        return out

    packets = send()
    n = len(packets)
    triples = [(p.event.event, (0x80 if p.event.end else 0) | p.event.volume, p.event.duration) for p in packets]
    pack = struct.Struct("!BBH").pack

    def anchor_send() -> list:
        return [pack(e, f, d) for e, f, d in triples]

    feed = [(p.send_at, p.timestamp, p.payload, p.marker, i & 0xFFFF) for i, p in enumerate(packets)]

    def receive() -> int:
        rx = Receiver()
        count = 0
        for at, ts, payload, marker, seq in feed:
            count += len(rx.receive(at, ssrc=1, timestamp=ts, payload=payload, marker=marker, sequence=seq))
        return count

    unpack = struct.Struct("!BBH").unpack

    def anchor_receive() -> int:
        count = 0
        for _at, _ts, payload, _marker, _seq in feed:
            if unpack(payload)[1] & 0x80:
                count += 1
        return count

    assert receive() == 2 * args.digits, "receiver must report every digit's start and end"
    wires = [RtpPacket(101, seq & 0xFFFF, ts, 0x1234, payload, marker).serialize()
             for _at, ts, payload, marker, seq in feed]

    def parse_ours() -> None:
        for w in wires:
            parse_rtp(w)

    def parse_dpkt() -> None:
        for w in wires:
            dpkt.rtp.RTP(w)

    rows = [
        ("Sender (enqueue+poll)", best(send, args.repeat), "struct.pack payloads", best(anchor_send, args.repeat)),
        ("Receiver.receive", best(receive, args.repeat), "struct.unpack payloads", best(anchor_receive, args.repeat)),
        ("media.rtp.parse_rtp", best(parse_ours, args.repeat), "dpkt.rtp.RTP", best(parse_dpkt, args.repeat)),
    ]
    print(f"{args.digits} digits, {n} telephone-event packets (160 ms tones, 20 ms packets, 3 end repeats); "
          f"best of {args.repeat}")
    print(f"{'roomtone':<24}{'packets/s':>12}   {'anchor':<26}{'packets/s':>12}{'ratio':>8}")
    print("-" * 84)
    for name, ours, anchor_name, anchor in rows:
        print(f"{name:<24}{n / ours:>12,.0f}   {anchor_name:<26}{n / anchor:>12,.0f}{anchor / ours:>8.2f}")
    print("ratio = roomtone throughput / anchor throughput (higher is better)")


if __name__ == "__main__":
    main()
