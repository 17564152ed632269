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
  ``AudioResampler`` (libswresample; 48 kHz stereo from Opus, or whatever a server-side track
  produces) to each call rate in use, mono, and buffered; another call's phone track is tapped
  directly (no relay, no pacing task). :class:`RoomMix`, one per room, reads each track once
  however many calls the room has, and, while it has any source, every 20 ms (loop clock) sums the sources
  that have a frame ready (int32) and gives each call the sum minus its own phone ("mix-minus"),
  clipped to int16, through ``MediaCall.send_audio``. A room with N calls thus costs O(N) per tick,
  not N² subscriptions. Buffers are bounded (``MAX_SOURCE_MS``) so a stalled reader cannot make
  latency grow; a source that underruns sits out until it has ``PRIME_MS`` again.

Ending: :meth:`AudioBridge.close` (the gateway calls it when the call or the participant ends)
stops the published track, every subscription and the mixer, and detaches ``on_audio``.
Only :mod:`roomtone.rtc.media`, the rooms API and :class:`~roomtone.media.call.MediaCall` are used.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections import deque
from collections.abc import Callable
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
        #: direct listeners of every received frame (the room's mix: no relay, no pacing task)
        self.taps: list[Callable[[np.ndarray], None]] = []

    def push(self, pcm: np.ndarray) -> None:
        """One received frame from the call (any length; re-cut into 20 ms frames)."""
        if self.readyState != "live":
            return
        pcm = np.asarray(pcm, dtype=np.int16).reshape(-1)
        self.frames_in += 1
        for tap in self.taps:
            tap(pcm)
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
class _Buffer:
    """One source's audio at one call rate, waiting for the mixer."""

    chunks: deque[np.ndarray] = field(default_factory=deque)
    samples: int = 0
    primed: bool = False
    dropped_samples: int = 0

    def put(self, pcm: np.ndarray, cap: int) -> None:
        self.chunks.append(pcm)
        self.samples += len(pcm)
        while self.samples > cap and len(self.chunks) > 1:
            old = self.chunks.popleft()
            self.samples -= len(old)
            self.dropped_samples += len(old)

    def take(self, n: int, prime: int) -> np.ndarray | None:
        if not self.primed:
            if self.samples < max(n, prime):
                return None
            self.primed = True
        if self.samples < n:
            self.primed = False  # underrun: re-prime before contributing again
            return None
        parts, need = [], n
        while need:
            head = self.chunks[0]
            if len(head) <= need:
                parts.append(self.chunks.popleft())
                need -= len(head)
            else:
                parts.append(head[:need])
                self.chunks[0] = head[need:]
                need = 0
        self.samples -= n
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


@dataclass(eq=False)
class _Source:
    publisher: str
    track_sid: str
    proxy: MediaStreamTrack | None = None  # a relayed subscription, or
    tapped: PhoneAudioTrack | None = None  # another call's phone track, read directly
    tap: Callable[[np.ndarray], None] | None = None
    buffers: dict[int, _Buffer] = field(default_factory=dict)  # call rate -> its buffer
    resamplers: dict[int, AudioResampler] = field(default_factory=dict)
    shape: tuple[str, str, int] | None = None
    task: asyncio.Task[None] | None = None


