"""Rooms benchmark: join time, DTMF relay latency A->B and server memory per participant.

For each server (roomtone, and the real livekit-server as the anchor when a local build is
available) and each room count (default 1, 10 and 50 rooms of 4 participants), in a fresh network
namespace with a fresh server:

* join time: ``Room.connect()`` duration per participant (the 4 of a room join concurrently, rooms
  one after another);
* memory: the server's RSS after all participants joined minus its RSS before the first join,
  divided by the number of participants;
* DTMF relay latency, one at a time: in room 0, A publishes a tone, B's ``sip_dtmf_received``
  fires (C and D get it too), 10 ms pause, repeat; the sample is the time from just before
  ``publish_dtmf`` to B's event. The other N-1 rooms stay connected and quiet: this is the
  idle-server latency the target (p99 < 10 ms) is about, with N rooms on the server.
* server residence (when ``tcpdump`` or ``dumpcap`` is installed): during the one-at-a-time
  phase, UDP on the namespace's ``lo`` is captured and, for each DTLS application-data packet
  from A, the time until the server sends the DATA to the first and to the last of the other
  three participants (packets of at least 80 bytes: SCTP SACK-only packets are smaller). This
  is the server's own share of the relay, without the SDKs' dispatch and mostly without the
  machine's scheduling noise that dominates the end-to-end p99.
* burst latency: in rounds 50 ms apart, A of every room publishes one tone at the same moment
  (the server fans out 3 copies per room); client-side queueing is included.

Participants are official Python ``livekit`` SDK participants (the Rust core, as in production),
hosted as separate ``rtc.Room`` objects in two worker processes inside the namespace: a "probe"
holding room 0 and a "load" process holding the other rooms (a process per participant would need
200 interpreters on 2 cores; one process for all would measure its own event loop). Client-side
dispatch is part of every figure, for both servers alike, so compare ratios.

The anchor is livekit-server, found as ``--livekit-server PATH``, ``$LIVEKIT_SERVER`` or on PATH.
It is never fetched by this script or by CI; built locally it is the Go server with upstream pion
(LiveKit's forked pion modules are not served by the Go module proxy, which only disables their
opt-in "warp" extensions). Without it the table shows roomtone alone and says so.

Usage: ``python benchmarks/rooms.py [--rooms 1,10,50] [--servers roomtone,livekit]``
(root, for network namespaces).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

PARTICIPANTS_PER_ROOM = 4


# -- worker: runs inside the namespace ---------------------------------------------------------
def rss_kib(pid: int) -> int:
    """Resident set of ``pid`` and its descendants (KiB), from /proc."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


