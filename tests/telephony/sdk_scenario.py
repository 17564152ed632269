"""The issue's headline scenario, inside a test namespace, with official clients only.

``python sdk_scenario.py SPEC.json`` prints one JSON object. Steps:

1. ``livekit-api`` creates an inbound trunk (its roomtone DTMF mode from the spec) and a direct
   dispatch rule to room ``lobby``.
2. A Python ``livekit`` SDK participant joins ``lobby`` and records ``sip_dtmf_received`` and
   ``roomtone.dtmf`` data packets.
3. A pjsua2 phone (tests/phones/pjsua_agent.py) calls the gateway and presses keys by the spec's
   method; the SDK participant must see each digit once, from the SIP participant.
4. The SDK participant's ``publish_dtmf`` must reach the phone.
5. ``RemoveParticipant`` through ``livekit-api`` must hang the phone up.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from livekit import api, rtc

AGENT = str(Path(__file__).resolve().parents[1] / "phones" / "pjsua_agent.py")


class Phone:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("{"):
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    pass

    def send(self, cmd: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())

    async def wait(self, pred: Any, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events:
                if pred(ev):
                    return ev
            await asyncio.sleep(0.05)
        return None

    def digits(self) -> list[str]:
        return [e["digit"] for e in self.events if e.get("event") == "dtmf"]


async def until(pred: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return bool(pred())


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"errors": []}
    url, key, secret = spec["url"], spec["key"], spec["secret"]
    lk = api.LiveKitAPI(url.replace("ws://", "http://"), key, secret)
    metadata = json.dumps({"roomtone": {"dtmf_mode": spec["to_phone_mode"]}})
    trunk = await lk.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(
        trunk=api.SIPInboundTrunkInfo(name="e2e", numbers=["+15550100"], allowed_addresses=["127.0.0.1"],
                                      metadata=metadata)))
    rule = await lk.sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(dispatch_rule=api.SIPDispatchRuleInfo(
        rule=api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name="lobby")))))
    out["trunk_id"], out["rule_id"] = trunk.sip_trunk_id, rule.sip_dispatch_rule_id

    room = rtc.Room()
    got: list[list[Any]] = []
    details: list[dict[str, Any]] = []
    room.on("sip_dtmf_received", lambda d: got.append([d.code, d.digit, d.participant.identity if d.participant else None]))

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == "roomtone.dtmf":
            details.append(json.loads(packet.data))

    room.on("data_received", on_data)
    token = api.AccessToken(key, secret).with_identity("agent").with_grants(
        api.VideoGrants(room_join=True, room="lobby")).to_jwt()
    await room.connect(url, token, rtc.RoomOptions(connect_timeout=20))

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-u", AGENT, "--host", "127.0.0.1", "--port", str(spec["phone_port"]),
        "--rtp-port", str(spec["phone_port"] + 2), "--user", "15557777", "--log", spec["phone_log"],
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    phone = Phone(proc)
    try:
        if not await phone.wait(lambda e: e.get("event") == "ready", 20):
            out["errors"].append("phone not ready")
            return out
        phone.send("call", uri=f"sip:+15550100@127.0.0.1:{spec['sip_port']}")
        if not await phone.wait(lambda e: e.get("event") == "call_state" and e.get("state") == "CONFIRMED", 15):
            out["errors"].append("call not answered")
            return out
        if not await until(lambda: "sip_15557777" in room.remote_participants, 15):
            out["errors"].append("SIP participant not seen by the SDK")
            return out
        sip = room.remote_participants["sip_15557777"]
        out["sip_kind"] = int(sip.kind)
        out["sip_name"] = sip.name
        out["sip_attributes"] = dict(sip.attributes)

        digits = spec["digits"]
        phone.send("dtmf", digits=digits, method=spec["method"], duration_ms=160)
        await until(lambda: len(got) >= len(digits), 30)
        await asyncio.sleep(1.0)
        out["room_got"] = got
        out["details"] = details

        for code, digit in spec["to_phone"]:
            await room.local_participant.publish_dtmf(code=code, digit=digit)
        await until(lambda: len(phone.digits()) >= len(spec["to_phone"]), 15)
        await asyncio.sleep(0.5)
        out["phone_got"] = phone.digits()
        out["phone_methods"] = sorted({e.get("method") for e in phone.events if e.get("event") == "dtmf"})

        listed = await lk.room.list_participants(api.ListParticipantsRequest(room="lobby"))
        out["listed"] = {p.identity: int(p.kind) for p in listed.participants}
        await lk.room.remove_participant(api.RoomParticipantIdentity(room="lobby", identity="sip_15557777"))
        ended = await phone.wait(lambda e: e.get("event") == "call_state" and e.get("state") == "DISCONNECTED", 10)
        out["phone_hung_up"] = ended is not None
    except Exception as exc:  # reported to the test, which shows it
        out["errors"].append(repr(exc))
    finally:
        phone.send("quit")
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
        await room.disconnect()
        await lk.aclose()
    return out


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(main(spec))), flush=True)
