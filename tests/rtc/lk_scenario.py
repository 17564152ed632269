"""A DTMF scenario with the official Python ``livekit`` SDK, run inside a test namespace.

Usage: ``python lk_scenario.py SPEC.json``; prints one JSON object (events per receiver) on stdout.

All participants live in this process (each its own ``rtc.Room``). Order of play: receivers join,
then the sender (and an optional marker participant); every receiver waits until it knows the
sender (the Rust SDK drops DTMF from unknown senders); the sender publishes the DTMF codes; then
a marker user packet is sent to everyone, and each receiver stops once it has the marker. So
"nothing arrived" is decided by the marker, not by a timer.

``publish_dtmf`` in the Python wrapper has no destination list, but the SDK core (FFI) takes one;
:func:`publish_dtmf` sends the same FFI request as the wrapper, plus ``destination_identities``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from livekit import rtc
from livekit.rtc._ffi_client import FfiClient
from livekit.rtc._proto import ffi_pb2 as proto_ffi

MARKER = b"end-of-scenario"


async def publish_dtmf(room: rtc.Room, code: int, digit: str, destinations: list[str]) -> None:
    lp = room.local_participant
    req = proto_ffi.FfiRequest()
    req.publish_sip_dtmf.local_participant_handle = lp._ffi_handle.handle
    req.publish_sip_dtmf.code = code
    req.publish_sip_dtmf.digit = digit
    req.publish_sip_dtmf.destination_identities.extend(destinations)
    queue = FfiClient.instance.queue.subscribe()
    try:
        resp = FfiClient.instance.request(req)
        cb = await queue.wait_for(lambda e: e.publish_sip_dtmf.async_id == resp.publish_sip_dtmf.async_id)
    finally:
        FfiClient.instance.queue.unsubscribe(queue)
    if cb.publish_sip_dtmf.error:
        raise RuntimeError(cb.publish_sip_dtmf.error)


async def connect(url: str, token: str, single_pc: bool) -> rtc.Room:
    room = rtc.Room()
    await room.connect(url, token, rtc.RoomOptions(single_peer_connection=single_pc, connect_timeout=20))
    return room


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


async def main(spec: dict) -> dict:
    url, single_pc, timeout = spec["url"], spec["single_pc"], spec.get("timeout", 30)
    events: dict[str, list] = {}
    markers: dict[str, bool] = {}
    rooms: list[rtc.Room] = []
    result: dict = {"events": events, "errors": []}
    try:
        receivers = {}
        for r in spec["receivers"]:
            ident = r["identity"]
            events[ident] = []
            markers[ident] = False
            room = await connect(url, r["token"], single_pc)
            rooms.append(room)

            def on_dtmf(d: rtc.SipDTMF, ident=ident) -> None:
                events[ident].append(["dtmf", d.code, d.digit, d.participant.identity if d.participant else None])

            def on_data(p: rtc.DataPacket, ident=ident) -> None:
                if p.data == MARKER:
                    markers[ident] = True
                else:
                    events[ident].append(["data", p.data.decode(errors="replace"), p.participant.identity if p.participant else None])

            room.on("sip_dtmf_received", on_dtmf)
            room.on("data_received", on_data)
            receivers[ident] = room
        sender = await connect(url, spec["sender"]["token"], single_pc)
        rooms.append(sender)
        result["sender_sid"] = sender.local_participant.sid
        marker_room = sender
        if spec.get("marker"):
            marker_room = await connect(url, spec["marker"]["token"], single_pc)
            rooms.append(marker_room)
        needed = {sender.local_participant.identity, marker_room.local_participant.identity}
        for ident, room in receivers.items():
            await wait_for(lambda room=room: needed <= set(room.remote_participants), timeout, f"{ident} never saw {needed}")
        for code, digit in spec["codes"]:
            await publish_dtmf(sender, code, digit, spec.get("destinations", []))
        for text in spec.get("data", []):
            await sender.local_participant.publish_data(text.encode(), destination_identities=spec.get("destinations", []))
        wl = spec.get("wait_log")
        if wl:
            log = Path(wl["path"])
            await wait_for(lambda: log.read_text(errors="replace").count(wl["needle"]) >= wl["count"], timeout, "server log")
        await marker_room.local_participant.publish_data(MARKER, reliable=True)
        await wait_for(lambda: all(markers.values()), timeout, f"marker not received by all: {markers}")
    except Exception as exc:  # reported to the test, which fails with it
        result["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        for room in rooms:
            try:
                await asyncio.wait_for(room.disconnect(), 10)
            except Exception as exc:
                result["errors"].append(f"disconnect: {exc}")
    return result


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(main(spec))), flush=True)