class Worker:
    """Hosts some rooms' participants in one process and measures on command (JSON lines)."""

    def __init__(self, url: str, tokens: list[list[str]], v1: bool) -> None:
        from livekit import rtc

        self.rtc = rtc
        self.url = url
        self.tokens = tokens
        self.options = rtc.RoomOptions(auto_subscribe=True, single_peer_connection=None if v1 else False)
        self.rooms: list[list[Any]] = []
        self.join_ms: list[float] = []
        # received[room] = perf_counter of each tone B got, in order
        self.received: list[list[float]] = [[] for _ in tokens]
        self.arrived = asyncio.Event()
        self.expected = 0

    def _on_dtmf_for(self, index: int) -> Any:
        def on_dtmf(_dtmf: Any) -> None:
            self.received[index].append(time.perf_counter())
            if sum(len(r) for r in self.received) >= self.expected:
                self.arrived.set()

        return on_dtmf

    async def _join(self, token: str, index: int, is_b: bool) -> Any:
        room = self.rtc.Room()
        if is_b:
            room.on("sip_dtmf_received", self._on_dtmf_for(index))
        t0 = time.perf_counter()
        await room.connect(self.url, token, self.options)
        self.join_ms.append((time.perf_counter() - t0) * 1000)
        return room

    async def join_all(self) -> None:
        for index, room_tokens in enumerate(self.tokens):
            members = await asyncio.gather(*(self._join(t, index, i == 1) for i, t in enumerate(room_tokens)))
            self.rooms.append(list(members))
        # Everyone must see the other three before A's tones can be attributed.
        deadline = time.monotonic() + 60
        while any(len(r.remote_participants) < PARTICIPANTS_PER_ROOM - 1 for m in self.rooms for r in m):
            if time.monotonic() > deadline:
                raise RuntimeError("participants did not all see each other within 60 s")
            await asyncio.sleep(0.05)
        # Warm-up, not measured: A's publisher PeerConnection comes up lazily on its first tone.
        await self.burst(0)

    async def _publish(self, index: int, code: int) -> None:
        from roomtone.dtmf.digits import digit_for

        await self.rooms[index][0].local_participant.publish_dtmf(code=code, digit=digit_for(code))

    async def burst(self, code: int) -> tuple[list[float], int]:
        """Every room's A sends one tone at the same moment; one sample per room."""
        self.expected = sum(len(r) for r in self.received) + len(self.rooms)
        self.arrived.clear()
        before = [len(r) for r in self.received]
        starts = [0.0] * len(self.rooms)

        async def send(index: int) -> None:
            starts[index] = time.perf_counter()
            await self._publish(index, code)

        await asyncio.gather(*(send(i) for i in range(len(self.rooms))))
        try:
            await asyncio.wait_for(self.arrived.wait(), timeout=10)
        except TimeoutError:
            pass
        samples, lost = [], 0
        for index in range(len(self.rooms)):
            new = self.received[index][before[index] :]
            if new:
                samples.append((new[0] - starts[index]) * 1000)
            else:
                lost += 1
        return samples, lost

    async def one_at_a_time(self, count: int) -> tuple[list[float], int]:
        """One tone at a time, this worker's rooms in turn, 10 ms apart."""
        samples, lost = [], 0
        for sample in range(count):
            index = sample % len(self.rooms)
            self.expected = sum(len(r) for r in self.received) + 1
            self.arrived.clear()
            before = len(self.received[index])
            t0 = time.perf_counter()
            await self._publish(index, sample % 16)
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout=5)
            except TimeoutError:
                pass
            if len(self.received[index]) > before:
                samples.append((self.received[index][before] - t0) * 1000)
            else:
                lost += 1
            await asyncio.sleep(0.01)
        return samples, lost

    async def serve(self) -> None:
        """``ready`` after joining, then one reply per command line on stdin."""
        await self.join_all()
        reply({"ready": True, "join_ms": self.join_ms})
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd["cmd"] == "idle":
                samples, lost = await self.one_at_a_time(cmd["count"])
                reply({"latency_ms": samples, "lost": lost})
            elif cmd["cmd"] == "burst":
                all_samples, all_lost = [], 0
                for phase in range(cmd["rounds"]):
                    samples, lost = await self.burst(phase % 16)
                    all_samples += samples
                    all_lost += lost
                    await asyncio.sleep(0.05)
                reply({"latency_ms": all_samples, "lost": all_lost})
            elif cmd["cmd"] == "quit":
                break
        await asyncio.gather(*(r.disconnect() for m in self.rooms for r in m))


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# -- orchestration: runs outside ---------------------------------------------------------------
class WorkerProcess:
    def __init__(self, ns: Any, url: str, tokens: list[list[str]], v1: bool) -> None:
        self.proc = ns.popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "src")])),
        )
        self.ask_async({"url": url, "tokens": tokens, "v1": v1})

    def ask_async(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited (rc={self.proc.wait()}); see its stderr above")
        return dict(json.loads(line))

    def ask(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.ask_async(obj)
        return self.answer()


CAPTURE_MIN_BYTES = 80  # DTLS(SCTP DATA) carrying a DataPacket; SACK-only records are 57-77 bytes


class Capture:
    """UDP on the namespace's loopback (all peers share it), written by tcpdump or dumpcap."""

    def __init__(self, ns: Any, server_pid: int) -> None:
        self.path = ns.tmp_path("rooms-bench.pcap")
        self.ns = ns
        self.server_pid = server_pid
        self.proc: Any = None
        self.ports: set[int] = set()
        if shutil.which("tcpdump"):
            cmd = ["tcpdump", "-i", "lo", "-U", "-s", "256", "-w", str(self.path), "udp"]
        elif shutil.which("dumpcap"):
            cmd = ["dumpcap", "-q", "-P", "-i", "lo", "-s", "256", "-f", "udp", "-w", str(self.path)]
        else:
            return
        self.proc = ns.popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def note_server_ports(self) -> None:
        """The server's UDP ports (its ICE sockets), read once everyone has joined."""
        out = self.ns.run(["ss", "-unap"]).stdout
        tag = f"pid={self.server_pid},"
        self.ports = {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if tag in line}

    def residence_ms(self, t0: float, t1: float) -> tuple[list[float], list[float]]:
        """Per relayed packet between wall-clock t0 and t1: (to the first receiver, to the last)."""
        if self.proc is None:
            return [], []
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(timeout=10)
        import dpkt

        packets: list[tuple[float, int, int, bool]] = []  # ts, src port, dst port, big
        with open(self.path, "rb") as f:
            for ts, buf in dpkt.pcap.Reader(f):
                if not t0 <= ts <= t1:
                    continue
                ip = dpkt.ethernet.Ethernet(buf).data
                udp = getattr(ip, "data", None)
                if not isinstance(udp, dpkt.udp.UDP):
                    continue
                payload = bytes(udp.data)
                if payload[:1] != b"\x17":  # DTLS application data (not STUN, not handshake)
                    continue
                packets.append((float(ts), udp.sport, udp.dport, len(payload) >= CAPTURE_MIN_BYTES))
        first: list[float] = []
        last: list[float] = []
        for i, (ts, sport, dport, big) in enumerate(packets):
            if not big or dport not in self.ports or sport in self.ports:
                continue
            outs: dict[int, float] = {}
            for ts2, sport2, dport2, big2 in packets[i + 1 :]:
                if ts2 - ts > 0.05 or (sport2 == sport and dport2 == dport and big2):
                    break  # too late, or A's next packet
                if big2 and sport2 in self.ports and dport2 != sport:
                    outs.setdefault(dport2, ts2 - ts)
            if len(outs) == PARTICIPANTS_PER_ROOM - 1:
                first.append(min(outs.values()) * 1000)
                last.append(max(outs.values()) * 1000)
        return first, last


def run_one(server_kind: str, rooms: int, samples: int, livekit_bin: str | None, v1: bool) -> dict[str, Any]:
    """One server, one room count: a "load" worker holds rooms 1..N-1, a "probe" worker room 0.

    The one-at-a-time latency is taken in the probe's room only, so the probe process is not
    also busy dispatching the other 196 participants' events: the figure is the server's relay
    with N rooms connected, not the client's event loop under load.
    """
    from tests.netns import Netns
    from tests.rtc.sdk_peers import start_livekit_server, start_roomtone

    with Netns(prefix="rtbench") as ns:
        if server_kind == "roomtone":
            server = start_roomtone(ns)
        else:
            assert livekit_bin
            server = start_livekit_server(ns, livekit_bin)
        tokens = [
            [server.token(f"p{r}-{'ABCD'[i]}", f"bench-{r}") for i in range(PARTICIPANTS_PER_ROOM)]
            for r in range(rooms)
        ]
        capture = Capture(ns, server.pid)
        time.sleep(0.5)
        rss_before = rss_kib(server.pid)
        workers: list[WorkerProcess] = []
        join_ms: list[float] = []
        if rooms > 1:
            workers.append(WorkerProcess(ns, server.url, tokens[1:], v1))
            join_ms += workers[-1].answer()["join_ms"]
        probe = WorkerProcess(ns, server.url, tokens[:1], v1)
        workers.append(probe)
        join_ms += probe.answer()["join_ms"]
        time.sleep(1.0)  # let PeerConnections and the server settle before reading memory
        rss_after = rss_kib(server.pid)

        capture.note_server_ports()
        t0 = time.time()
        idle = probe.ask({"cmd": "idle", "count": samples})
        t1 = time.time()
        for w in workers:
            w.ask_async({"cmd": "burst", "rounds": max(5, samples // rooms)})
        bursts = [w.answer() for w in workers]
        for w in workers:
            w.ask_async({"cmd": "quit"})
        for w in workers:
            w.proc.wait(timeout=60)
        first, last = capture.residence_ms(t0, t1)
        return {
            "residence_first_ms": first,
            "residence_last_ms": last,
            "participants": rooms * PARTICIPANTS_PER_ROOM,
            "join_ms": join_ms,
            "latency_ms": idle["latency_ms"],
            "burst_latency_ms": [x for b in bursts for x in b["latency_ms"]],
            "lost": idle["lost"] + sum(b["lost"] for b in bursts),
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
        }


def summarise(raw: dict[str, Any]) -> dict[str, float]:
    lat, join = raw["latency_ms"], raw["join_ms"]
    return {
        "join_p50": statistics.median(join),
        "join_p99": percentile(join, 99),
        "lat_p50": statistics.median(lat) if lat else float("nan"),
        "lat_p99": percentile(lat, 99),
        "burst_p50": statistics.median(raw["burst_latency_ms"]) if raw["burst_latency_ms"] else float("nan"),
        "burst_p99": percentile(raw["burst_latency_ms"], 99),
        "res_first_p50": statistics.median(raw["residence_first_ms"]) if raw["residence_first_ms"] else float("nan"),
        "res_first_p99": percentile(raw["residence_first_ms"], 99),
        "res_last_p50": statistics.median(raw["residence_last_ms"]) if raw["residence_last_ms"] else float("nan"),
        "res_last_p99": percentile(raw["residence_last_ms"], 99),
        "res_n": len(raw["residence_first_ms"]),
        "samples": len(lat),
        "lost": raw["lost"],
        "kib_per_participant": (raw["rss_after_kib"] - raw["rss_before_kib"]) / raw["participants"],
        "rss_mib": raw["rss_after_kib"] / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rooms", default="1,10,50", help="comma-separated room counts (4 participants each)"
    )
    parser.add_argument("--servers", default="roomtone,livekit", help="roomtone and/or livekit")
    parser.add_argument(
        "--samples", type=int, default=200, help="one-at-a-time latency samples per room count"
    )
    parser.add_argument(
        "--livekit-server", default=os.environ.get("LIVEKIT_SERVER") or shutil.which("livekit-server")
    )
    parser.add_argument(
        "--v1", action="store_true", help="let the SDK use its default single-PC /rtc/v1 path"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        spec = json.loads(sys.stdin.readline())
        asyncio.run(Worker(spec["url"], spec["tokens"], spec["v1"]).serve())
        return 0

    from tests.netns import netns_available

    if not netns_available():
        print("rooms.py needs root and iproute2: WebRTC peers only connect inside a network namespace")
        return 2
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if "livekit" in servers and not (args.livekit_server and Path(args.livekit_server).exists()):
        print(
            "note: no livekit-server build found (--livekit-server / $LIVEKIT_SERVER / PATH): anchor skipped"
        )
        servers.remove("livekit")
    results: dict[tuple[str, int], dict[str, float]] = {}
    for rooms in (int(r) for r in args.rooms.split(",")):
        for kind in servers:
            started = time.monotonic()
            raw = run_one(kind, rooms, args.samples, args.livekit_server, args.v1)
            results[(kind, rooms)] = summarise(raw)
            print(
                f"  measured {kind:9} rooms={rooms:3} in {time.monotonic() - started:.0f} s", file=sys.stderr
            )

    header = (
        f"{'server':15} {'rooms':>5} {'ptcp':>5} {'join p50':>9} {'join p99':>9} {'relay p50':>10} "
        f"{'relay p99':>10} {'n':>5} {'burst p50':>10} {'burst p99':>10} {'lost':>4} {'KiB/ptcp':>9} {'RSS MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    for (kind, rooms), s in results.items():
        name = "roomtone" if kind == "roomtone" else "livekit-server"
        print(
            f"{name:15} {rooms:5d} {rooms * PARTICIPANTS_PER_ROOM:5d} {s['join_p50']:7.1f}ms {s['join_p99']:7.1f}ms "
            f"{s['lat_p50']:8.2f}ms {s['lat_p99']:8.2f}ms {s['samples']:5d} "
            f"{s['burst_p50']:8.2f}ms {s['burst_p99']:8.2f}ms {s['lost']:4d} "
            f"{s['kib_per_participant']:9.0f} {s['rss_mib']:8.1f}"
        )
    if any(s["res_n"] for s in results.values()):
        print("\nserver residence: A's DATA in -> DATA out to the first / last of the 3 receivers (pcap on lo)")
        print(f"{'server':15} {'rooms':>5} {'first p50':>10} {'first p99':>10} {'last p50':>10} {'last p99':>10} {'n':>5}")
        for (kind, rooms), s in results.items():
            name = "roomtone" if kind == "roomtone" else "livekit-server"
            print(
                f"{name:15} {rooms:5d} {s['res_first_p50']:8.3f}ms {s['res_first_p99']:8.3f}ms "
                f"{s['res_last_p50']:8.3f}ms {s['res_last_p99']:8.3f}ms {s['res_n']:5d}"
            )
    elif not (shutil.which("tcpdump") or shutil.which("dumpcap")):
        print("\nnote: no tcpdump/dumpcap: server residence not measured")
    if "livekit" in servers and "roomtone" in servers:
        print("\nratio roomtone / livekit-server (lower is better)")
        for rooms in sorted({r for _, r in results}):
            a, b = results.get(("roomtone", rooms)), results.get(("livekit", rooms))
            if a and b:
                print(
                    f"  rooms={rooms:3}: join p50 x{a['join_p50'] / b['join_p50']:.2f}"
                    f"  relay p50 x{a['lat_p50'] / b['lat_p50']:.2f}  relay p99 x{a['lat_p99'] / b['lat_p99']:.2f}"
                    f"  burst p99 x{a['burst_p99'] / b['burst_p99']:.2f}"
                    f"  memory/participant x{a['kib_per_participant'] / max(b['kib_per_participant'], 1):.2f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
