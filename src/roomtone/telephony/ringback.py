"""The ringing tone a SIP participant plays into its room while an outbound call rings.

``CreateSIPParticipant(play_dialtone=True)`` (or the deprecated ``play_ringtone``): as LiveKit does
(livekit/sip ``outbound.go`` ``dialSIP`` with ``tones.ETSIRinging``), the SIP participant publishes
an audio track with the ETSI ringing cadence, 425 Hz 1 s on / 4 s off, while the callee's phone
rings, and unpublishes it when the call is answered or fails. The track is an aiortc
``AudioStreamTrack`` (48 kHz mono, 20 ms frames) paced in real time, so the room's media relay
treats it like any published microphone.
"""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
from aiortc.mediastreams import AudioStreamTrack
from av import AudioFrame

RATE = 48000
FRAME = 960  # 20 ms
FREQ = 425.0
ON, PERIOD = 1.0, 5.0
LEVEL = 0.25  # of full scale; LiveKit uses MaxInt16/2 for the same tone


def ringback_samples(start: int, count: int) -> np.ndarray:
    """``count`` int16 samples of the cadence starting at sample ``start`` (pure, for tests)."""
    n = np.arange(start, start + count)
    t = n / RATE
    on = (t % PERIOD) < ON
    wave = LEVEL * 32767 * np.sin(2 * np.pi * FREQ * t)
    return np.where(on, wave, 0.0).astype(np.int16)


class RingbackTrack(AudioStreamTrack):
    def __init__(self) -> None:
        super().__init__()
        self._n = 0
        self._t0: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        delay = self._t0 + self._n / RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        samples = ringback_samples(self._n, FRAME)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._n
        frame.time_base = fractions.Fraction(1, RATE)
        self._n += FRAME
        return frame
