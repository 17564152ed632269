"""SIP benchmarks: message parse+serialize throughput, and call setup rate against SIPp.

1. Messages: roomtone's ``parse`` (with the fields a UA reads: Call-ID, CSeq, top Via, From/To
   tags) and ``to_bytes`` on an INVITE with SDP, a 200 with SDP, an ACK and a BYE. Anchor, same
   run, same bytes: the standard library's header parser ``http.client.parse_headers`` (the
   email.parser machinery), which only splits header lines and validates nothing.
2. Calls: a SIPp UAC (``uac_bye_from_roomtone.xml``: INVITE, 200, ACK, then roomtone sends BYE)
   against a roomtone UAS in its own process pinned to one core (``taskset``), at rising rates;
   the result is the highest rate with every call successful. Anchor: SIPp's built-in UAS
   (``-sn uas``, C++) on the same ladder, also pinned to one core.

    python benchmarks/sip.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "src"))

from roomtone.sip.message import parse  # noqa: E402

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n"
    b"User-Agent: bench\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 142\r\n\r\n"
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
    b"t=0 0\r\nm=audio 49170 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;received=192.0.2.1;rport=5060\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 142\r\n\r\n" + INVITE.split(b"\r\n\r\n", 1)[1]
)
ACK = (
    b"ACK sip:bob@192.0.2.4 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds9;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 ACK\r\n"
    b"Content-Length: 0\r\n\r\n"
)
BYE = ACK.replace(b"ACK", b"BYE").replace(b"314159 BYE", b"314160 BYE")
MESSAGES = [INVITE, OK, ACK, BYE]


def bench_messages(seconds: float, rounds: int = 5) -> list[tuple[str, float]]:
    def rate(fn) -> float:
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(200):
                fn()
            n += 200
            now = time.perf_counter()
            if now >= deadline:
                return n * len(MESSAGES) / (now - start)

    parsed = [parse(m) for m in MESSAGES]
    assert not any(type(p).__name__ == "ParseError" for p in parsed)

    def ours_parse() -> None:
        for m in MESSAGES:
            msg = parse(m)
            msg.call_id, msg.cseq, msg.top_via.branch, msg.from_.tag, msg.to.tag  # noqa: B018

    def ours_serialize() -> None:
        for p in parsed:
            p.to_bytes()  # type: ignore[union-attr]

    heads = [m.split(b"\r\n", 1)[1] for m in MESSAGES]

    def anchor_parse() -> None:
        for h in heads:
            hdrs = http.client.parse_headers(io.BytesIO(h))
            hdrs["Call-ID"], hdrs["CSeq"], hdrs["Via"]  # noqa: B018

    def ours_roundtrip() -> None:
        for m in MESSAGES:
            parse(m).to_bytes()  # type: ignore[union-attr]

    contenders = [
        ("roomtone parse (+ Call-ID/CSeq/Via/tags)", ours_parse),
        ("roomtone serialize", ours_serialize),
        ("roomtone parse + serialize", ours_roundtrip),
        ("anchor: http.client.parse_headers", anchor_parse),
    ]
    # interleaved rounds, best of each: the machine is shared, so noise only ever slows a round
    best = {name: 0.0 for name, _ in contenders}
    for _ in range(rounds):
        for name, fn in contenders:
            best[name] = max(best[name], rate(fn))
    return [(name, best[name]) for name, _ in contenders]


# ------------------------------------------------------------------ call setup rate


def serve(port: int) -> None:
    """The roomtone UAS under test: answer every call at once, then hang up with BYE."""
    import logging

    from roomtone.sip.ua import UserAgent

    logging.disable(logging.WARNING)
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20998 RTP/AVP 0\r\n"

    async def run_uas() -> None:
        ua = UserAgent("127.0.0.1", port, transports=("UDP",))
        await ua.start()

        async def on_invite(call) -> None:
            try:
                await call.answer(sdp)
                await call.bye()
            except Exception:  # noqa: BLE001 - counted by SIPp as failed calls
                pass

        ua.on_invite = on_invite
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run_uas())


def run_sipp(target_port: int, rate: int, calls: int, scenario: list[str]) -> Run:
    from tests.phones.common import free_port

    port = free_port()
    mport = free_port(4)
    stat_dir = os.path.join("/tmp", f"roomtone-bench-sipp-{os.getpid()}")
    os.makedirs(stat_dir, exist_ok=True)
    stf = os.path.join(stat_dir, f"stats-{rate}.csv")
    if os.path.exists(stf):
        os.remove(stf)
    argv = ["sipp", f"127.0.0.1:{target_port}", *scenario, "-i", "127.0.0.1", "-p", str(port),
            "-mi", "127.0.0.1", "-mp", str(mport), "-r", str(rate), "-m", str(calls), "-l", str(rate * 4),
            "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_stat", "-stf", stf,
            "-max_socket", "1000", "-recv_timeout", "10000"]
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=stat_dir, capture_output=True, text=True, timeout=90)
    elapsed = time.monotonic() - t0
    ok = failed = retrans = 0
    try:
        import csv

        with open(stf, newline="") as f:
            rows = list(csv.reader(f, delimiter=";"))
        stats = dict(zip(rows[0], rows[-1], strict=False))
        ok = int(stats.get("SuccessfulCall(C)", "0"))
        failed = int(stats.get("FailedCall(C)", "0"))
        retrans = int(stats.get("Retransmissions(C)", "0"))
    except (OSError, ValueError, IndexError):
        pass
    shutil.rmtree(stat_dir, ignore_errors=True)
    failed += calls - ok - failed if p.returncode != 0 else 0
    return Run(rate, ok, failed, ok / elapsed, retrans)


@dataclass
class Run:
    rate: int
    ok: int
    failed: int
    achieved: float
    """successful calls / wall time of the whole SIPp run (setup to last BYE)"""
    retrans: int

    @property
    def clean(self) -> bool:
        """Every call succeeded and the offered rate was actually carried (within 10 %)."""
        return self.failed == 0 and self.achieved >= 0.9 * self.rate


def runqueue_seconds(pid: int) -> float:
    """Time the process spent runnable but waiting for a CPU (other load on the shared core)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_calls(rates: list[int], seconds: float) -> list[tuple[str, Run, str]]:
    from tests.phones.common import free_port
    from tests.phones.sipp import SCENARIO_DIR

    rows: list[tuple[str, Run, str]] = []
    uac = ["-sf", str(SCENARIO_DIR / "uac_bye_from_roomtone.xml")]
    # roomtone UAS in its own process, on one core
    port = free_port()
    taskset = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    proc = subprocess.Popen([*taskset, sys.executable, __file__, "--serve", str(port)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for rate in rates:
            c0, w0 = cpu_seconds(proc.pid), runqueue_seconds(proc.pid)
            t0 = time.monotonic()
            run = run_sipp(port, rate, int(rate * seconds), uac)
            wall = time.monotonic() - t0
            cpu = (cpu_seconds(proc.pid) - c0) / wall
            wait = (runqueue_seconds(proc.pid) - w0) / wall
            rows.append(("roomtone UAS", run, f"{cpu * 100:.0f}% / {wait * 100:.0f}%"))
            if not run.clean:
                break
    finally:
        proc.terminate()
        proc.wait()
    # anchor: SIPp's own UAS (-sn uas answers, its UAC hangs up), same ladder, same core
    port = free_port()
    sipp_uas = subprocess.Popen([*taskset, "sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port),
                                 "-mp", str(free_port(4)), "-nostdin"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd="/tmp")
    time.sleep(0.5)
    try:
        for rate in rates:
            run = run_sipp(port, rate, int(rate * seconds), ["-sn", "uac"])
            rows.append(("anchor: SIPp UAS (C++)", run, "-"))
            if not run.clean:
                break
    finally:
        sipp_uas.terminate()
        sipp_uas.wait()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer rates")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    secs = 0.2 if args.quick else 0.5
    results = bench_messages(secs)
    anchor = results[-1][1]
    print("## SIP messages (INVITE+SDP, 200+SDP, ACK, BYE; messages per second, one core)\n")
    print(f"| {'what':<42} | {'msg/s':>10} | {'vs anchor':>9} |")
    print(f"|{'-' * 44}|{'-' * 12}|{'-' * 11}|")
    for name, r in results:
        print(f"| {name:<42} | {r:>10,.0f} | {r / anchor:>8.2f}x |")
    rates = [100, 250, 500] if args.quick else [100, 200, 300, 400, 500, 600, 800, 1000]
    rows = bench_calls(rates, 2.0 if args.quick else 4.0)
    print("\n## Call setup rate (SIPp UAC: INVITE/200/ACK, callee sends BYE; callee pinned to one core)\n")
    print(f"| {'callee':<24} | {'offered cps':>11} | {'carried cps':>11} | {'ok':>6} | {'failed':>6} "
          f"| {'retrans':>7} | {'callee CPU / waiting for CPU':>28} |")
    print(f"|{'-' * 26}|{'-' * 13}|{'-' * 13}|{'-' * 8}|{'-' * 8}|{'-' * 9}|{'-' * 30}|")
    best: dict[str, int] = {}
    for name, run, cpu in rows:
        print(f"| {name:<24} | {run.rate:>11} | {run.achieved:>11.0f} | {run.ok:>6} | {run.failed:>6} "
              f"| {run.retrans:>7} | {cpu:>28} |")
        if run.clean:
            best[name] = max(best.get(name, 0), run.rate)
    print()
    for name, b in best.items():
        print(f"highest offered rate carried with no failed call, {name}: {b} cps (ladder top {rates[-1]})")


if __name__ == "__main__":
    main()
