"""Concurrent calls: 20 ms G.711 RTP both ways with batched in-band DTMF detection.

For each call count N and each event loop (asyncio, uvloop), processes on loopback:

* a **peer** (load generator) plays N phones: every 20 ms it sends each call one µ-law RTP packet
  from a looping track that holds speech-like noise and a DTMF digit every 2 s. It is a small C
  program (built here with the system compiler, one ``sendmmsg`` per 20 ms for all calls) so the
  load itself costs little of the two shared cores; without a compiler a Python peer does the same
  work (``CALLS_PEER=python`` forces it). "peer late" counts its own ticks that started >10 ms late.
* the **server** under test is either roomtone (a :class:`MediaEngine` with N sessions: jitter
  buffer, G.711 decode, batched in-band detection, tone suppression, RTCP, sending 20 ms frames
  back) or the **anchor**: a bare asyncio program (datagram endpoints, one per call) on the same
  loop that receives the same packets and sends one precomputed packet per call every 20 ms: the
  least any RTP server on that loop can do.

Both servers start like ``roomtone serve`` (detector kernels loaded, start-up objects collected and
frozen for the GC) before any call exists; the calls' own objects stay collectable.

Measured in the server process over a fixed window: CPU (process time / wall time, 1.0 = one
core), memory per call (RSS growth / N), the media clock's late ticks (a tick that starts more than
10 ms late delays every packet in it: "late packets" counts the packets sent in such ticks), and
for roomtone the in-band digits detected (proof the detector really ran). "Sustained" = no late
packets and CPU under 0.9 of a core (per worker with ``--workers``).

    python benchmarks/calls.py                     # 100, 250, 500, 1000 calls, 10 s each
    python benchmarks/calls.py --calls 50 --seconds 3 --loops uvloop
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


# The load generator in C: one socket, sendmmsg() of every call's packet each 20 ms, so the peer
# costs little more than the kernel's own loopback work and does not starve the server on a
# shared 2-core machine (the Python peer spent ~0.3 core at 1,000 calls building packets).
PEER_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static double mono(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    double seconds = atof(argv[1]);
    static unsigned char frames[1000 * 160];
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 3;
    size_t nf = fread(frames, 1, sizeof frames, f) / 160;
    fclose(f);
    int n;
    if (nf == 0 || scanf("%d", &n) != 1 || n <= 0) return 4;
    struct sockaddr_in *dst = calloc(n, sizeof *dst);
    for (int i = 0; i < n; i++) {
        int p;
        if (scanf("%d", &p) != 1) return 5;
        dst[i].sin_family = AF_INET; dst[i].sin_port = htons(p); dst[i].sin_addr.s_addr = htonl(0x7f000001);
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int rb = 4096;  /* we do not read the replies */
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
    struct sockaddr_in me = {0};
    me.sin_family = AF_INET; me.sin_addr.s_addr = htonl(0x7f000001);
    socklen_t ml = sizeof me;
    if (bind(s, (struct sockaddr *)&me, sizeof me) || getsockname(s, (struct sockaddr *)&me, &ml)) return 6;
    printf("%d\n", ntohs(me.sin_port));
    fflush(stdout);
    char go[16];
    if (scanf("%15s", go) != 1) return 7;
    unsigned char (*pkt)[172] = calloc(n, 172);
    struct iovec *iov = calloc(n, sizeof *iov);
    struct mmsghdr *msg = calloc(n, sizeof *msg);
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = pkt[i]; iov[i].iov_len = 172;
        msg[i].msg_hdr.msg_name = &dst[i]; msg[i].msg_hdr.msg_namelen = sizeof dst[i];
        msg[i].msg_hdr.msg_iov = &iov[i]; msg[i].msg_hdr.msg_iovlen = 1;
        unsigned ssrc = 1000 + i;
        pkt[i][0] = 0x80; pkt[i][1] = 0;
        pkt[i][8] = ssrc >> 24; pkt[i][9] = ssrc >> 16; pkt[i][10] = ssrc >> 8; pkt[i][11] = ssrc;
    }
    double t0 = mono(), max_late = 0;
    long sent = 0, late_ticks = 0, failed = 0;
    for (unsigned k = 0;; k++) {
        double due = t0 + k * 0.02, now = mono();
        if (now - t0 > seconds) break;
        if (due > now) {
            struct timespec ts = {(time_t)due, (long)((due - (time_t)due) * 1e9)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        } else if (now - due > max_late) {
            max_late = now - due;
        }
        if (now - due > 0.01) late_ticks++;
        const unsigned char *payload = frames + (k % nf) * 160;
        unsigned ts = k * 160;
        for (int i = 0; i < n; i++) {
            unsigned seq = (k + i) & 0xFFFF;
            unsigned char *h = pkt[i];
            h[2] = seq >> 8; h[3] = seq;
            h[4] = ts >> 24; h[5] = ts >> 16; h[6] = ts >> 8; h[7] = ts;
            memcpy(h + 12, payload, 160);
        }
        for (int off = 0; off < n;) {
            int r = sendmmsg(s, msg + off, n - off, 0);
            if (r <= 0) { failed++; off++; } else { off += r; sent += r; }
        }
    }
    fprintf(stderr, "{\"peer_sent\": %ld, \"peer_late_ticks\": %ld, \"peer_max_late_ms\": %.1f, \"peer_failed\": %ld}\n",
            sent, late_ticks, max_late * 1000, failed);
    return 0;
}
"""
BUILD_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "roomtone-calls-bench")


