"""Audio relay with the official Python SDK: A publishes a sine; B (joined before) and C (joined
after the track was published) must hear it; then A unpublishes and both must see the track go.
Prints a JSON result: per receiver, the dominant frequency and RMS of one second of received
audio, who published it, and whether the unpublication arrived.

Usage: python lk_audio.py URL TOKEN_A TOKEN_B TOKEN_C FREQ [v0|v1|manual]
(manual: v0 with auto_subscribe off; the receivers subscribe to each publication themselves)
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from livekit import rtc

RATE = 48000
SAMPLES = 480  # 10 ms


async def publish_sine(source: rtc.AudioSource, freq: float, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        frame = rtc.AudioFrame.create(RATE, 1, SAMPLES)
        t = (np.arange(SAMPLES) + n) / RATE
        np.frombuffer(frame.data, dtype=np.int16)[:] = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
        n += SAMPLES
        await source.capture_frame(frame)


async def listen(room: rtc.Room, result: dict, name: str, done: asyncio.Event) -> None:
    got = asyncio.get_running_loop().create_future()

    def on_sub(track, publication, participant):
        if track.kind == rtc.TrackKind.KIND_AUDIO and not got.done():
            got.set_result((track, participant.identity, publication.sid))

    room.on("track_subscribed", on_sub)
    room.on("track_published", lambda pub, p: pub.set_subscribed(True))
    for p in room.remote_participants.values():
        for pub in p.track_publications.values():
            if pub.track is None:
                pub.set_subscribed(True)
        for pub in p.track_publications.values():
            if pub.track is not None and pub.kind == rtc.TrackKind.KIND_AUDIO and not got.done():
                got.set_result((pub.track, p.identity, pub.sid))
    track, who, sid = await asyncio.wait_for(got, 30)
    stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
    chunks, skipped = [], 0
    async for ev in stream:
        data = np.frombuffer(ev.frame.data, dtype=np.int16).astype(np.float64)
        if skipped < RATE * 0.5:  # let the decoder and jitter buffer settle
            skipped += len(data)
            continue
        chunks.append(data)
        if sum(len(c) for c in chunks) >= RATE:
            break
    await stream.aclose()
    audio = np.concatenate(chunks)[:RATE]
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    result[name] = {
        "from": who,
        "track_sid": sid,
        "peak_hz": float(np.argmax(spectrum) * RATE / len(audio)),
        "rms": float(np.sqrt(np.mean(audio**2))),
    }
    done.set()


async def main(url: str, ta: str, tb: str, tc: str, freq: float, mode: str) -> dict:
    result: dict = {"errors": []}
    opts = rtc.RoomOptions(single_peer_connection=(mode == "v1"), auto_subscribe=(mode != "manual"), connect_timeout=20)
    rooms = []
    try:
        b = rtc.Room()
        await b.connect(url, tb, opts)
        rooms.append(b)
        b_done = asyncio.Event()
        b_task = asyncio.ensure_future(listen(b, result, "b", b_done))
        a = rtc.Room()
        await a.connect(url, ta, opts)
        rooms.append(a)
        source = rtc.AudioSource(RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("sine", source)
        pub = await a.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        result["published_sid"] = pub.sid
        stop = asyncio.Event()
        sine = asyncio.ensure_future(publish_sine(source, freq, stop))
        await asyncio.wait_for(b_task, 40)
        c = rtc.Room()
        await c.connect(url, tc, opts)
        rooms.append(c)
        c_done = asyncio.Event()
        await asyncio.wait_for(listen(c, result, "c", c_done), 40)
        gone = {"b": asyncio.Event(), "c": asyncio.Event()}
        b.on("track_unsubscribed", lambda *args: gone["b"].set())
        c.on("track_unsubscribed", lambda *args: gone["c"].set())
        await a.local_participant.unpublish_track(pub.sid)
        stop.set()
        await sine
        for name, ev in gone.items():
            try:
                await asyncio.wait_for(ev.wait(), 15)
                result.setdefault("unsubscribed", []).append(name)
            except TimeoutError:
                pass
    except Exception as exc:
        result["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        for room in rooms:
            try:
                await asyncio.wait_for(room.disconnect(), 10)
            except Exception as exc:
                result["errors"].append(f"disconnect: {exc}")
    return result


if __name__ == "__main__":
    url, ta, tb, tc, freq = sys.argv[1:6]
    mode = sys.argv[6] if len(sys.argv) > 6 else "v0"
    print(json.dumps(asyncio.run(main(url, ta, tb, tc, float(freq), mode))), flush=True)
