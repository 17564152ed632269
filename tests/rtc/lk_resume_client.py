"""Python SDK resume and duplicate identity: ``python lk_resume_client.py URL TOKEN``.

1. Joins ``bridge`` as the token's identity and presses ``D``: the test server drops our
   signalling WebSocket; the SDK tries to resume, the server answers with leave(RECONNECT), and
   the SDK rejoins in full ("reconnected"). Then ``#`` must still get 9 8 7 back from sip-phone.
2. A second Room joins with the same identity: the first is disconnected (DUPLICATE_IDENTITY) and
   the second works.
Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys

from livekit import rtc

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from lk_scenario import publish_dtmf  # noqa: E402


async def main(url: str, token: str) -> dict:
    out: dict = {"errors": [], "events": []}
    opts = rtc.RoomOptions(single_peer_connection=False, connect_timeout=20)
    first, second = rtc.Room(), rtc.Room()
    reconnected = asyncio.Event()
    dtmf: list = []
    gone: asyncio.Future = asyncio.get_running_loop().create_future()
    first.on("reconnecting", lambda: out["events"].append("reconnecting"))
    first.on("reconnected", lambda: (out["events"].append("reconnected"), reconnected.set()))
    first.on("sip_dtmf_received", lambda d: dtmf.append(d.code))
    first.on("disconnected", lambda reason: gone.done() or gone.set_result(reason))
    try:
        await first.connect(url, token, opts)
        out["sid_before"] = first.local_participant.sid
        await publish_dtmf(first, 15, "D", ["sip-phone"])
        await asyncio.wait_for(reconnected.wait(), 30)
        for _ in range(200):  # the phone must be known again before its DTMF can be attributed
            if "sip-phone" in first.remote_participants:
                break
            await asyncio.sleep(0.05)
        await publish_dtmf(first, 11, "#", ["sip-phone"])
        for _ in range(200):
            if len(dtmf) >= 3:
                break
            await asyncio.sleep(0.05)
        out["dtmf_after_resume"] = dtmf
        await second.connect(url, token, opts)
        reason = await asyncio.wait_for(gone, 15)
        out["first_disconnect_reason"] = rtc.DisconnectReason.Name(reason) if isinstance(reason, int) else str(reason)
        out["second_sees"] = sorted(second.remote_participants)
    except Exception as exc:
        out["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        for room in (first, second):
            try:
                await asyncio.wait_for(room.disconnect(), 10)
            except Exception as exc:
                out["errors"].append(f"disconnect: {exc}")
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))), flush=True)
