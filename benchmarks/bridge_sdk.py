"""SIP bridge DTMF latency end to end: phones -> ``roomtone serve`` -> official SDK (Python or Go), and back.

``benchmarks/bridge.py`` measures the gateway in one process with server-side room participants;
this one runs the whole thing as deployed, in a network namespace (WebRTC ignores loopback):

* ``roomtone serve`` with its embedded defaults (INFO logging: a line per relayed digit) plus a SIP
  port and RTP range;
* an **agents** process: N official SDK participants, one per room ``bench_p<i>``: the Python
  ``livekit`` SDK (the Rust core; default), or with ``--sdk go`` the Go server-sdk-go
  (``tests/go/cmd/bridgeagents``, same line protocol). The Python SDK's core costs 1.1-1.2 cores
  for 100 idle rooms in one process, against roomtone and livekit-server alike: on a 2-core
  machine that starves the server under test, which is why the Go variant exists;
* a **phones** process: it creates the inbound trunk and an individual dispatch rule with the
  official ``livekit-api`` client, then places N calls with roomtone's UA (SIP) and one bare UDP
  socket per call (RTP, kernel receive stamps).

The phones send 20 ms PCMU audio all the time, as phones do (the press's event packets share the
audio's SSRC, sequence and clock). Each round: **phone -> SDK**, every phone sends an RFC 4733
start packet; latency = from that packet's send to the agent's DTMF event. **SDK -> phone**,
every agent publishes a ``SipDTMF``; latency = from just before that call to the kernel receive
stamp of the first telephone-event packet on its phone's socket. Press patterns (``--spread``):

* ``0``, a **burst**: all N phones (then all N agents) at the same moment, latency from the
  burst's start: the worst case, N digits queued at once;
* ``s > 0``: each of the N presses at its own random moment within ``s`` seconds (the default
  ``1``: 100 calls make 100 digits a second each way), latency from its own start: N calls in
  progress whose users press keys independently.

All processes share the wall clock (``time.time()``), which makes the cross-process figures
comparable. ``--pin`` puts the server alone on the last CPU and every client on the others, as if
the clients ran on other machines. A capture on the namespace's loopback gives the server's own
share ("in server").

The SDK's own dispatch and its WebRTC/SCTP hop are part of these figures, as they are for a user.
No anchor server is run here (livekit-server has no SIP bridge of its own);
``benchmarks/rooms.py`` compares the WebRTC hop with livekit-server.

    python benchmarks/bridge_sdk.py --calls 1,100 --rounds 10 --sdk go      (root: network namespace)
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src"), str(REPO / "benchmarks")]

KEY, SECRET = "APIbridge", "bridge-bench-secret-0123456789abcdef"
HTTP_PORT, SIP_PORT = 7880, 5060
# DTLS records of at least this size carry a DataPacket; smaller ones are SCTP SACKs (65 bytes
# with AES-GCM) and the like. The Go SDK's SipDTMF is 73-77 bytes, the Python SDK's larger.
DATA_RECORD = 70
STAGGER = 0.015  # the warm-up round: call i presses and publishes at i * STAGGER, one at a time
GO_AGENTS = REPO / "tests" / "go" / "bin" / "bridgeagents"  # scripts/install-test-deps.sh builds it
TE_PT = 101


def pct(values: list[float], p: float) -> float:
    import numpy as np

    return float(np.percentile(np.array(values) * 1000, p)) if values else float("nan")


# ------------------------------------------------------------------------------- agents (SDK)

async def agents_main(first: int, n: int) -> None:
    from livekit import api, rtc

    rooms: list[Any] = []
    arrived: dict[tuple[int, int], float] = {}

    def on_dtmf_for(i: int) -> Any:
        def on_dtmf(ev: Any) -> None:
            arrived.setdefault((i, ev.code), time.time())
        return on_dtmf

    for i in range(first, first + n):
        token = (api.AccessToken(KEY, SECRET).with_identity(f"agent{i}")
                 .with_grants(api.VideoGrants(room_join=True, room=f"bench_p{i}")).to_jwt())
        room = rtc.Room()
        room.on("sip_dtmf_received", on_dtmf_for(i))
        await room.connect(f"ws://127.0.0.1:{HTTP_PORT}", token, rtc.RoomOptions(auto_subscribe=False))
        rooms.append(room)
    reply({"joined": n})
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        if cmd["cmd"] == "wait_sip":  # every room has its SIP participant
            deadline = time.monotonic() + 60
            while any(f"sip_p{i}" not in r.remote_participants for i, r in enumerate(rooms, first)):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            reply({"ready": sum(f"sip_p{i}" in r.remote_participants for i, r in enumerate(rooms, first))})
        elif cmd["cmd"] == "collect":
            code = cmd["code"]
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and sum(1 for (i, c) in arrived if c == code) < n:
                await asyncio.sleep(0.01)
            reply({"at": {str(i): t for (i, c), t in arrived.items() if c == code}})
            arrived.clear()
        elif cmd["cmd"] == "publish":
            from roomtone.dtmf.digits import digit_for

            code, spread, stagger = cmd["code"], cmd["spread"], cmd.get("stagger", 0.0)
            # (the Python SDK's publish_dtmf takes no destinations; each room holds one phone)
            if not spread and not stagger:  # a burst: every agent at once
                start = time.time()
                await asyncio.gather(*(r.local_participant.publish_dtmf(code=code, digit=digit_for(code))
                                       for r in rooms))
                reply({"starts": {str(i): start for i in range(first, first + n)}})
                continue
            starts: dict[str, float] = {}
            sends: list[asyncio.Future[None]] = []
            for i, room in enumerate(rooms, first):  # each agent at its own moment in the window
                delay = i * stagger if stagger else random.uniform(0, spread)
                loop.call_later(delay, publish_one, room, code, str(i), starts, sends)
            await asyncio.sleep(spread + (first + n) * stagger + 0.05)
            await asyncio.gather(*sends)
            reply({"starts": starts})
        elif cmd["cmd"] == "quit":
            break
    for r in rooms:
        await r.disconnect()


def publish_one(room: Any, code: int, key: str, starts: dict[str, float], sends: list[Any]) -> None:
    from roomtone.dtmf.digits import digit_for

    starts[key] = time.time()
    sends.append(asyncio.ensure_future(room.local_participant.publish_dtmf(code=code, digit=digit_for(code))))


# ------------------------------------------------------------------------------- phones

async def phones_main(n: int) -> None:
    from livekit import api
    from livekit.protocol import sip as sip_pb

    from bridge import Phones
    from roomtone.sip.ua import UserAgent

    lk = api.LiveKitAPI(f"http://127.0.0.1:{HTTP_PORT}", KEY, SECRET)
    await lk.sip.create_inbound_trunk(sip_pb.CreateSIPInboundTrunkRequest(
        trunk=sip_pb.SIPInboundTrunkInfo(name="bench", numbers=["+1000"])))
    await lk.sip.create_dispatch_rule(sip_pb.CreateSIPDispatchRuleRequest(
        rule=sip_pb.SIPDispatchRule(dispatch_rule_individual=sip_pb.SIPDispatchRuleIndividual(
            room_prefix="bench", no_randomness=True))))
    await lk.aclose()
    ua = UserAgent("127.0.0.1", 0, transports=("UDP",))
    await ua.start()
    phones = Phones(ua, TE_PT)
    for i in range(n):
        await phones.call(f"sip:+1000@127.0.0.1:{SIP_PORT}", f"p{i}")
    reply({"calls": n})
    phones.start_audio()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        if cmd["cmd"] == "press":  # a key press on every phone, 100 ms long
            code, spread, stagger = cmd["code"], cmd["spread"], cmd.get("stagger", 0.0)
            if not spread and not stagger:  # a burst: every phone at once
                start = time.time()
                starts = phones.press_start(code)
                await asyncio.sleep(0.1)
                phones.press_end(code, starts)
                reply({"sent": {str(i): start for i in range(n)}})
                continue
            sent: dict[str, float] = {}
            for i in range(n):  # each phone at its own moment in the window
                loop.call_later(i * stagger if stagger else random.uniform(0, spread), press_one, phones, i, code, sent)
            await asyncio.sleep(spread + n * stagger + 0.15)
            reply({"sent": sent})
        elif cmd["cmd"] == "heard":
            code = cmd["code"]
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and sum(1 for (i, c) in phones.rx if c == code) < n:
                await asyncio.sleep(0.01)
            reply({"at": {str(i): t for (i, c), t in phones.rx.items() if c == code}})
            phones.rx.clear()
        elif cmd["cmd"] == "quit":
            break
    await phones.close()
    await ua.close()


def press_one(phones: Any, i: int, code: int, sent: dict[str, float]) -> None:
    sent[str(i)] = time.time()
    ts = phones.press_start_one(i, code)
    asyncio.get_running_loop().call_later(0.1, phones.press_end_one, i, code, ts)


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------- driver

class Worker:
    def __init__(self, ns: Any, role: str, n: int, first: int = 0, prefix: list[str] | None = None,
                 keys: tuple[str, str] = (KEY, SECRET), identity: str = "agent") -> None:
        if role == "go-agents":  # the same line protocol, on the Go SDK (tests/go/cmd/bridgeagents)
            argv = [str(GO_AGENTS), f"ws://127.0.0.1:{HTTP_PORT}", *keys, str(first), str(n), identity]
        else:
            argv = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--n", str(n), "--first", str(first)]
        self.proc = ns.popen([*(prefix or []), *argv],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                             env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "src")])))

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def ask(self, obj: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.proc.stdout is not None
        if obj is not None:
            self.send(obj)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited (rc={self.proc.wait()})")
        return dict(json.loads(line))


def run(n: int, rounds: int, agent_procs: int, spreads: list[float], pin: bool, sdk: str) -> dict[float, dict[str, Any]]:
    """One server and its N calls; ``rounds`` rounds per press pattern (``spreads``: 0 is a
    burst, every phone or agent at once; s > 0 spreads the N presses uniformly over s seconds).
    Returns, per pattern, the latencies and the server's captured share."""
    from tests.netns import Netns

    from roomtone.dtmf.digits import digit_for

    if sdk == "go" and not GO_AGENTS.exists():
        raise SystemExit(f"{GO_AGENTS} missing: run `cd tests/go && go build -o bin/ ./...`")
    with Netns(prefix="rtbridge") as ns:
        config = ns.tmp_path("bridge.yaml")
        config.write_text(f"sip:\n  port: {SIP_PORT}\n  transports: [UDP]\n"
                          "  rtp_port_range_start: 30000\n  rtp_port_range_end: 32000\n")
        log = ns.tmp_path("server.log")
        env = dict(os.environ, LIVEKIT_API_KEY=KEY, LIVEKIT_API_SECRET=SECRET,
                   XDG_DATA_HOME=str(ns.tmp_path("data")), PYTHONPATH=str(REPO / "src"))
        # --pin: the server alone on the last CPU, every client process on the others, as if the
        # SDK participants and phones ran on other machines
        last = os.cpu_count() or 1
        pin_server = ["taskset", "-c", str(last - 1)] if pin and last > 1 else []
        pin_clients = ["taskset", "-c", f"0-{last - 2}"] if pin and last > 1 else []
        with open(log, "wb") as out:
            server = ns.popen([*pin_server, sys.executable, "-m", "roomtone.cli", "serve", "--bind", "127.0.0.1", "--port",
                      str(HTTP_PORT), "--config", str(config)], stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while not ns.http_get(f"http://127.0.0.1:{HTTP_PORT}/", timeout=2)[0]:
            if time.monotonic() > deadline:
                raise RuntimeError("roomtone serve did not start:\n" + log.read_text())
            time.sleep(0.2)
        procs = max(1, min(agent_procs, n))
        bounds = [(k * n // procs, (k + 1) * n // procs) for k in range(procs)]
        agents = [Worker(ns, "go-agents" if sdk == "go" else "agents", hi - lo, lo, pin_clients) for lo, hi in bounds]
        for a in agents:
            a.ask()
        phones = Worker(ns, "phones", n, 0, pin_clients)
        phones.ask()
        ready = sum(a.ask({"cmd": "wait_sip"})["ready"] for a in agents)
        if ready != n:
            raise RuntimeError(f"only {ready} of {n} SIP participants joined:\n" + log.read_text()[-3000:])
        # what each process costs with every call up and nobody pressing (ip netns exec and
        # taskset exec, so these pids are the processes themselves)
        idle = cpu_shares({"server": [server.pid], "SDK participants": [a.proc.pid for a in agents],
                           "phones": [phones.proc.pid]}, 5.0)
        pcap = ns.tmp_path("bridge.pcap")
        dump = ns.popen([*pin_clients, "tcpdump", "-i", "lo", "-w", str(pcap), "-U", "-s", "96", "udp"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if shutil.which("tcpdump") else None
        time.sleep(1.0)
        results: dict[float, dict[str, Any]] = {s: {"up": [], "down": [], "expected": rounds * n, "idle_cpu": idle}
                                                 for s in spreads}
        rounds_seen: list[Round] = []
        # round 0 warms up (the agents' publisher connections start lazily) and shows the capture
        # which phone goes with which agent: call i presses and publishes at i * STAGGER
        plan = [-1.0] + [s for s in spreads for _ in range(rounds)]
        for r, spread in enumerate(plan):
            code = r % 10
            stagger = STAGGER if spread < 0 else 0.0
            spread = max(spread, 0.0)
            sent = phones.ask({"cmd": "press", "code": code, "spread": spread, "stagger": stagger})["sent"]
            got: dict[str, float] = {}
            for a in agents:
                got.update(a.ask({"cmd": "collect", "code": code})["at"])
            # the presses end 100 ms after they start, and the end sends each SDK a detail packet:
            # let that pass, so the next direction is timed on its own
            time.sleep(0.25)
            for a in agents:  # every agents process starts its presses at once
                a.send({"cmd": "publish", "code": code, "digit": digit_for(code), "spread": spread, "stagger": stagger})
            starts: dict[str, float] = {}
            for a in agents:
                starts.update(a.ask()["starts"])
            heard = phones.ask({"cmd": "heard", "code": code})["at"]
            if r:
                res = results[spread]
                res["up"] += [got[i] - sent[i] for i in sent if i in got]
                res["down"] += [t - starts[i] for i, t in heard.items() if i in starts]
            rounds_seen.append(Round(spread, sent, starts, r == 0, n * stagger))
            time.sleep(0.3)
        for w in (phones, *agents):
            assert w.proc.stdin is not None
            w.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            w.proc.stdin.flush()
            w.proc.wait(timeout=60)
        if dump is not None:
            time.sleep(0.5)
            dump.terminate()
            dump.wait(timeout=10)
            for spread, (up, down) in server_residence(pcap, rounds_seen).items():
                results[spread]["residence"], results[spread]["residence_down"] = up, down
            if os.environ.get("BRIDGE_SDK_KEEP_PCAP"):
                shutil.copy(pcap, os.environ["BRIDGE_SDK_KEEP_PCAP"])
        if os.environ.get("BRIDGE_SDK_KEEP_LOG"):
            shutil.copy(log, os.environ["BRIDGE_SDK_KEEP_LOG"])
        return results


def cpu_shares(groups: dict[str, list[int]], seconds: float) -> dict[str, float]:
    """Share of one core each group of processes used over ``seconds`` (all their threads)."""
    def cpu(pids: list[int]) -> float:
        total = 0
        for pid in pids:
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{tid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except FileNotFoundError:  # a thread that just ended
                    continue
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    before = {name: cpu(pids) for name, pids in groups.items()}
    time.sleep(seconds)
    return {name: (cpu(pids) - before[name]) / seconds for name, pids in groups.items()}


@dataclass
class Round:
    spread: float
    sent: dict[str, float]  # call index -> when its phone sent the press's start packet
    starts: dict[str, float]  # call index -> when its agent called publish
    learn: bool  # the warm-up round the ports of each call are learnt from
    length: float = 0.0  # how long its staggered presses take


def pair(causes: list[tuple[float, int]], effects: list[tuple[float, int]]) -> dict[int, int]:
    """Ports of one-at-a-time causes -> ports of their effects, both lists (time, port) sorted by
    time: each new cause port gets the first later effect on a port not yet taken (later effects
    on taken ports, such as a press's detail packet 100 ms on, belong to earlier causes)."""
    mapping: dict[int, int] = {}
    taken: set[int] = set()
    k = 0
    for t, port in causes:
        if port in mapping:
            continue
        while k < len(effects) and (effects[k][0] < t or effects[k][1] in taken):
            k += 1
        if k == len(effects):
            break
        mapping[port] = effects[k][1]
        taken.add(effects[k][1])
    return mapping


def server_residence(pcap: Path, rounds: list[Round]) -> dict[float, tuple[list[float], list[float]]]:
    """The server's own share per digit, from one capture on the namespace's loopback (so the SDK
    and phone processes' scheduling is not in it), per press pattern.

    The warm-up round, where call i presses and publishes at i * ``STAGGER``, gives each call's
    ports: its phone's RTP port (the i-th press in), its agent's receiving port (where that press's
    first DataPacket goes) and sending port (the i-th agent's DTLS record in; the Go SDK has two
    PeerConnections). Then, per call: phone -> SDK from its press's start packet reaching the
    server (a burst: from the burst's first one) to the first DTLS application-data record the
    server sends its agent; SDK -> phone from its agent's first record after its publish call
    reaching the server to the first RFC 4733 start packet the server sends its phone."""
    import dpkt

    packets: list[tuple[float, bytes, int, int, int]] = []
    with open(pcap, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.udp.UDP):
                continue
            udp = ip.data
            # (the capture keeps 96 bytes of each packet: the UDP length field has the real size)
            packets.append((ts, bytes(udp.data), udp.sport, udp.dport, udp.ulen - 8))
    times = [p[0] for p in packets]

    def between(t0: float, t1: float) -> list[tuple[float, bytes, int, int, int]]:
        return packets[bisect.bisect_left(times, t0):bisect.bisect_left(times, t1)]

    def is_press_in(p: tuple[float, bytes, int, int, int]) -> bool:  # marker bit: a press's start
        return 30000 <= p[3] <= 32000 and len(p[1]) >= 2 and p[1][1] == 0x80 | TE_PT

    def is_event_out(p: tuple[float, bytes, int, int, int]) -> bool:
        return 30000 <= p[2] <= 32000 and len(p[1]) >= 2 and p[1][1] == 0x80 | TE_PT

    def is_record(p: tuple[float, bytes, int, int, int]) -> bool:  # a DataPacket, either way
        return p[1][:1] == b"\x17" and p[4] >= DATA_RECORD and not 30000 <= p[2] <= 32000

    out: dict[float, tuple[list[float], list[float]]] = {}
    phone_port: dict[str, int] = {}
    agent_rx: dict[str, int] = {}
    agent_tx: dict[str, int] = {}
    for rnd in rounds:
        if rnd.learn:
            t0 = min(rnd.sent.values())
            window = between(t0 - 0.01, t0 + rnd.length + 0.1)
            ins = [p for p in window if is_press_in(p)]
            ports = list(dict.fromkeys(p[2] for p in ins))  # in press order = call order
            rx = pair([(p[0], p[2]) for p in ins], [(p[0], p[3]) for p in window if is_record(p)])
            server_ports = {p[2] for p in window if is_record(p) and p[3] in rx.values()}
            t0 = min(rnd.starts.values())
            window = between(t0 - 0.005, t0 + rnd.length + 0.3)
            senders = list(dict.fromkeys(p[2] for p in window if is_record(p) and p[2] not in server_ports))
            order = sorted(rnd.sent, key=int)
            phone_port = dict(zip(order, ports, strict=False))
            agent_rx = {i: rx[port] for i, port in phone_port.items() if port in rx}
            agent_tx = dict(zip(sorted(rnd.starts, key=int), senders, strict=False))
            continue
        up, down = out.setdefault(rnd.spread, ([], []))
        burst_start = None
        if not rnd.spread:
            t0 = min(rnd.sent.values())
            burst_start = next((p[0] for p in between(t0 - 0.005, t0 + 0.1) if is_press_in(p)), None)
        for i, sent in rnd.sent.items():
            port, agent = phone_port.get(i), agent_rx.get(i)
            t_in = next((p[0] for p in between(sent - 0.001, sent + 0.5) if is_press_in(p) and p[2] == port), None)
            if t_in is None or agent is None:
                continue
            t_out = next((p[0] for p in between(t_in, t_in + 0.1) if is_record(p) and p[3] == agent), None)
            if t_out is not None:
                up.append(t_out - (burst_start if burst_start is not None else t_in))
        for i, start in rnd.starts.items():
            port, agent = phone_port.get(i), agent_tx.get(i)
            t_in = next((p[0] for p in between(start - 0.001, start + 0.5) if is_record(p) and p[2] == agent), None)
            if t_in is None or port is None:
                continue
            t_out = next((p[0] for p in between(t_in, t_in + 0.3) if is_event_out(p) and p[3] == port), None)
            if t_out is not None:
                down.append(t_out - t_in)
    return out


def run_anchor(n: int, rounds: int, spreads: list[float], binary: str, pin: bool) -> dict[float, list[float]]:
    """The anchor: the same DTMF hop through livekit-server, SDK to SDK (it has no SIP bridge).

    Room ``bench_p<i>`` holds two Go SDK participants: ``sip_p<i>`` (a second bridgeagents
    process standing in for the phone) publishes a reliable ``SipDTMF``, ``agent<i>`` receives
    it. Same rooms, patterns and rounds as the roomtone run; latency = from just before the
    publish to the receiving SDK's event."""
    from tests.netns import Netns
    from tests.rtc.sdk_peers import API_KEY, API_SECRET, start_livekit_server

    from roomtone.dtmf.digits import digit_for

    out: dict[float, list[float]] = {s: [] for s in spreads}
    with Netns(prefix="rtanchor") as ns:
        server = start_livekit_server(ns, binary, port=HTTP_PORT)
        last = os.cpu_count() or 1
        if pin and last > 1:
            ns.run(["taskset", "-a", "-pc", str(last - 1), str(server.pid)], check=True)
        pin_clients = ["taskset", "-c", f"0-{last - 2}"] if pin and last > 1 else []
        keys = (API_KEY, API_SECRET)
        receivers = Worker(ns, "go-agents", n, 0, pin_clients, keys, "agent")
        receivers.ask()
        senders = Worker(ns, "go-agents", n, 0, pin_clients, keys, "sip_p")
        senders.ask()
        ready = receivers.ask({"cmd": "wait_sip"})["ready"]
        if ready != n:
            raise RuntimeError(f"anchor: only {ready} of {n} senders seen:\n" + server.log()[-3000:])
        time.sleep(1.0)
        plan = [0.0] + [s for s in spreads for _ in range(rounds)]  # round 0 warms up
        for r, spread in enumerate(plan):
            code = r % 10
            starts = senders.ask({"cmd": "publish", "code": code, "digit": digit_for(code), "spread": spread})["starts"]
            got = receivers.ask({"cmd": "collect", "code": code})["at"]
            if r:
                out[spread] += [got[i] - starts[i] for i in starts if i in got]
            time.sleep(0.3)
        for w in (senders, receivers):
            w.send({"cmd": "quit"})
            w.proc.wait(timeout=60)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", default="1,20")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--role", choices=("agents", "phones"), help=argparse.SUPPRESS)
    ap.add_argument("--spread", default="0,1",
                    help="press patterns, comma-separated: 0 = a burst (all at once), "
                         "s > 0 = each press at a random moment within s seconds")
    ap.add_argument("--sdk", choices=("python", "go"), default="python",
                    help="the SDK participants: Python livekit (Rust core) or Go server-sdk-go")
    ap.add_argument("--pin", action="store_true",
                    help="the server alone on one CPU, the SDK participants, phones and capture on the rest")
    ap.add_argument("--agent-procs", type=int, default=1,
                    help="spread the SDK participants over this many processes")
    ap.add_argument("--anchor", default=os.environ.get("LIVEKIT_SERVER") or shutil.which("livekit-server"),
                    help="a livekit-server binary (default: $LIVEKIT_SERVER or on PATH): the same hop "
                         "SDK to SDK through it, with --sdk go (never fetched by this script)")
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "agents":
        asyncio.run(agents_main(args.first, args.n))
        return
    if args.role == "phones":
        asyncio.run(phones_main(args.n))
        return
    spreads = [float(x) for x in args.spread.split(",")]
    calls = [int(x) for x in args.calls.split(",")]
    rows = [(n, run(n, args.rounds, args.agent_procs, spreads, args.pin, args.sdk)) for n in calls]
    anchor = args.anchor if args.sdk == "go" else None
    anchors = {n: run_anchor(n, args.rounds, spreads, anchor, args.pin) for n in calls} if anchor else {}
    print(f"phones -> roomtone serve -> {args.sdk} SDK (WebRTC, network namespace); {args.rounds} rounds per "
          f"pattern; SDK participants in {args.agent_procs} process(es)"
          + ("; server pinned alone to one CPU" if args.pin else ""))
    print("pattern: 'burst' = all N presses (or publish_dtmf calls) at once, latency from the burst's "
          "start; 'over Ns' = each at a random moment within N seconds, latency from its own start")
    print(f"{'direction':<14}{'calls':>6}{'pattern':>10}{'p50':>9}{'p99':>9}{'samples':>9}{'lost':>6}")
    print("-" * 63)
    for n, results in rows:
        idle = next(iter(results.values()))["idle_cpu"]
        print(f"{n} calls up, nobody pressing, 5 s: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in idle.items())
              + " of a core")
        for spread, res in results.items():
            pattern = "burst" if not spread else f"over {spread:g}s"
            for name, key in (("phone->SDK", "up"), ("SDK->phone", "down")):
                lat = res[key]
                print(f"{name:<14}{n:>6}{pattern:>10}{pct(lat, 50):>8.2f}ms{pct(lat, 99):>7.2f}ms{len(lat):>9}"
                      f"{res['expected'] - len(lat):>6}")
            lat = anchors.get(n, {}).get(spread, [])
            if lat:
                print(f"{'SDK->SDK lk':<14}{n:>6}{pattern:>10}{pct(lat, 50):>8.2f}ms{pct(lat, 99):>7.2f}ms{len(lat):>9}"
                      f"{res['expected'] - len(lat):>6}   (anchor: livekit-server, SDK to SDK)")
                for name, key in (("phone->SDK", "up"), ("SDK->phone", "down")):
                    ours = res[key]
                    print(f"{'  ratio':<14}{n:>6}{pattern:>10}{pct(ours, 50) / pct(lat, 50):>9.2f}"
                          f"{pct(ours, 99) / pct(lat, 99):>9.2f}{'':>15}   ({name} / anchor)")
            for key, what in (("residence", "phone->SDK: RTP in -> DTLS out, captured"),
                              ("residence_down", "SDK->phone: its DTLS in -> its RFC 4733 out, captured")):
                lat = res.get(key, [])
                if lat:
                    print(f"{'  in server':<14}{n:>6}{pattern:>10}{pct(lat, 50):>8.2f}ms{pct(lat, 99):>7.2f}ms"
                          f"{len(lat):>9}      ({what})")


if __name__ == "__main__":
    main()