def c_peer() -> list[str] | None:
    """Build (once) and return the C peer's command, or None without a C compiler."""
    import hashlib
    import shutil

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    os.makedirs(BUILD_DIR, exist_ok=True)
    tag = hashlib.sha256(PEER_C.encode()).hexdigest()[:12]
    exe = os.path.join(BUILD_DIR, f"peer-{tag}")
    track = os.path.join(BUILD_DIR, "track.ulaw")
    if not os.path.exists(track):
        with open(track + ".tmp", "wb") as f:
            f.write(b"".join(track_frames()))
        os.replace(track + ".tmp", track)
    if not os.path.exists(exe):
        src = exe + ".c"
        with open(src, "w") as f:
            f.write(PEER_C)
        subprocess.run([cc, "-O2", "-o", exe + ".tmp", src], check=True)
        os.replace(exe + ".tmp", exe)
    return [exe, "{seconds}", track]


def run_peer(server_ports: list[int], seconds: float) -> None:
    """Python fallback of the C peer (same protocol, one socket): used when there is no compiler."""
    frames = track_frames()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # we do not read the replies
    s.bind((SERVER_HOST, 0))
    print(s.getsockname()[1], flush=True)
    sys.stdin.readline()  # go
    dests = [(SERVER_HOST, p) for p in server_ports]
    packets = [bytearray(172) for _ in server_ports]
    t0 = time.monotonic()
    k = sent = 0
    while time.monotonic() - t0 <= seconds:
        due = t0 + k * 0.02
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        payload = frames[k % len(frames)]
        for i, (pkt, dst) in enumerate(zip(packets, dests, strict=True)):
            struct.pack_into("!BBHII", pkt, 0, 0x80, 0, (k + i) & 0xFFFF, (k * 160) & 0xFFFFFFFF, 1000 + i)
            pkt[12:] = payload
            try:
                s.sendto(pkt, dst)
                sent += 1
            except OSError:
                pass
        k += 1
    print(json.dumps({"peer_sent": sent}), file=sys.stderr)
    s.close()


def start_peer(server_ports: list[int], seconds: float) -> tuple[subprocess.Popen[str], list[int]]:
    """Start the load generator; returns it and the peer's address port for every call."""
    cmd = None if os.environ.get("CALLS_PEER") == "python" else c_peer()
    if cmd is None:
        cmd = [sys.executable, __file__, "--peer", "--seconds", "{seconds}"]
    cmd = [c.replace("{seconds}", str(seconds)) for c in cmd]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{len(server_ports)} {' '.join(map(str, server_ports))}\n")
    proc.stdin.flush()
    port = int(proc.stdout.readline())
    return proc, [port] * len(server_ports)


def peer_report(proc: subprocess.Popen[str]) -> dict[str, float]:
    _, err = proc.communicate()
    for line in reversed(err.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


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


def start_like_serve() -> None:
    """What ``roomtone serve`` does at start-up, before any call: load the detector's compiled
    kernels, then collect and freeze the start-up objects (full collections then skip them). The
    calls' own objects are created afterwards and stay collectable, as in a running server."""
    import gc

    from roomtone.dtmf.detector import load_kernels

    load_kernels()
    gc.collect()
    gc.freeze()


async def serve_roomtone(n: int, seconds: float, port_base: int = 30000) -> dict[str, float]:
    from roomtone.media.dtmf_mux import DtmfEvent
    from roomtone.media.engine import MediaEngine
    from roomtone.media.ports import PortAllocator
    from roomtone.media.session import SessionConfig

    start_like_serve()
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
    result.update(peer_report(proc))
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
    start_like_serve()
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
    result.update(peer_report(proc))
    return result


def _prepare(nice: int, cpu: int | None):
    if not nice and cpu is None:
        return None

    def prepare() -> None:
        if nice:
            os.nice(nice)
        if cpu is not None:
            os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})

    return prepare


