"""The audio half of a SIP participant: the phone's voice into the room, the room's voices to the phone.

One :class:`AudioBridge` per answered call that has joined a room:

* **phone → room.** :class:`PhoneAudioTrack` is an aiortc ``MediaStreamTrack`` fed with the call's
  decoded 20 ms frames (``MediaCall.on_audio``; DTMF tones are already muted there). It is
  published as the SIP participant's microphone track, so every subscriber (WebRTC SDKs through
  the room's media relay, other SIP bridges) hears the caller. Frames keep the call's own rate
  (8 or 16 kHz); aiortc's Opus encoder resamples to 48 kHz per subscriber. The track paces itself
  on the event loop clock and fills gaps (hold, lost packets, a phone that sends nothing) with
  silence, so ``pts`` always advances by exactly one frame per frame in ``1/rate`` units: a track
  whose timestamps do not match its time base arrives at subscribers as silence.
* **room → phone.** Every audio track another participant publishes (``on_track`` of the rooms
  API) is read through :func:`roomtone.rtc.media.subscribe`, resampled with PyAV's
  ``AudioResampler`` (libswresample; 48 kHz stereo Opus output, or whatever a server-side track
  produces) to the call's rate in mono, and buffered per source. A mixer ticking every 20 ms on
  the loop clock sums the sources that have a frame ready (int32, clipped to int16) and queues
  the mix with ``MediaCall.send_audio``. Each source's buffer is bounded (``MAX_SOURCE_MS``) so a
  stalled call cannot make latency grow; sources that underrun are left out of that tick.

Ending: :meth:`AudioBridge.close` (the gateway calls it when the call or the participant ends)
stops the published track, every subscription and the mixer, and detaches ``on_audio``.
Only :mod:`roomtone.rtc.media`, the rooms API and :class:`~roomtone.media.call.MediaCall` are used.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame
from av.audio.resampler import AudioResampler
from livekit.protocol import models

from roomtone.rooms import Participant, new_sid
from roomtone.rtc.media import subscribe

log = logging.getLogger(__name__)

PTIME = 0.02
#: frames the phone track holds before dropping the oldest (bounds phone → room latency)
MAX_PHONE_FRAMES = 5
#: per-source buffer toward the phone; beyond it the oldest audio is dropped
MAX_SOURCE_MS = 200
#: a source joins the mix once it has this much buffered (absorbs the reader's jitter)
PRIME_MS = 40
TRACK_NAME = "phone"


class PhoneAudioTrack(MediaStreamTrack):
    """The caller's audio as a live aiortc track (mono s16 at the call's rate, 20 ms frames)."""

    kind = "audio"

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.frame_samples = int(sample_rate * PTIME)
        self._time_base = fractions.Fraction(1, sample_rate)
        self._frames: deque[np.ndarray] = deque()
        self._n = 0  # samples produced (the pts)
        self._t0: float | None = None
        self.frames_in = 0
        self.frames_dropped = 0
        self.silence_frames = 0
        self._silence = np.zeros(self.frame_samples, dtype=np.int16)

    def push(self, pcm: np.ndarray) -> None:
        """One received frame from the call (any length; re-cut into 20 ms frames)."""
        if self.readyState != "live":
            return
        pcm = np.asarray(pcm, dtype=np.int16).reshape(-1)
        self.frames_in += 1
        if len(pcm) != self.frame_samples:
            pending = np.concatenate([*self._frames, pcm]) if self._frames else pcm
            self._frames.clear()
            n = self.frame_samples
            for i in range(0, len(pending) - n + 1, n):
                self._frames.append(pending[i:i + n])
            rest = len(pending) % n
            if rest:  # keep the tail as a short frame for the next push
                self._frames.append(pending[len(pending) - rest:])
        else:
            self._frames.append(pcm)
        while len(self._frames) > MAX_PHONE_FRAMES:
            self._frames.popleft()
            self.frames_dropped += 1

    def _take(self) -> np.ndarray:
        if self._frames and len(self._frames[0]) == self.frame_samples:
            return self._frames.popleft()
        self.silence_frames += 1
        return self._silence

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        delay = self._t0 + self._n / self.sample_rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.2:  # the loop stalled: skip ahead instead of bursting old frames
            self._t0 -= delay
        if self.readyState != "live":
            raise MediaStreamError
        samples = self._take()
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._n
        frame.time_base = self._time_base
        self._n += self.frame_samples
        return frame


def to_call_rate(resampler: AudioResampler, frame: AudioFrame) -> np.ndarray:
    """Resample one room frame to mono int16 at the resampler's rate (may return fewer samples)."""
    frame.pts = None  # pts of relayed frames may jump; the mixer keeps its own time
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    if not out:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(out).astype(np.int16, copy=False)


