"""Python SDK side of test_server_side_participant: ``python lk_bridge_client.py URL TOKEN``.

Joins room ``bridge``, sends 1 2 3 # to ``sip-phone`` only, waits for the phone's 9 8 7, and
measures the phone's audio track (dominant frequency, RMS). Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from livekit import rtc

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from lk_scenario import publish_dtmf  # noqa: E402


async def main(url: str, token: str) -> dict:
    out: dict = {"errors": [], "dtmf": []}
    room = rtc.Room()
    got_track: asyncio.Future = asyncio.get_running_loop().create_future()
    room.on("sip_dtmf_received", lambda d: out["dtmf"].append([d.code, d.digit, d.participant.identity if d.participant else None]))
    room.on("track_subscribed", lambda t, pub, p: got_track.done() or got_track.set_result((t, p.identity, p.kind)))
    try:
        await room.connect(url, token, rtc.RoomOptions(single_peer_connection=False, connect_timeout=20))
        phone = room.remote_participants.get("sip-phone")
        out["phone_kind"] = int(phone.kind) if phone else None
        out["phone_attributes"] = dict(phone.attributes) if phone else None
        for code, digit in ((1, "1"), (2, "2"), (3, "3"), (11, "#")):
            await publish_dtmf(room, code, digit, ["sip-phone"])
        track, who, _ = await asyncio.wait_for(got_track, 30)
        out["audio_from"] = who
        stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1)
        chunks, skipped = [], 0
        async for ev in stream:
            data = np.frombuffer(ev.frame.data, dtype=np.int16).astype(np.float64)
            if skipped < 24000:
                skipped += len(data)
                continue
            chunks.append(data)
            if sum(map(len, chunks)) >= 48000:
                break
        await stream.aclose()
        audio = np.concatenate(chunks)[:48000]
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
        out["peak_hz"] = float(np.argmax(spectrum) * 48000 / len(audio))
        out["rms"] = float(np.sqrt(np.mean(audio**2)))
        for _ in range(300):
            if len(out["dtmf"]) >= 3:
                break
            await asyncio.sleep(0.05)
    except Exception as exc:
        out["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        await room.disconnect()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))), flush=True)
