"""Participant metadata, name and attributes set through the SDK reach the others.

``python lk_metadata.py URL TOKEN_A TOKEN_B`` where A may update its own metadata and B may not.
Prints one JSON object: what B saw change on A, and what happened when B tried the same.
"""

from __future__ import annotations

import asyncio
import json
import sys

from livekit import rtc
from livekit.rtc._ffi_client import FfiClient
from livekit.rtc._proto import ffi_pb2 as proto_ffi


async def set_metadata_error(room: rtc.Room, metadata: str) -> str:
    """The FFI's answer to set_metadata (the Python wrapper drops its error field)."""
    req = proto_ffi.FfiRequest()
    req.set_local_metadata.local_participant_handle = room.local_participant._ffi_handle.handle
    req.set_local_metadata.metadata = metadata
    queue = FfiClient.instance.queue.subscribe()
    try:
        resp = FfiClient.instance.request(req)
        cb = await queue.wait_for(lambda e: e.set_local_metadata.async_id == resp.set_local_metadata.async_id)
    finally:
        FfiClient.instance.queue.unsubscribe(queue)
    return cb.set_local_metadata.error


async def main(url: str, ta: str, tb: str) -> dict:
    out: dict = {"errors": [], "seen": []}
    opts = rtc.RoomOptions(single_peer_connection=False, connect_timeout=20)
    a, b = rtc.Room(), rtc.Room()
    done = asyncio.Event()
    try:
        await b.connect(url, tb, opts)
        b.on("participant_metadata_changed", lambda p, old, new: out["seen"].append(["metadata", p.identity, new]))
        b.on("participant_name_changed", lambda p, old, new: out["seen"].append(["name", p.identity, new]))

        def on_attrs(changed, p):
            out["seen"].append(["attributes", p.identity, dict(changed)])
            done.set()

        b.on("participant_attributes_changed", on_attrs)
        await a.connect(url, ta, opts)
        await a.local_participant.set_metadata("m1")
        await a.local_participant.set_name("Alice A")
        await a.local_participant.set_attributes({"k": "v"})
        await asyncio.wait_for(done.wait(), 15)
        out["b_set_metadata_error"] = await asyncio.wait_for(set_metadata_error(b, "nope"), 15)
        out["a_sees_b_metadata"] = a.remote_participants["bob"].metadata
    except Exception as exc:
        out["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        for r in (a, b):
            await r.disconnect()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))), flush=True)
