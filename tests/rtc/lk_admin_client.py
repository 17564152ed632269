"""Python SDK side of the room-administration check: ``python lk_admin_client.py URL TOKEN``.

Presses ``*`` (the test server then changes the room metadata) and ``0`` (it removes us), and
reports the SDK events: room_metadata_changed and disconnected with its reason.
"""

from __future__ import annotations

import asyncio
import json
import sys

from livekit import rtc

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from lk_scenario import publish_dtmf  # noqa: E402


async def main(url: str, token: str) -> dict:
    out: dict = {"errors": []}
    room = rtc.Room()
    meta = asyncio.Event()
    gone: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_meta(old: str, new: str) -> None:
        out["room_metadata"] = new
        meta.set()

    room.on("room_metadata_changed", on_meta)
    room.on("disconnected", lambda reason: gone.done() or gone.set_result(reason))
    try:
        await room.connect(url, token, rtc.RoomOptions(single_peer_connection=False, connect_timeout=20))
        await publish_dtmf(room, 10, "*", ["sip-phone"])
        await asyncio.wait_for(meta.wait(), 15)
        out["room_metadata_seen_by_sdk"] = room.metadata
        await publish_dtmf(room, 0, "0", ["sip-phone"])
        reason = await asyncio.wait_for(gone, 15)
        out["disconnect_reason"] = rtc.DisconnectReason.Name(reason) if isinstance(reason, int) else str(reason)
    except Exception as exc:
        out["errors"].append(f"{type(exc).__name__}: {exc}")
        await room.disconnect()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))), flush=True)
