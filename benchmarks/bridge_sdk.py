"""SIP bridge DTMF latency end to end: phones -> ``roomtone serve`` -> official Python SDK, and back.

``benchmarks/bridge.py`` measures the gateway in one process with server-side room participants;
this one runs the whole thing as deployed, in a network namespace (WebRTC ignores loopback):

* ``roomtone serve`` with its embedded defaults plus a SIP port and RTP range (log level: warnings);
* an **agents** process: N official Python ``livekit`` SDK participants (the Rust core over WebRTC),
  one per room ``bench_p<i>``;
* a **phones** process: it creates the inbound trunk and an individual dispatch rule with the
  official ``livekit-api`` client, then places N calls with roomtone's UA (SIP) and one bare UDP
  socket per call (RTP, kernel receive stamps).

The phones send 20 ms PCMU audio all the time, as phones do (the press's event packets share the
audio's SSRC, sequence and clock). Each round: **phone -> SDK**, every phone sends an RFC 4733 start
packet at once; latency = from
that packet's send to the agent's ``sip_dtmf_received`` event. **SDK -> phone**, every agent calls
``publish_dtmf`` at once; latency = from the start of that burst to the kernel receive stamp of the
first telephone-event packet on the phone's socket. Both processes share the wall clock
(``time.time()``), which is what makes the cross-process figures comparable.

The SDK's own dispatch (FFI -> Python event) and its WebRTC/SCTP hop are part of these figures, as
they are for a user; with N participants in one agents process that process's event loop is also
part of the burst figures. No anchor server is run here (livekit-server has no SIP bridge of its
own); ``benchmarks/rooms.py`` compares the WebRTC hop with livekit-server.

    python benchmarks/bridge_sdk.py --calls 1,20 --rounds 10      (root: network namespace)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src"), str(REPO / "benchmarks")]

KEY, SECRET = "APIbridge", "bridge-bench-secret-0123456789abcdef"
HTTP_PORT, SIP_PORT = 7880, 5060
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

            code = cmd["code"]
            start = time.time()
            # (the Python SDK's publish_dtmf takes no destinations; each room holds one phone)
            await asyncio.gather(*(r.local_participant.publish_dtmf(code=code, digit=digit_for(code)) for r in rooms))
            reply({"start": start})
        elif cmd["cmd"] == "quit":
            break
    for r in rooms:
        await r.disconnect()


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
        if cmd["cmd"] == "press":  # every phone starts a key press at once, ends it 100 ms later
            code = cmd["code"]
            start = time.time()
            starts = phones.press_start(code)
            await asyncio.sleep(0.1)
            phones.press_end(code, starts)
            reply({"sent": {str(i): start for i in range(n)}})
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


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------- driver

class Worker:
    def __init__(self, ns: Any, role: str, n: int, first: int = 0) -> None:
        self.proc = ns.popen([sys.executable, str(Path(__file__).resolve()), "--role", role, "--n", str(n),
                              "--first", str(first)],
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


def run(n: int, rounds: int, agent_procs: int) -> dict[str, Any]:
    from tests.netns import Netns

    with Netns(prefix="rtbridge") as ns:
        config = ns.tmp_path("bridge.yaml")
        config.write_text(f"sip:\n  port: {SIP_PORT}\n  transports: [UDP]\n"
                          "  rtp_port_range_start: 30000\n  rtp_port_range_end: 32000\n")
        log = ns.tmp_path("server.log")
        env = dict(os.environ, LIVEKIT_API_KEY=KEY, LIVEKIT_API_SECRET=SECRET,
                   XDG_DATA_HOME=str(ns.tmp_path("data")), PYTHONPATH=str(REPO / "src"))
        with open(log, "wb") as out:
            ns.popen([sys.executable, "-m", "roomtone.cli", "serve", "--bind", "127.0.0.1", "--port",
                      str(HTTP_PORT), "--config", str(config)], stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while not ns.http_get(f"http://127.0.0.1:{HTTP_PORT}/", timeout=2)[0]:
            if time.monotonic() > deadline:
                raise RuntimeError("roomtone serve did not start:\n" + log.read_text())
            time.sleep(0.2)
        procs = max(1, min(agent_procs, n))
        bounds = [(k * n // procs, (k + 1) * n // procs) for k in range(procs)]
        agents = [Worker(ns, "agents", hi - lo, lo) for lo, hi in bounds]
        for a in agents:
            a.ask()
        phones = Worker(ns, "phones", n)
        phones.ask()
        ready = sum(a.ask({"cmd": "wait_sip"})["ready"] for a in agents)
        if ready != n:
            raise RuntimeError(f"only {ready} of {n} SIP participants joined:\n" + log.read_text()[-3000:])
        pcap = ns.tmp_path("bridge.pcap")
        dump = ns.popen(["tcpdump", "-i", "lo", "-w", str(pcap), "-U", "-s", "96", "udp"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if shutil.which("tcpdump") else None
        time.sleep(1.0)
        up: list[float] = []
        down: list[float] = []
        presses: list[float] = []
        publishes: list[float] = []
        for r in range(rounds + 1):  # round 0 warms up (the agents' publisher connections start lazily)
            code = r % 10
            sent = phones.ask({"cmd": "press", "code": code, "round": r})["sent"]
            got: dict[str, float] = {}
            for a in agents:
                got.update(a.ask({"cmd": "collect", "code": code})["at"])
            for a in agents:  # every agents process publishes its burst at once
                a.send({"cmd": "publish", "code": code})
            start = min(a.ask()["start"] for a in agents)
            heard = phones.ask({"cmd": "heard", "code": code})["at"]
            if r:
                presses.append(min(sent.values()))
                publishes.append(start)
                up += [got[i] - sent[i] for i in sent if i in got]
                down += [t - start for t in heard.values()]
            time.sleep(0.3)
        for w in (phones, *agents):
            assert w.proc.stdin is not None
            w.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            w.proc.stdin.flush()
            w.proc.wait(timeout=60)
        residence: list[float] = []
        residence_down: list[float] = []
        if dump is not None:
            time.sleep(0.5)
            dump.terminate()
            dump.wait(timeout=10)
            residence, residence_down = server_residence(pcap, presses, publishes)
            if os.environ.get("BRIDGE_SDK_KEEP_PCAP"):
                shutil.copy(pcap, os.environ["BRIDGE_SDK_KEEP_PCAP"])
        return {"up": up, "down": down, "expected": rounds * n, "residence": residence,
                "residence_down": residence_down}


def server_residence(pcap: Path, presses: list[float], publishes: list[float]) -> tuple[list[float], list[float]]:
    """The server's own share per digit, from one capture on the namespace's loopback (so the SDK
    and phone processes' scheduling is not in it).

    phone -> SDK: from a round's first RFC 4733 start packet reaching the server's RTP port to
    each DTLS application-data record (a DataPacket on its way to an SDK) the server sends in the
    next 100 ms. SDK -> phone: for each agent, from its DTLS record (its SipDTMF) reaching the
    server to the RFC 4733 start packet the server sends to that agent's phone. Which phone goes
    with which agent is learnt from the first round: the server relays in arrival order, so the
    k-th press in goes out as the k-th DataPacket."""
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

    def is_press_in(p: tuple[float, bytes, int, int, int]) -> bool:
        return 30000 <= p[3] <= 32000 and len(p[1]) >= 2 and p[1][1] == 0x80 | TE_PT

    def is_data_out(p: tuple[float, bytes, int, int, int]) -> bool:
        return p[1][:1] == b"\x17" and p[4] >= 80 and not 30000 <= p[2] <= 32000

    up: list[float] = []
    phone_of_agent: dict[int, int] = {}
    server_ports: set[int] = set()
    for press in presses:
        window = [p for p in packets if press - 0.01 <= p[0] < press + 0.1]
        ins = sorted((p for p in window if is_press_in(p)), key=lambda p: p[0])
        if not ins:
            continue
        t0 = ins[0][0]
        outs = sorted((p for p in window if p[0] >= t0 and is_data_out(p)), key=lambda p: p[0])
        up += [p[0] - t0 for p in outs]
        server_ports |= {p[2] for p in outs}
        if not phone_of_agent and len(ins) == len(outs):
            phone_of_agent = {o[3]: i[2] for i, o in zip(ins, outs, strict=True)}
    down: list[float] = []
    for publish in publishes:
        window = [p for p in packets if publish - 0.005 <= p[0] < publish + 0.3]
        first_out: dict[int, float] = {}  # phone port -> the server's first event packet to it
        for t, data, sport, dport, _ in window:
            if 30000 <= sport <= 32000 and len(data) >= 2 and data[1] == 0x80 | TE_PT:
                first_out.setdefault(dport, t)
        for t, data, sport, dport, size in window:
            if dport in server_ports and data[:1] == b"\x17" and size >= 80:
                phone = phone_of_agent.get(sport)
                if phone is not None and phone in first_out and first_out[phone] >= t:
                    down.append(first_out[phone] - t)
    return up, down


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", default="1,20")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--role", choices=("agents", "phones"), help=argparse.SUPPRESS)
    ap.add_argument("--agent-procs", type=int, default=1,
                    help="spread the SDK participants over this many processes")
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "agents":
        asyncio.run(agents_main(args.first, args.n))
        return
    if args.role == "phones":
        asyncio.run(phones_main(args.n))
        return
    rows = [(n, run(n, args.rounds, args.agent_procs)) for n in (int(x) for x in args.calls.split(","))]
    print(f"phones -> roomtone serve -> Python SDK (WebRTC, network namespace); {args.rounds} rounds; "
          f"SDK participants in {args.agent_procs} process(es)")
    print(f"{'direction':<14}{'calls':>6}{'p50':>9}{'p99':>9}{'samples':>9}{'lost':>6}")
    print("-" * 53)
    for n, res in rows:
        for name, key in (("phone->SDK", "up"), ("SDK->phone", "down")):
            lat = res[key]
            print(f"{name:<14}{n:>6}{pct(lat, 50):>8.2f}ms{pct(lat, 99):>7.2f}ms{len(lat):>9}"
                  f"{res['expected'] - len(lat):>6}")
        if res["residence"]:
            lat = res["residence"]
            print(f"{'  in server':<14}{n:>6}{pct(lat, 50):>8.2f}ms{pct(lat, 99):>7.2f}ms{len(lat):>9}"
                  "      (phone->SDK: RTP in -> DTLS out, captured)")
        if res["residence_down"]:
            lat = res["residence_down"]
            print(f"{'  in server':<14}{n:>6}{pct(lat, 50):>8.2f}ms{pct(lat, 99):>7.2f}ms{len(lat):>9}"
                  "      (SDK->phone: its DTLS in -> its RFC 4733 out, captured)")


if __name__ == "__main__":
    main()
