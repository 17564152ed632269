"""Rooms benchmark: join time, DTMF relay latency A->B and server memory per participant.

For each server (roomtone, and the real livekit-server as the anchor when a local build is
available) and each room count (default 1, 10 and 50 rooms of 4 participants), in a fresh network
namespace with a fresh server:

* join time: ``Room.connect()`` duration per participant (the 4 of a room join concurrently, rooms
  one after another);
* memory: the server's RSS after all participants joined minus its RSS before the first join,
  divided by the number of participants;
* DTMF relay latency: in rounds, participant A of every room publishes one tone at once; the time
  from just before ``publish_dtmf`` to B's ``sip_dtmf_received`` event is one sample (C and D
  receive it too, so the server fans out 3 copies per room). Rounds are 50 ms apart, so with one
  room this is the idle-server latency the target (p99 < 10 ms) is about.

Participants are official Python ``livekit`` SDK participants (the Rust core, as in production),
all hosted as separate ``rtc.Room`` objects in ONE worker process inside the namespace: a process
per participant would need 200 interpreters on 2 cores. The worker's own event dispatch is part
of every figure, for both servers alike, so compare ratios, not absolute numbers.

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


async def worker(
    url: str, tokens: list[list[str]], server_pid: int, samples: int, v1: bool
) -> dict[str, Any]:
    from livekit import rtc

    from roomtone.dtmf.digits import digit_for

    options = rtc.RoomOptions(auto_subscribe=True, single_peer_connection=None if v1 else False)
    rooms: list[list[Any]] = []
    join_ms: list[float] = []
    # received[room] = perf_counter of each tone B got, in order
    received: list[list[float]] = [[] for _ in tokens]
    arrived = asyncio.Event()
    expected = [0]

    def on_dtmf_for(index: int) -> Any:
        def on_dtmf(dtmf: Any) -> None:
            received[index].append(time.perf_counter())
            if sum(len(r) for r in received) >= expected[0]:
                arrived.set()

        return on_dtmf

    async def join(token: str, index: int, is_b: bool) -> Any:
        room = rtc.Room()
        if is_b:
            room.on("sip_dtmf_received", on_dtmf_for(index))
        t0 = time.perf_counter()
        await room.connect(url, token, options)
        join_ms.append((time.perf_counter() - t0) * 1000)
        return room

    rss_before = rss_kib(server_pid)
    for index, room_tokens in enumerate(tokens):
        members = await asyncio.gather(*(join(tok, index, i == 1) for i, tok in enumerate(room_tokens)))
        rooms.append(list(members))
    # Everyone must see the other three before A's tones can be attributed.
    deadline = time.monotonic() + 30
    while any(len(r.remote_participants) < PARTICIPANTS_PER_ROOM - 1 for m in rooms for r in m):
        if time.monotonic() > deadline:
            raise RuntimeError("participants did not all see each other within 30 s")
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # let PeerConnections and the server settle before reading memory
    rss_after = rss_kib(server_pid)

    lost = 0

    async def burst(code: int, into: list[float] | None) -> None:
        """Every room's A sends one tone at the same moment; one sample per room."""
        nonlocal lost
        expected[0] = sum(len(r) for r in received) + len(rooms)
        arrived.clear()
        before = [len(r) for r in received]
        starts = [0.0] * len(rooms)

        async def send(index: int) -> None:
            starts[index] = time.perf_counter()
            await rooms[index][0].local_participant.publish_dtmf(code=code, digit=digit_for(code))

        await asyncio.gather(*(send(i) for i in range(len(rooms))))
        try:
            await asyncio.wait_for(arrived.wait(), timeout=10)
        except TimeoutError:
            pass
        for index in range(len(rooms)):
            new = received[index][before[index] :]
            if not new:
                lost += 1
            elif into is not None:
                into.append((new[0] - starts[index]) * 1000)

    # Warm-up, not measured: A's publisher PeerConnection comes up lazily on its first tone.
    await burst(0, None)
    await asyncio.sleep(0.2)

    # One tone at a time, rooms in turn: relay latency with N rooms connected but quiet.
    latencies: list[float] = []
    for sample in range(samples):
        index = sample % len(rooms)
        code = sample % 16
        expected[0] = sum(len(r) for r in received) + 1
        arrived.clear()
        before = len(received[index])
        t0 = time.perf_counter()
        await rooms[index][0].local_participant.publish_dtmf(code=code, digit=digit_for(code))
        try:
            await asyncio.wait_for(arrived.wait(), timeout=5)
        except TimeoutError:
            pass
        if len(received[index]) > before:
            latencies.append((received[index][before] - t0) * 1000)
        else:
            lost += 1
        await asyncio.sleep(0.01)

    # All rooms at once, 50 ms apart: the fan-out burst (client-side queueing included).
    burst_latencies: list[float] = []
    for phase in range(max(5, samples // len(rooms))):
        await burst(phase % 16, burst_latencies)
        await asyncio.sleep(0.05)

    await asyncio.gather(*(r.disconnect() for m in rooms for r in m))
    participants = len(tokens) * PARTICIPANTS_PER_ROOM
    return {
        "participants": participants,
        "join_ms": join_ms,
        "latency_ms": latencies,
        "burst_latency_ms": burst_latencies,
        "lost": lost,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
    }


# -- orchestration: runs outside ---------------------------------------------------------------
def run_one(server_kind: str, rooms: int, samples: int, livekit_bin: str | None, v1: bool) -> dict[str, Any]:
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
        spec = json.dumps(
            {"url": server.url, "tokens": tokens, "pid": server.pid, "samples": samples, "v1": v1}
        )
        res = ns.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            input=spec,
            timeout=600,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "src")])),
        )
        if res.returncode != 0:
            raise RuntimeError(
                f"{server_kind} worker failed (rc={res.returncode}):\n{res.stderr[-3000:]}\n{server.log()[-2000:]}"
            )
        return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def summarise(raw: dict[str, Any]) -> dict[str, float]:
    lat, join = raw["latency_ms"], raw["join_ms"]
    return {
        "join_p50": statistics.median(join),
        "join_p99": percentile(join, 99),
        "lat_p50": statistics.median(lat) if lat else float("nan"),
        "lat_p99": percentile(lat, 99),
        "burst_p50": statistics.median(raw["burst_latency_ms"]) if raw["burst_latency_ms"] else float("nan"),
        "burst_p99": percentile(raw["burst_latency_ms"], 99),
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
        spec = json.loads(sys.stdin.read())
        out = asyncio.run(worker(spec["url"], spec["tokens"], spec["pid"], spec["samples"], spec["v1"]))
        print(json.dumps(out))
        return 0

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
