"""Concurrent calls: 20 ms G.711 RTP both ways with batched in-band DTMF detection.

For each call count N, two processes run on loopback:

* a **peer** process (plain sockets, no asyncio) plays N phones: every 20 ms it sends each call one
  µ-law RTP packet from a looping track that holds speech-like noise and a DTMF digit every 2 s;
* the **server** process under test is either roomtone (a :class:`MediaEngine` with N sessions:
  jitter buffer, G.711 decode, batched in-band detection, tone suppression, RTCP, sending 20 ms
  frames back) or the **anchor**: a bare asyncio program that receives the same packets and sends
  one precomputed packet per call every 20 ms (the least any asyncio RTP server can do).

Measured in the server process over a fixed window: CPU (process time / wall time, 1.0 = one
core), memory per call (RSS growth / N), the media clock's late ticks (a tick that starts more than
10 ms late delays every packet in it: "late packets" counts the packets sent in such ticks), and
for roomtone the in-band digits detected (proof the detector really ran). "Sustained" = no late
packets and CPU under 0.9 of a core.

    python benchmarks/calls.py                     # 100, 250, 500, 1000 calls, 10 s each
    python benchmarks/calls.py --calls 50 --seconds 3
    python benchmarks/calls.py --workers 2 --calls 600,800,1000   # one server process per core
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import time

import numpy as np

SERVER_HOST = "127.0.0.1"


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ----------------------------------------------------------------------------- peer (load)

def track_frames() -> list[bytes]:
    """4 s of µ-law: noise at speech level, with a 100 ms DTMF digit at 1.0 s and 3.0 s."""
    from roomtone.dtmf.tones import ToneGenerator
    from roomtone.media.g711 import ulaw_encode

    rng = np.random.default_rng(1)
    audio = (rng.normal(0, 600, 32000)).astype(np.int16)
    gen = ToneGenerator(8000)
    for start, digit in ((8000, "5"), (24000, "9")):
        audio[start:start + 800] = gen.tone(digit, 0.1)
    return [ulaw_encode(audio[i:i + 160]) for i in range(0, 32000, 160)]


def run_peer(server_ports: list[int], seconds: float) -> None:
    """Send one RTP packet per call every 20 ms for ``seconds``; report our ports on stdout first."""
    frames = track_frames()
    socks = []
    for _ in server_ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # we do not read the replies
        s.bind((SERVER_HOST, 0))
        s.setblocking(False)
        socks.append(s)
    print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
    sys.stdin.readline()  # go
    header = bytearray(12)
    t0 = time.monotonic()
    k = 0
    while True:
        due = t0 + k * 0.02
        now = time.monotonic()
        if now - t0 > seconds:
            break
        if due > now:
            time.sleep(due - now)
        payload = frames[k % len(frames)]
        for i, s in enumerate(socks):
            struct.pack_into("!BBHII", header, 0, 0x80, 0, (k + i) & 0xFFFF, (k * 160) & 0xFFFFFFFF, 1000 + i)
            try:
                s.sendto(bytes(header) + payload, (SERVER_HOST, server_ports[i]))
            except (BlockingIOError, ConnectionRefusedError):
                pass
            # drain replies (best effort) so the kernel does not keep dropping into a full buffer
        k += 1
    for s in socks:
        s.close()


def start_peer(server_ports: list[int], seconds: float) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--peer", "--seconds", str(seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(server_ports) + "\n")
    proc.stdin.flush()
    ports = json.loads(proc.stdout.readline())
    return proc, ports


# ----------------------------------------------------------------------------- servers

async def measure(window: float, tick_stats, reset) -> dict[str, float]:
    """CPU fraction over ``window`` seconds, after a 1 s warm-up."""
    await asyncio.sleep(1.0)
    reset()
    base = tick_stats()
    c0, w0 = time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    c1, w1 = time.process_time(), time.monotonic()
    end = tick_stats()
    return {"cpu": (c1 - c0) / (w1 - w0), **{k: end[k] - base[k] for k in end}}


async def serve_roomtone(n: int, seconds: float, port_base: int = 30000) -> dict[str, float]:
    from roomtone.media.dtmf_mux import DtmfEvent
    from roomtone.media.engine import MediaEngine
    from roomtone.media.ports import PortAllocator
    from roomtone.media.session import SessionConfig

    engine = MediaEngine(SERVER_HOST, PortAllocator(port_base, port_base + 4 * n + 8))
    rss0 = rss_kb()
    digits = [0]
    streams = []
    for _ in range(n):
        st = await engine.open(SessionConfig(telephone_event_pt=101, media_timeout=None))
        st.on_event = lambda e: digits.__setitem__(0, digits[0] + 1) if isinstance(e, DtmfEvent) else None
        streams.append(st)
    proc, peer_ports = start_peer([s.port for s in streams], seconds + 2)
    for st, p in zip(streams, peer_ports, strict=True):
        st.set_remote((SERVER_HOST, p))
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()

    def stats() -> dict[str, float]:
        return {
            "ticks": engine.ticks, "late_ticks": engine.late_ticks,
            "received": sum(s.session.stats.rtp_received for s in streams),
            "sent": sum(s.session.stats.rtp_sent for s in streams),
            "digits": digits[0], "lost": sum(s.session.jitter.stats.lost for s in streams),
        }

    result = await measure(seconds, stats, lambda: setattr(engine, "max_lateness", 0.0))
    result["late_packets"] = result["late_ticks"] * n
    result["max_late_ms"] = engine.max_lateness * 1000
    result["rss_per_call_kb"] = (rss_kb() - rss0) / n
    await engine.close()
    proc.wait()
    return result


class _Sink(asyncio.DatagramProtocol):
    def __init__(self, counter: list[int]) -> None:
        self.counter = counter
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.counter[0] += 1


async def serve_anchor(n: int, seconds: float, port_base: int = 0) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    rss0 = rss_kb()
    counter = [0]
    eps = []
    for _ in range(n):
        _, proto = await loop.create_datagram_endpoint(lambda: _Sink(counter), local_addr=(SERVER_HOST, 0))
        eps.append(proto)
    proc, peer_ports = start_peer([e.transport.get_extra_info("sockname")[1] for e in eps], seconds + 2)
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    packet = bytes(12) + bytes(160)
    state = {"ticks": 0, "late_ticks": 0, "sent": 0, "max_late": 0.0}

    async def clock() -> None:
        nxt = loop.time()
        while True:
            late = loop.time() - nxt
            state["ticks"] += 1
            if late > 0.01:
                state["late_ticks"] += 1
            state["max_late"] = max(state["max_late"], late)
            for e, p in zip(eps, peer_ports, strict=True):
                e.transport.sendto(packet, (SERVER_HOST, p))
            state["sent"] += n
            nxt += 0.02
            await asyncio.sleep(max(0.0, nxt - loop.time()))

    task = loop.create_task(clock())

    def stats() -> dict[str, float]:
        return {"ticks": state["ticks"], "late_ticks": state["late_ticks"], "received": counter[0],
                "sent": state["sent"]}

    result = await measure(seconds, stats, lambda: state.__setitem__("max_late", 0.0))
    result["late_packets"] = result["late_ticks"] * n
    result["max_late_ms"] = state["max_late"] * 1000
    result["rss_per_call_kb"] = (rss_kb() - rss0) / n
    task.cancel()
    for e in eps:
        e.transport.close()
    proc.wait()
    return result


def run_server(kind: str, n: int, seconds: float, workers: int = 1) -> dict[str, float]:
    """Each measurement in fresh processes so memory and CPU are their own.

    With ``workers`` > 1 the calls are split over that many server processes (one event loop
    each, as a gateway would run one worker per core); CPU is summed (in cores), late packets
    and received packets are summed, memory per call averaged, and ``cpu_max`` is the busiest
    worker's share of its core.
    """
    # One BLAS thread: a real-time loop must not wait for OpenBLAS worker threads that a busy
    # machine has not scheduled (that stalls the media clock for hundreds of milliseconds).
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    share = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--server", kind, "--calls", str(k), "--seconds", str(seconds),
             "--port-base", str(30000 + i * 8000)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for i, k in enumerate(share)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{kind} server failed:\n{err}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    total: dict[str, float] = {}
    for key in ("cpu", "late_packets", "received", "sent", "digits", "lost", "ticks", "late_ticks"):
        total[key] = sum(r.get(key, 0) for r in results)
    total["cpu_max"] = max(r["cpu"] for r in results)
    total["max_late_ms"] = max(r["max_late_ms"] for r in results)
    total["rss_per_call_kb"] = sum(r["rss_per_call_kb"] * k for r, k in zip(results, share, strict=True)) / n
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", default="100,250,500,1000", help="comma-separated call counts")
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement window per run")
    ap.add_argument("--workers", type=int, default=1,
                    help="server processes the calls are split over (one per core; default 1)")
    ap.add_argument("--port-base", type=int, default=30000, help=argparse.SUPPRESS)
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--server", choices=("roomtone", "anchor"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        run_peer(json.loads(sys.stdin.readline()), args.seconds)
        return
    if args.server:
        fn = serve_roomtone if args.server == "roomtone" else serve_anchor
        print(json.dumps(asyncio.run(fn(int(args.calls), args.seconds, args.port_base))))
        return
    counts = [int(c) for c in args.calls.split(",")]
    print(f"calls benchmark: {os.cpu_count()} cores, {args.workers} server process(es), window "
          f"{args.seconds:g} s per run, Python {sys.version.split()[0]}")
    header = (f"{'calls':>6} {'server':>9} {'cpu(core)':>9} {'cpu/call%':>9} {'ratio':>6} {'KB/call':>8} "
              f"{'late pkts':>9} {'max late ms':>11} {'rx pkts/s':>9} {'digits':>6} {'sustained':>9}")
    print(header)
    best = 0
    for n in counts:
        anchor = run_server("anchor", n, args.seconds, args.workers)
        ours = run_server("roomtone", n, args.seconds, args.workers)
        for name, r in (("anchor", anchor), ("roomtone", ours)):
            ok = r["late_packets"] == 0 and r["cpu_max"] < 0.9
            ratio = r["cpu"] / anchor["cpu"] if anchor["cpu"] else float("nan")
            print(f"{n:>6} {name:>9} {r['cpu']:>9.2f} {100 * r['cpu'] / n:>9.3f} {ratio:>6.1f} "
                  f"{r['rss_per_call_kb']:>8.1f} {int(r['late_packets']):>9} {r['max_late_ms']:>11.1f} "
                  f"{r['received'] / args.seconds:>9.0f} {int(r.get('digits', 0)):>6} "
                  f"{'yes' if ok else 'no':>9}")
            if name == "roomtone" and ok:
                best = max(best, n)
    where = "one core" if args.workers == 1 else f"{args.workers} worker processes"
    print(f"most concurrent calls roomtone sustained on {where} without late packets: {best or 'none'}"
          f" (of {counts})")


if __name__ == "__main__":
    main()