class RoomMix:
    """The audio of one room toward its SIP calls, computed once per tick and call rate.

    Every audio track in the room is read once (one subscription, one resampler per call rate in
    use), however many calls listen: a conference "mix-minus". Each tick sums the sources that
    have a frame ready (int32) and gives each call the sum minus its own phone's contribution, so
    a room with N calls costs O(N) per tick rather than O(N²) subscriptions and resamplers.
    """

    def __init__(self, key: tuple[int, str]) -> None:
        self.key = key
        self.bridges: list[AudioBridge] = []
        self.sources: dict[str, _Source] = {}
        self._task: asyncio.Task[None] | None = None

    # ---- members

    def add_bridge(self, bridge: AudioBridge) -> None:
        self.bridges.append(bridge)
        self._run_while_needed()

    def remove_bridge(self, bridge: AudioBridge) -> None:
        if bridge in self.bridges:
            self.bridges.remove(bridge)
        if not self.bridges:
            self.close()
        else:
            self._run_while_needed()

    def close(self) -> None:
        _mixes.pop(self.key, None)
        for sid in list(self.sources):
            self.remove_source(sid)
        self._run_while_needed()

    def _run_while_needed(self) -> None:
        """The 20 ms loop runs only while there is something to mix: a call that can hear a source
        other than its own phone.

        Why: a room's calls hear nothing until someone else publishes audio, and a loop per room
        that wakes 50 times a second to mix nothing cost ~5 % of the server at 100 one-call rooms
        (``benchmarks/bridge_sdk.py`` profile)."""
        needed = any(sid != bridge.track_sid for bridge in self.bridges for sid in self.sources)
        if needed and self._task is None:
            self._task = asyncio.ensure_future(self._loop())
        elif not needed and self._task is not None:
            if self._task is not asyncio.current_task():
                self._task.cancel()
            self._task = None
            for bridge in self.bridges:
                bridge.deliver(None)  # nothing to hear any more

    # ---- sources

    def add_source(self, publisher: str, track_sid: str, media: Any) -> None:
        if track_sid in self.sources or not self.bridges:
            return
        if isinstance(media, PhoneAudioTrack):
            # another call in this room: take its frames as they are received
            source = _Source(publisher, track_sid, tapped=media)
            rate = media.sample_rate

            def tap(pcm: np.ndarray, source: _Source = source) -> None:
                if all(b.rate == rate for b in self.bridges):  # the usual case: no resampling
                    source.buffers.setdefault(rate, _Buffer()).put(pcm, int(rate * MAX_SOURCE_MS / 1000))
                    return
                frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate = rate
                self._feed(source, frame, pcm)

            source.tap = tap
            media.taps.append(tap)
            self.sources[track_sid] = source
        else:
            try:
                proxy = subscribe(media)
            except Exception as exc:
                log.warning("room %s: cannot subscribe to %s's track %s: %s", self.key[1], publisher, track_sid, exc)
                return
            source = _Source(publisher, track_sid, proxy)
            self.sources[track_sid] = source
            source.task = asyncio.ensure_future(self._read(source))
        log.info("room %s: SIP calls hear %s's track %s", self.key[1], publisher, track_sid)
        self._run_while_needed()

    def remove_source(self, track_sid: str) -> None:
        source = self.sources.pop(track_sid, None)
        if source is None:
            return
        if source.proxy is not None:
            source.proxy.stop()
        if source.tapped is not None and source.tap in source.tapped.taps:
            source.tapped.taps.remove(source.tap)
        if source.task is not None and source.task is not asyncio.current_task():
            source.task.cancel()
        log.info("room %s: SIP calls stopped hearing %s's track %s", self.key[1], source.publisher, track_sid)
        self._run_while_needed()

    def _feed(self, source: _Source, frame: AudioFrame, pcm: np.ndarray | None = None) -> None:
        """One frame of a source, resampled to each call rate in use and buffered."""
        this = (frame.format.name, frame.layout.name, frame.sample_rate)
        if this != source.shape:
            source.resamplers.clear()
            source.shape = this
        for rate in {b.rate for b in self.bridges}:
            if this == ("s16", "mono", rate):  # e.g. another call's phone at the same rate
                out = pcm if pcm is not None else frame.to_ndarray().reshape(-1)
            else:
                resampler = source.resamplers.get(rate)
                if resampler is None:
                    resampler = source.resamplers[rate] = AudioResampler(format="s16", layout="mono", rate=rate)
                out = to_call_rate(resampler, frame)
            if len(out):
                source.buffers.setdefault(rate, _Buffer()).put(out, int(rate * MAX_SOURCE_MS / 1000))

    async def _read(self, source: _Source) -> None:
        assert source.proxy is not None
        try:
            while True:
                frame = await source.proxy.recv()
                assert isinstance(frame, AudioFrame)
                self._feed(source, frame)
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("room %s: reading %s's track %s failed", self.key[1], source.publisher, source.track_sid)
        finally:
            if self.sources.get(source.track_sid) is source:
                self.remove_source(source.track_sid)

    # ---- mixing

    def tick(self) -> None:
        """One 20 ms step: each call gets the sources ready at its rate, minus its own."""
        for rate in {b.rate for b in self.bridges}:
            n, prime = int(rate * PTIME), int(rate * PRIME_MS / 1000)
            frames: dict[str, np.ndarray] = {}
            for sid, source in list(self.sources.items()):
                buf = source.buffers.get(rate)
                frame = buf.take(n, prime) if buf is not None else None
                if frame is not None:
                    frames[sid] = frame
            total = np.sum(np.stack(list(frames.values())).astype(np.int32), axis=0) if frames else None
            for bridge in self.bridges:
                if bridge.rate != rate:
                    continue
                own = frames.get(bridge.track_sid)
                if total is None or (own is not None and len(frames) == 1):
                    bridge.deliver(None)
                    continue
                out = total - own if own is not None else total
                if not out.any():  # digital silence: the call's session sends its cached silence
                    bridge.deliver(None)
                    continue
                bridge.deliver(np.clip(out, -32768, 32767).astype(np.int16))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        k = 0
        try:
            while self.bridges and self.sources:
                k += 1
                delay = t0 + k * PTIME - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.2:  # stalled: resynchronise rather than burst
                    t0, k = loop.time(), 0
                self.tick()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("room %s: audio mixer failed", self.key[1])
        finally:
            if self._task is asyncio.current_task():
                self._task = None