def mix(frames: list[np.ndarray]) -> np.ndarray:
    """Sum int16 frames of equal length without wrapping (saturating at the int16 limits)."""
    total = np.sum(np.stack(frames).astype(np.int32), axis=0)
    return np.clip(total, -32768, 32767).astype(np.int16)


@dataclass(eq=False)
class _Source:
    publisher: str
    track_sid: str
    proxy: MediaStreamTrack
    buffer: deque[np.ndarray] = field(default_factory=deque)
    buffered: int = 0
    primed: bool = False
    task: asyncio.Task[None] | None = None
    dropped_samples: int = 0


class AudioBridge:
    """Audio both ways between one call and its SIP participant (see the module docstring)."""

    def __init__(self, call: Any, participant: Participant, rooms: Any) -> None:
        """``call``: a :class:`~roomtone.media.call.MediaCall` (``call_id``, ``sample_rate``,
        ``on_audio``, ``send_audio``); ``rooms``: the :class:`~roomtone.rooms.RoomManager`."""
        self.call = call
        self.participant = participant
        self.rooms = rooms
        self.rate = int(call.sample_rate)
        self.frame_samples = int(self.rate * PTIME)
        self.track = PhoneAudioTrack(self.rate)
        self.track_sid = ""
        self.sources: dict[str, _Source] = {}
        self.closed = False
        self.mixed_frames = 0
        self._mixer: asyncio.Task[None] | None = None
        self._idle = True

    async def start(self) -> None:
        """Publish the phone's track, start hearing the room, and the mixer."""
        p = self.participant
        self.call.on_audio = self.track.push
        info = models.TrackInfo(sid=new_sid("TR_"), type=models.AUDIO, source=models.TrackSource.MICROPHONE,
                                name=TRACK_NAME, mime_type="audio/opus")
        self.track_sid = info.sid
        # hear tracks published from now on, then those already there
        endpoint = p.endpoint
        endpoint.on_track = self._on_track  # type: ignore[attr-defined]
        endpoint.on_track_removed = self._on_track_removed  # type: ignore[attr-defined]
        for publisher, track, media in self.rooms.published_tracks(p.room_name):
            self._on_track(publisher, track, media)
        await p.publish_track(info, self.track)
        self._mixer = asyncio.ensure_future(self._mix_loop())
        log.info("call %s: audio bridged to room %s as %s (track %s, %d Hz)",
                 self.call.call_id, p.room_name, p.identity, info.sid, self.rate)

    # ---- room -> phone

    def _on_track(self, publisher: Participant, track: models.TrackInfo, media: Any) -> None:
        if self.closed or publisher is self.participant or track.type != models.AUDIO or media is None:
            return
        if track.sid in self.sources:
            return
        try:
            proxy = subscribe(media)
        except Exception as exc:
            log.warning("call %s: cannot subscribe to %s's track %s: %s", self.call.call_id, publisher.identity,
                        track.sid, exc)
            return
        source = _Source(publisher.identity, track.sid, proxy)
        self.sources[track.sid] = source
        source.task = asyncio.ensure_future(self._read(source))
        log.info("call %s: hearing %s's track %s", self.call.call_id, publisher.identity, track.sid)

    def _on_track_removed(self, publisher: Participant, track_sid: str) -> None:
        self._drop_source(track_sid)

    def _drop_source(self, track_sid: str) -> None:
        source = self.sources.pop(track_sid, None)
        if source is None:
            return
        source.proxy.stop()
        if source.task is not None and source.task is not asyncio.current_task():
            source.task.cancel()
        log.info("call %s: stopped hearing %s's track %s", self.call.call_id, source.publisher, track_sid)

    async def _read(self, source: _Source) -> None:
        resampler: AudioResampler | None = None
        shape: tuple[str, str, int] | None = None
        cap = int(self.rate * MAX_SOURCE_MS / 1000)
        try:
            while True:
                frame = await source.proxy.recv()
                assert isinstance(frame, AudioFrame)
                this = (frame.format.name, frame.layout.name, frame.sample_rate)
                if resampler is None or this != shape:
                    resampler = AudioResampler(format="s16", layout="mono", rate=self.rate)
                    shape = this
                pcm = to_call_rate(resampler, frame)
                if not len(pcm):
                    continue
                source.buffer.append(pcm)
                source.buffered += len(pcm)
                while source.buffered > cap and len(source.buffer) > 1:
                    old = source.buffer.popleft()
                    source.buffered -= len(old)
                    source.dropped_samples += len(old)
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("call %s: reading %s's track %s failed", self.call.call_id, source.publisher,
                          source.track_sid)
        finally:
            if self.sources.get(source.track_sid) is source:
                self._drop_source(source.track_sid)

    def _take(self, source: _Source) -> np.ndarray | None:
        n = self.frame_samples
        if not source.primed:
            if source.buffered < max(n, int(self.rate * PRIME_MS / 1000)):
                return None
            source.primed = True
        if source.buffered < n:
            source.primed = False  # underrun: re-prime before contributing again
            return None
        parts, need = [], n
        while need:
            head = source.buffer[0]
            if len(head) <= need:
                parts.append(source.buffer.popleft())
                need -= len(head)
            else:
                parts.append(head[:need])
                source.buffer[0] = head[need:]
                need = 0
        source.buffered -= n
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def mix_tick(self) -> np.ndarray | None:
        """One 20 ms frame of the room's sources that have audio ready, or None (pure, for tests)."""
        frames = [f for f in (self._take(s) for s in list(self.sources.values())) if f is not None]
        if not frames:
            return None
        return frames[0] if len(frames) == 1 else mix(frames)

    async def _mix_loop(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        k = 0
        try:
            while not self.closed:
                k += 1
                delay = t0 + k * PTIME - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.2:  # stalled: resynchronise rather than burst
                    t0, k = loop.time(), 0
                out = self.mix_tick()
                if out is None:
                    self._idle = True
                    continue
                if self._idle:
                    # one frame of slack in the call's send queue: our tick and the media
                    # engine's tick are not in phase
                    self.call.send_audio(np.zeros(self.frame_samples, dtype=np.int16))
                    self._idle = False
                self.call.send_audio(out)
                self.mixed_frames += 1
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("call %s: audio mixer failed", self.call.call_id)

    # ---- ending

    def stats(self) -> dict[str, Any]:
        return {
            "phone_frames_in": self.track.frames_in, "phone_frames_dropped": self.track.frames_dropped,
            "phone_silence_frames": self.track.silence_frames, "mixed_frames": self.mixed_frames,
            "sources": len(self.sources),
        }

    def close(self) -> None:
        """Stop everything (idempotent; safe from any callback)."""
        if self.closed:
            return
        self.closed = True
        if getattr(self.call, "on_audio", None) == self.track.push:
            self.call.on_audio = None
        endpoint = self.participant.endpoint
        if getattr(endpoint, "on_track", None) == self._on_track:
            endpoint.on_track = None  # type: ignore[attr-defined]
            endpoint.on_track_removed = None  # type: ignore[attr-defined]
        self.track.stop()
        for sid in list(self.sources):
            self._drop_source(sid)
        if self._mixer is not None and self._mixer is not asyncio.current_task():
            self._mixer.cancel()
        log.info("call %s: audio bridge closed (%s)", self.call.call_id,
                 ", ".join(f"{k}={v}" for k, v in self.stats().items()))

    async def aclose(self) -> None:
        """:meth:`close`, then unpublish the phone's track if the participant is still in the room."""
        self.close()
        if self.track_sid and self.participant.active:
            try:
                await self.participant.unpublish_track(self.track_sid)
            except Exception as exc:
                log.info("call %s: unpublishing the phone track failed: %s", self.call.call_id, exc)
