"""A roomtone server with one server-side SIP-kind participant, for test_server_side_participant.

Started inside a test namespace: ``python sip_bridge_server.py PORT KEY SECRET``. The participant
``sip-phone`` joins room ``bridge``, publishes a 660 Hz tone as an audio track, prints every
``sip_dtmf`` it receives as a JSON line, and when it receives ``#`` it answers with DTMF 9, 8, 7
addressed to the sender; ``*`` sets the room metadata to "star from <sender>" and ``0`` removes
the sender from the room; ``D`` closes the sender's signalling WebSocket without a leave (a
network drop as the client sees it), to exercise the client's resume. This is the rooms API the
telephony bridge and the HTTP API use, driven by a real SDK.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import sys

import numpy as np
from aiortc.mediastreams import AudioStreamTrack
from av import AudioFrame
from livekit.protocol import models as pm

from roomtone import config, server
from roomtone.rooms import new_sid

RATE, SAMPLES = 48000, 960


class Tone(AudioStreamTrack):
    def __init__(self, freq: float) -> None:
        super().__init__()
        self.freq = freq
        self.n = 0
        self.start: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        delay = self.start + self.n / RATE - loop.time()  # real-time pacing
        if delay > 0:
            await asyncio.sleep(delay)
        pts = self.n
        t = (np.arange(SAMPLES) + self.n) / RATE
        self.n += SAMPLES
        samples = (8000 * np.sin(2 * np.pi * self.freq * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


def install(app) -> None:
    async def startup(app) -> None:
        rooms = app[server.ROOMS]
        phone = None

        def on_data(pkt: pm.DataPacket) -> None:
            if pkt.WhichOneof("value") != "sip_dtmf":
                return
            print(json.dumps({"dtmf": [pkt.sip_dtmf.code, pkt.sip_dtmf.digit, pkt.participant_identity]}), flush=True)
            sender = pkt.participant_identity
            if pkt.sip_dtmf.digit == "#" and phone is not None:
                for code in (9, 8, 7):
                    phone.publish_dtmf(code, destination_identities=[sender])
            elif pkt.sip_dtmf.digit == "*":
                rooms.spawn(rooms.update_room_metadata("bridge", f"star from {sender}"))
            elif pkt.sip_dtmf.digit == "0":
                rooms.spawn(rooms.remove_participant("bridge", sender))
            elif pkt.sip_dtmf.digit == "D":
                for session in list(app[server.RTC].sessions):
                    if session.claims.identity == sender and session.ws is not None:
                        rooms.spawn(session.ws.close(code=1011, message=b"test: dropped"))

        phone = await rooms.add_sip_participant("bridge", "sip-phone", name="Phone", on_data=on_data,
                                                attributes={"sip.callStatus": "active"})
        info = pm.TrackInfo(sid=new_sid("TR_"), type=pm.AUDIO, source=pm.TrackSource.MICROPHONE, name="phone-audio")
        await phone.publish_track(info, Tone(660))
        print(json.dumps({"ready": True, "track": info.sid}), flush=True)

    app.on_startup.append(startup)


async def main(port: int, key: str, secret: str) -> None:
    cfg = config.load(env={"LIVEKIT_API_KEY": key, "LIVEKIT_API_SECRET": secret}, bind="127.0.0.1", port=port)
    cfg.room.empty_timeout = 3600
    srv = await server.start(cfg, services=[install], default_services=False)
    try:
        await asyncio.Event().wait()
    finally:
        await srv.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