_mixes: dict[tuple[int, str], RoomMix] = {}


def room_mix(rooms: Any, room_name: str) -> RoomMix:
    """The room's shared mix (one per room manager and room), created on first use."""
    key = (id(rooms), room_name)
    mix_ = _mixes.get(key)
    if mix_ is None:
        mix_ = _mixes[key] = RoomMix(key)
    return mix_


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
        self.closed = False
        self.mixed_frames = 0
        self.mix: RoomMix | None = None
        self._idle = True

    @property
    def sources(self) -> dict[str, _Source]:
        """The tracks this call hears (the room's, without its own)."""
        if self.mix is None or self.closed:
            return {}
        return {sid: s for sid, s in self.mix.sources.items() if sid != self.track_sid}

    async def start(self) -> None:
        """Publish the phone's track and join the room's mix."""
        p = self.participant
        self.call.on_audio = self.track.push
        info = models.TrackInfo(sid=new_sid("TR_"), type=models.AUDIO, source=models.TrackSource.MICROPHONE,
                                name=TRACK_NAME, mime_type="audio/opus")
        self.track_sid = info.sid
        self.mix = room_mix(self.rooms, p.room_name)
        self.mix.add_bridge(self)
        # hear tracks published from now on, then those already there
        endpoint = p.endpoint
        endpoint.on_track = self._on_track  # type: ignore[attr-defined]
        endpoint.on_track_removed = self._on_track_removed  # type: ignore[attr-defined]
        for publisher, track, media in self.rooms.published_tracks(p.room_name):
            self._on_track(publisher, track, media)
        await p.publish_track(info, self.track)
        log.info("call %s: audio bridged to room %s as %s (track %s, %d Hz)",
                 self.call.call_id, p.room_name, p.identity, info.sid, self.rate)

    def _on_track(self, publisher: Participant, track: models.TrackInfo, media: Any) -> None:
        if self.closed or self.mix is None or track.type != models.AUDIO or media is None:
            return
        if publisher is self.participant:
            return
        self.mix.add_source(publisher.identity, track.sid, media)

    def _on_track_removed(self, publisher: Participant, track_sid: str) -> None:
        if self.mix is not None:
            self.mix.remove_source(track_sid)

    def deliver(self, pcm: np.ndarray | None) -> None:
        """The mixer's frame for this call (None: nothing to hear this tick)."""
        if pcm is None:
            self._idle = True
            return
        if self._idle:
            # one frame of slack in the call's send queue: the mixer's tick and the media
            # engine's tick are not in phase
            self.call.send_audio(np.zeros(self.frame_samples, dtype=np.int16))
            self._idle = False
        self.call.send_audio(pcm)
        self.mixed_frames += 1

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
        stats = self.stats()
        self.closed = True
        if getattr(self.call, "on_audio", None) == self.track.push:
            self.call.on_audio = None
        endpoint = self.participant.endpoint
        if getattr(endpoint, "on_track", None) == self._on_track:
            endpoint.on_track = None  # type: ignore[attr-defined]
            endpoint.on_track_removed = None  # type: ignore[attr-defined]
        self.track.stop()
        if self.mix is not None:
            self.mix.remove_source(self.track_sid)
            self.mix.remove_bridge(self)
        log.info("call %s: audio bridge closed (%s)", self.call.call_id, ", ".join(f"{k}={v}" for k, v in stats.items()))

    async def aclose(self) -> None:
        """:meth:`close`, then unpublish the phone's track if the participant is still in the room."""
        self.close()
        if self.track_sid and self.participant.active:
            try:
                await self.participant.unpublish_track(self.track_sid)
            except Exception as exc:
                log.info("call %s: unpublishing the phone track failed: %s", self.call.call_id, exc)