def run_server(kind: str, n: int, seconds: float, workers: int = 1, loop: str = "asyncio",
               nice: int = 0, pin: bool = False) -> dict[str, float]:
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
             "--port-base", str(30000 + i * 8000), "--loops", loop],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            preexec_fn=_prepare(nice, i if pin else None),  # the peer inherits both
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
    for key in ("cpu", "late_packets", "received", "sent", "digits", "lost", "ticks", "late_ticks",
                "peer_sent", "peer_late_ticks"):
        total[key] = sum(r.get(key, 0) for r in results)
    total["cpu_max"] = max(r["cpu"] for r in results)
    total["max_late_ms"] = max(r["max_late_ms"] for r in results)
    total["peer_max_late_ms"] = max(r.get("peer_max_late_ms", 0.0) for r in results)
    total["rss_per_call_kb"] = sum(r["rss_per_call_kb"] * k for r, k in zip(results, share, strict=True)) / n
    return total


def make_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", default="100,250,500,1000", help="comma-separated call counts")
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement window per run")
    ap.add_argument("--workers", type=int, default=1,
                    help="server processes the calls are split over (one per core; default 1)")
    ap.add_argument("--loops", default="asyncio,uvloop",
                    help="event loops to run both servers on (comma-separated: asyncio, uvloop)")
    ap.add_argument("--nice", type=int, default=0,
                    help="scheduling niceness of servers and peers (root may give negative values so "
                         "other work on a shared machine does not decide the result; default 0)")
    ap.add_argument("--pin", action="store_true",
                    help="pin server process i (and its load generator) to CPU i")
    ap.add_argument("--port-base", type=int, default=30000, help=argparse.SUPPRESS)
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--server", choices=("roomtone", "anchor"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        run_peer([int(p) for p in sys.stdin.readline().split()[1:]], args.seconds)
        return
    if args.server:
        fn = serve_roomtone if args.server == "roomtone" else serve_anchor
        with asyncio.Runner(loop_factory=lambda: make_loop(args.loops)) as runner:
            print(json.dumps(runner.run(fn(int(args.calls), args.seconds, args.port_base))))
        return
    counts = [int(c) for c in args.calls.split(",")]
    loops = [x.strip() for x in args.loops.split(",") if x.strip()]
    if "uvloop" in loops:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("uvloop is not installed: running the asyncio loop only (pip install uvloop)")
            loops = [x for x in loops if x != "uvloop"] or ["asyncio"]
    peer = "C sendmmsg" if os.environ.get("CALLS_PEER") != "python" and c_peer() else "Python"
    print(f"calls benchmark: {os.cpu_count()} cores, {args.workers} server process(es), window "
          f"{args.seconds:g} s per run, Python {sys.version.split()[0]}, peer: {peer}, nice {args.nice}, "
          f"{'pinned, ' if args.pin else ''}"
          f"load average {os.getloadavg()[0]:.2f}")
    header = (f"{'calls':>6} {'server':>17} {'cpu(core)':>9} {'cpu/call%':>9} {'ratio':>6} {'KB/call':>8} "
              f"{'late pkts':>9} {'max late ms':>11} {'rx pkts/s':>9} {'digits':>6} {'peer late':>9} "
              f"{'sustained':>9}")
    print(header, flush=True)
    best = dict.fromkeys(loops, 0)
    for n in counts:
        for loop in loops:
            anchor = run_server("anchor", n, args.seconds, args.workers, loop, args.nice, args.pin)
            ours = run_server("roomtone", n, args.seconds, args.workers, loop, args.nice, args.pin)
            for name, r in (("anchor", anchor), ("roomtone", ours)):
                ok = r["late_packets"] == 0 and r["cpu_max"] < 0.9
                ratio = r["cpu"] / anchor["cpu"] if anchor["cpu"] else float("nan")
                print(f"{n:>6} {name + '/' + loop:>17} {r['cpu']:>9.2f} {100 * r['cpu'] / n:>9.3f} "
                      f"{ratio:>6.1f} {r['rss_per_call_kb']:>8.1f} {int(r['late_packets']):>9} "
                      f"{r['max_late_ms']:>11.1f} {r['received'] / args.seconds:>9.0f} "
                      f"{int(r.get('digits', 0)):>6} {int(r.get('peer_late_ticks', 0)):>9} "
                      f"{'yes' if ok else 'no':>9}", flush=True)
                if name == "roomtone" and ok:
                    best[loop] = max(best[loop], n)
    where = "one core" if args.workers == 1 else f"{args.workers} worker processes"
    for loop in loops:
        print(f"most concurrent calls roomtone/{loop} sustained on {where} without late packets: "
              f"{best[loop] or 'none'} (of {counts})")


if __name__ == "__main__":
    main()
