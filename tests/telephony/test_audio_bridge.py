"""The audio bridge between a phone call and its room (roomtone.telephony.audio), with real parts.

End to end (inside a network namespace, since libwebrtc ignores loopback): the roomtone server
with its SIP gateway (sdk_gateway_server.py), ``livekit-api`` for the trunk and rule, a Python
``livekit`` SDK participant publishing a 440 Hz sine, and a pjsua2 phone playing a 1000 Hz WAV
and recording what it hears. The SDK participant must hear ≈1000 Hz from the SIP participant's
track, the phone must record ≈440 Hz, DTMF must still flow both ways while audio does, and the
bridge must close when the phone hangs up and when the room removes the participant. The server
process's CPU time with and without a bridged call is printed (reported, not asserted).

This file is also the scenario the test runs inside the namespace:
``python -m tests.telephony.test_audio_bridge SPEC.json`` prints one JSON object.

The pure parts (mixing, resampling, the phone track's timestamps) are tested in-process below.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import re
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame
from av.audio.resampler import AudioResampler

from roomtone.telephony.audio import PhoneAudioTrack, mix, to_call_rate
from tests.netns import netns, netns_available  # noqa: F401

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
KEY, SECRET = "APIaudio", "audio-bridge-test-secret-0123456789abcdef"
SIP_ID = "sip_15557777"


def peak_hz(samples: np.ndarray, rate: int) -> float:
    x = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spectrum[:3] = 0  # ignore DC
    return float(np.argmax(spectrum) * rate / len(x))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def sine(freq: float, rate: int, start: int, count: int, level: float = 0.3) -> np.ndarray:
    n = np.arange(start, start + count)
    return (level * 32767 * np.sin(2 * np.pi * freq * n / rate)).astype(np.int16)


# ---------------------------------------------------------------- in-process: the pure parts


def test_mix_saturates_instead_of_wrapping() -> None:
    a = np.full(160, 30000, dtype=np.int16)
    b = np.full(160, 10000, dtype=np.int16)
    assert mix([a, b]).tolist() == [32767] * 160
    assert mix([-a, -b]).tolist() == [-32768] * 160
    assert mix([a, -b]).tolist() == [20000] * 160


def test_mix_of_two_tones_holds_both() -> None:
    rate = 8000
    out = np.concatenate([mix([sine(440, rate, i, 160), sine(1000, rate, i, 160)]) for i in range(0, 8000, 160)])
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    top2 = sorted(int(round(f)) for f in np.argsort(spectrum)[-2:] * rate / len(out))
    assert top2 == [440, 1000]


@pytest.mark.parametrize("rate", [8000, 16000])
def test_room_frames_resampled_to_the_call_rate(rate: int) -> None:
    """48 kHz stereo 20 ms frames (what aiortc decodes from Opus) become mono frames at the call's
    rate with the tone intact."""
    resampler = AudioResampler(format="s16", layout="mono", rate=rate)
    out = []
    for k in range(50):
        mono = sine(440, 48000, k * 960, 960)
        stereo = np.repeat(mono, 2).reshape(1, -1)
        frame = AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = k * 960 + (5000 if k == 20 else 0)  # a pts jump must not disturb it
        frame.time_base = fractions.Fraction(1, 48000)
        out.append(to_call_rate(resampler, frame))
    pcm = np.concatenate(out)
    assert abs(len(pcm) - rate) <= rate * 0.02
    assert abs(peak_hz(pcm[rate // 10:], rate) - 440) < 5
    assert 0.3 * 32767 / math.sqrt(2) * 0.9 < rms(pcm[rate // 10:]) < 0.3 * 32767 / math.sqrt(2) * 1.1


async def test_phone_track_keeps_pts_consistent_and_fills_gaps_with_silence() -> None:
    track = PhoneAudioTrack(8000)
    for k in range(3):
        track.push(sine(1000, 8000, k * 160, 160))
    track.push(sine(1000, 8000, 480, 80))  # a short frame is re-cut, not sent short
    track.push(sine(1000, 8000, 560, 80))
    frames = [await track.recv() for _ in range(6)]
    assert [f.pts for f in frames] == [0, 160, 320, 480, 640, 800]
    assert all(f.time_base == fractions.Fraction(1, 8000) and f.sample_rate == 8000 and f.samples == 160
               for f in frames)
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    assert np.array_equal(pcm[:640], sine(1000, 8000, 0, 640))
    assert not pcm[640:].any() and track.silence_frames == 2
    # bounded: a burst keeps only the newest frames
    for k in range(20):
        track.push(np.full(160, k, dtype=np.int16))
    assert track.frames_dropped == 15
    assert int((await track.recv()).to_ndarray()[0, 0]) == 15
    track.stop()
    track.push(np.zeros(160, dtype=np.int16))  # ignored once stopped


# ---------------------------------------------------------------- in-process: gateway + pjsua2 phone


class SineTrack(MediaStreamTrack):
    """A server-side participant's microphone: a paced 48 kHz mono sine."""

    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self.freq = freq
        self._n = 0
        self._t0: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        delay = self._t0 + self._n / 48000 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = AudioFrame.from_ndarray(sine(self.freq, 48000, self._n, 960, 0.2).reshape(1, -1), format="s16",
                                        layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self._n, fractions.Fraction(1, 48000)
        self._n += 960
        return frame


async def _publish_tone(rooms: Any, room: str, identity: str, freq: float) -> tuple[Any, str]:
    from livekit.protocol import models

    from roomtone.rooms import CallbackEndpoint, new_sid

    p = await rooms.join(room, identity, endpoint=CallbackEndpoint())
    info = models.TrackInfo(sid=new_sid("TR_"), type=models.AUDIO, source=models.TrackSource.MICROPHONE, name="mic")
    await p.publish_track(info, SineTrack(freq))
    return p, info.sid


async def _read_track(media: Any, seconds: float, rate: int) -> np.ndarray:
    from roomtone.rtc.media import subscribe

    proxy = subscribe(media)
    chunks: list[np.ndarray] = []
    try:
        while sum(map(len, chunks)) < seconds * rate:
            frame = await asyncio.wait_for(proxy.recv(), 2)
            assert frame.sample_rate == rate
            chunks.append(frame.to_ndarray().reshape(-1))
    finally:
        proxy.stop()
    return np.concatenate(chunks)


@pytest.mark.interop
async def test_outbound_call_hears_the_mix_of_two_participants(gateway: Any, tmp_path: Path) -> None:
    """CreateSIPParticipant to a pjsua2 phone: the phone records the mix of a participant that
    published before the call (440 Hz) and one that publishes after the answer (700 Hz); the room
    hears the phone's 1000 Hz on the SIP participant's track; a publisher leaving leaves the mix;
    the phone hanging up closes the bridge."""
    from livekit.protocol import sip as sip_pb

    from tests.phones.pjsua import pjsua_phone
    from tests.telephony.conftest import wait_for

    tone = tmp_path / "tone1000.wav"
    _write_tone_wav(tone, 1000, 30)
    rec = tmp_path / "heard.wav"
    rooms = gateway.rooms
    first, _ = await _publish_tone(rooms, "mix", "alice", 440)
    with pjsua_phone(user="callee", auto_answer=True, codecs=("G722",)) as phone:
        await gateway.store.put_outbound_trunk(sip_pb.SIPOutboundTrunkInfo(
            sip_trunk_id="ST_out", address=f"127.0.0.1:{phone.port}", numbers=["+15550999"]))
        await gateway.create_sip_participant(sip_pb.CreateSIPParticipantRequest(
            sip_trunk_id="ST_out", sip_call_to="callee", room_name="mix", wait_until_answered=True))
        await asyncio.to_thread(phone.play, str(tone))
        await asyncio.to_thread(phone.record, str(rec))
        second, second_sid = await _publish_tone(rooms, "mix", "bob", 700)
        (call,) = gateway.calls.values()
        bridge = call.audio
        assert bridge is not None and bridge.rate == 16000
        await wait_for(lambda: len(bridge.sources) == 2, 5, "both publishers heard")

        sip = rooms.participant("mix", "sip_callee")
        assert [t.name for t in sip.record.tracks] == ["phone"]
        heard_by_room = await _read_track(sip.media[sip.record.tracks[0].sid], 1.5, 16000)
        assert abs(peak_hz(heard_by_room[8000:], 16000) - 1000) <= 10, rms(heard_by_room)

        await second.unpublish_track(second_sid)
        await wait_for(lambda: len(bridge.sources) == 1, 5, "unpublished track leaves the mix")
        await second.leave()
        await asyncio.sleep(1.5)
        await asyncio.to_thread(phone.hangup)
        await wait_for(lambda: not gateway.calls, 10, "call forgotten after the phone hung up")
        assert bridge.closed and bridge.track.readyState == "ended" and not bridge.sources
        assert rooms.participant("mix", "sip_callee") is None
    await first.leave()

    pcm, rate = _read_wav(rec)
    # with both publishers (the recording starts about when bob publishes): both tones
    both = pcm[int(rate * 0.5): int(rate * 1.5)]
    spectrum = np.abs(np.fft.rfft(both.astype(np.float64) * np.hanning(len(both))))
    freqs = np.fft.rfftfreq(len(both), 1 / rate)
    level = {f: spectrum[(freqs > f - 15) & (freqs < f + 15)].max() for f in (440, 700, 1000)}
    assert level[440] > 0.3 * level[700] and level[700] > 0.3 * level[440], level
    assert level[1000] < 0.01 * level[440], level  # the phone does not hear itself
    # after bob left: 440 Hz alone
    end = len(pcm) - int(rate * 0.3)
    alone = pcm[end - rate: end]
    assert abs(peak_hz(alone, rate) - 440) <= 10, (peak_hz(alone, rate), rms(alone))


@pytest.mark.interop
async def test_two_phones_in_one_room_hear_each_other(gateway: Any, tmp_path: Path) -> None:
    """Inbound calls from two pjsua2 phones (PCMU at 8 kHz, G722 at 16 kHz) into one room: each
    phone's track (a server-side track) is the other's source, resampled between the call rates."""
    from livekit.protocol import sip as sip_pb

    from tests.phones.pjsua import pjsua_phone
    from tests.telephony.conftest import wait_for

    await gateway.store.put_inbound_trunk(sip_pb.SIPInboundTrunkInfo(sip_trunk_id="ST_in", numbers=["+15550100"]))
    await gateway.store.put_dispatch_rule(sip_pb.SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_in",
        rule=sip_pb.SIPDispatchRule(dispatch_rule_direct=sip_pb.SIPDispatchRuleDirect(room_name="pair"))))
    tones = {"15551111": 1000.0, "15552222": 600.0}
    codecs = {"15551111": ("PCMU",), "15552222": ("G722",)}
    with pjsua_phone(user="15551111", codecs=codecs["15551111"]) as a, \
            pjsua_phone(user="15552222", codecs=codecs["15552222"]) as b:
        for phone in (a, b):
            wav = tmp_path / f"{phone.user}.wav"
            _write_tone_wav(wav, tones[phone.user], 30)
            await asyncio.to_thread(phone.call, f"sip:+15550100@127.0.0.1:{gateway.port}")
            await asyncio.to_thread(phone.wait_state, "CONFIRMED", 10)
            await wait_for(lambda p=phone: gateway.rooms.participant("pair", f"sip_{p.user}"), 10, "joined")
            await asyncio.to_thread(phone.play, str(wav))
            await asyncio.to_thread(phone.record, str(tmp_path / f"{phone.user}-heard.wav"))
        await wait_for(lambda: sorted(c.audio.rate for c in gateway.calls.values() if c.audio and c.audio.sources)
                       == [8000, 16000], 10, "each bridge hears the other")
        (mix,) = {c.audio.mix for c in gateway.calls.values() if c.audio}
        assert mix is not None and mix._task is not None, "the room's mixer runs while it has sources"
        await asyncio.sleep(2.5)
        await asyncio.to_thread(a.hangup)
        await wait_for(lambda: len(gateway.calls) == 1, 10, "first call gone")
        (left,) = gateway.calls.values()
        assert left.audio is not None
        await wait_for(lambda: not left.audio.sources, 5, "the departed phone leaves the other's mix")
        assert left.audio.mix is mix and mix._task is None, "nothing left to mix: the mixer's loop stops"
        await asyncio.to_thread(b.hangup)
        await wait_for(lambda: not gateway.calls, 10, "second call gone")
    # A recorded from before B called until A hung up: its end; B from after A was in the room: its start
    for me, other, at_end in (("15551111", "15552222", True), ("15552222", "15551111", False)):
        pcm, rate = _read_wav(tmp_path / f"{me}-heard.wav")
        body = pcm[len(pcm) - 2 * rate: len(pcm) - rate // 2] if at_end else pcm[rate // 2: 2 * rate]
        assert abs(peak_hz(body, rate) - tones[other]) <= 10, (me, peak_hz(body, rate), rms(body))
        assert rms(body) > 1000, (me, rms(body))


# ---------------------------------------------------------------- end to end in a namespace


def _write_tone_wav(path: Path, freq: float, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(sine(freq, rate, 0, int(seconds * rate)).tobytes())


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
    assert width == 2, f"{path}: {width}-byte samples"
    raw = path.read_bytes()[44:]  # the data, even if the header's sizes were never updated
    pcm = np.frombuffer(raw[: len(raw) // 2 * 2], dtype=np.int16)
    return pcm[::channels], rate


@pytest.mark.interop
@pytest.mark.netns
@pytest.mark.skipif(not netns_available(), reason="needs root for network namespaces")
@pytest.mark.parametrize("codec", ["PCMU", "G722"])
def test_phone_and_sdk_hear_each_other(netns, codec: str) -> None:  # noqa: F811
    log = netns.tmp_path("server.log")
    with open(log, "wb") as out:
        proc = netns.popen([sys.executable, str(HERE / "sdk_gateway_server.py"), "7880", KEY, SECRET, "5060",
                            str(netns.tmp_path("t.sqlite"))], stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT))
    deadline = time.monotonic() + 30
    while '"ready": true' not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    tone = netns.tmp_path("tone1000.wav")
    _write_tone_wav(tone, 1000, 60)
    recording = netns.tmp_path("heard.wav")
    spec = {"url": "ws://127.0.0.1:7880", "key": KEY, "secret": SECRET, "sip_port": 5060, "phone_port": 5070,
            "phone_log": str(netns.tmp_path("pjsua.log")), "codec": codec, "tone": str(tone),
            "recording": str(recording), "server_pid": proc.pid}
    spec_path = netns.tmp_path("spec.json")
    spec_path.write_text(json.dumps(spec))
    res = netns.run([sys.executable, "-m", "tests.telephony.test_audio_bridge", str(spec_path)], timeout=180,
                    cwd=str(ROOT))
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    server_log = log.read_text(errors="replace")
    assert lines, f"{res.stderr[-3000:]}\n{server_log[-4000:]}"
    got = json.loads(lines[-1])
    context = f"{got}\n{res.stderr[-2000:]}\n{server_log[-5000:]}"
    assert got["errors"] == [], context

    # phone -> room: the SDK participant hears the phone's 1000 Hz from the SIP participant's track
    assert got["track_from"] == SIP_ID and got["track_source"] == "SOURCE_MICROPHONE", context
    assert abs(got["sdk_peak_hz"] - 1000) <= 10, context
    assert got["sdk_rms"] > 2000, context
    # ... and still after the DTMF exchange
    assert abs(got["sdk_peak_hz_after_dtmf"] - 1000) <= 10 and got["sdk_rms_after_dtmf"] > 2000, context
    # audio does not stop DTMF: both directions, each digit once
    assert got["room_dtmf"] == [[1, "1", SIP_ID], [5, "5", SIP_ID], [9, "9", SIP_ID], [11, "#", SIP_ID]], context
    assert got["phone_dtmf"] == ["7", "3"], context

    # room -> phone: the phone recorded the SDK participant's 440 Hz
    pcm, rate = _read_wav(recording)
    body = pcm[int(rate * 1.5): int(rate * 4.5)]
    assert len(body) > rate, f"recording too short ({len(pcm)} samples at {rate} Hz)\n{context}"
    heard_hz, heard_rms = peak_hz(body, rate), rms(body)
    assert abs(heard_hz - 440) <= 10, f"phone heard {heard_hz:.1f} Hz (rms {heard_rms:.0f})\n{context}"
    assert heard_rms > 1000, f"phone heard rms {heard_rms:.0f}\n{context}"

    # either side ending the call ends the bridge (phone hangup, then RemoveParticipant)
    assert got["sip_left_after_phone_hangup"] and got["phone_hung_up_by_removal"], context
    closed = re.findall(r"audio bridge closed \((.*)\)", server_log)
    assert len(closed) == 2, context
    assert "mixed_frames=0" not in closed[0], context

    cpu = got["cpu"]
    print(f"\n[{codec}] server CPU: {cpu['idle_pct']:.1f}% with the SDK publishing alone, "
          f"{cpu['bridged_pct']:.1f}% with one bridged call (+{cpu['bridged_pct'] - cpu['idle_pct']:.1f}% "
          f"of one core per call); phone heard {heard_hz:.1f} Hz rms {heard_rms:.0f}; "
          f"SDK heard {got['sdk_peak_hz']:.1f} Hz rms {got['sdk_rms']:.0f}; bridge: {closed[0]}")


# ---------------------------------------------------------------- the scenario (runs in the namespace)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _cpu_pct(pid: int, seconds: float) -> float:
    c0, t0 = _cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return 100.0 * (_cpu_seconds(pid) - c0) / (time.monotonic() - t0)


async def _scenario(spec: dict[str, Any]) -> dict[str, Any]:
    from livekit import api, rtc

    from tests.telephony.sdk_scenario import AGENT, Phone, until

    out: dict[str, Any] = {"errors": []}
    url, key, secret = spec["url"], spec["key"], spec["secret"]
    lk = api.LiveKitAPI(url.replace("ws://", "http://"), key, secret)
    await lk.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(
        name="audio", numbers=["+15550100"], allowed_addresses=["127.0.0.1"],
        metadata=json.dumps({"roomtone": {"dtmf_mode": "rfc4733"}}))))
    await lk.sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(dispatch_rule=api.SIPDispatchRuleInfo(
        rule=api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name="lobby")))))

    room = rtc.Room()
    room_dtmf: list[list[Any]] = []
    room.on("sip_dtmf_received",
            lambda d: room_dtmf.append([d.code, d.digit, d.participant.identity if d.participant else None]))
    tracks: asyncio.Queue[tuple[Any, Any, Any]] = asyncio.Queue()
    room.on("track_subscribed", lambda t, pub, p: tracks.put_nowait((t, pub, p)))
    left: list[str] = []
    room.on("participant_disconnected", lambda p: left.append(p.identity))
    token = api.AccessToken(key, secret).with_identity("agent").with_grants(
        api.VideoGrants(room_join=True, room="lobby")).to_jwt()
    await room.connect(url, token, rtc.RoomOptions(auto_subscribe=True, connect_timeout=20))

    source = rtc.AudioSource(48000, 1)
    await room.local_participant.publish_track(
        rtc.LocalAudioTrack.create_audio_track("sine440", source),
        rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))

    async def play_sine() -> None:
        n = 0
        while True:
            frame = rtc.AudioFrame.create(48000, 1, 480)
            np.frombuffer(frame.data, dtype=np.int16)[:] = sine(440, 48000, n, 480)
            n += 480
            await source.capture_frame(frame)

    sine_task = asyncio.ensure_future(play_sine())
    pid = spec["server_pid"]
    cpu: dict[str, float] = {}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-u", AGENT, "--host", "127.0.0.1", "--port", str(spec["phone_port"]),
        "--rtp-port", str(spec["phone_port"] + 2), "--user", "15557777", "--log", spec["phone_log"],
        "--codecs", spec["codec"],
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    phone = Phone(proc)
    try:
        await asyncio.sleep(1.0)
        cpu["idle_pct"] = await _cpu_pct(pid, 3.0)  # the SDK's track reaches the server, no call
        if not await phone.wait(lambda e: e.get("event") == "ready", 20):
            raise RuntimeError("phone not ready")
        phone.send("call", uri=f"sip:+15550100@127.0.0.1:{spec['sip_port']}")
        if not await phone.wait(lambda e: e.get("event") == "call_state" and e.get("state") == "CONFIRMED", 15):
            raise RuntimeError("call not answered")
        phone.send("play", wav=spec["tone"])
        phone.send("record", wav=spec["recording"])
        track, pub, who = await asyncio.wait_for(tracks.get(), 20)
        out["track_from"], out["track_source"] = who.identity, rtc.TrackSource.Name(pub.source)
        stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1)

        async def listen(skip: int, keep: int) -> np.ndarray:
            chunks: list[np.ndarray] = []
            skipped = 0
            async for ev in stream:
                data = np.frombuffer(ev.frame.data, dtype=np.int16)
                if skipped < skip:
                    skipped += len(data)
                    continue
                chunks.append(data.copy())
                if sum(map(len, chunks)) >= keep:
                    break
            return np.concatenate(chunks)[:keep]

        heard, cpu["bridged_pct"] = await asyncio.gather(listen(48000, 48000), _cpu_pct(pid, 3.0))
        out["sdk_peak_hz"], out["sdk_rms"] = peak_hz(heard, 48000), rms(heard)

        phone.send("dtmf", digits="159#", method="rfc4733", duration_ms=160)
        for code, digit in ((7, "7"), (3, "3")):
            await room.local_participant.publish_dtmf(code=code, digit=digit)
        await until(lambda: len(room_dtmf) >= 4 and len(phone.digits()) >= 2, 15)
        heard = await listen(24000, 24000)
        out["sdk_peak_hz_after_dtmf"], out["sdk_rms_after_dtmf"] = peak_hz(heard, 48000), rms(heard)
        out["room_dtmf"], out["phone_dtmf"] = room_dtmf, phone.digits()
        await stream.aclose()

        phone.send("hangup")
        out["sip_left_after_phone_hangup"] = await until(lambda: SIP_ID in left, 10)

        # second call: the room side ends it
        phone.send("call", uri=f"sip:+15550100@127.0.0.1:{spec['sip_port']}")
        await until(lambda: sum(1 for e in phone.events if e.get("state") == "CONFIRMED") >= 2, 15)
        await asyncio.wait_for(tracks.get(), 20)
        await asyncio.sleep(1.0)
        await lk.room.remove_participant(api.RoomParticipantIdentity(room="lobby", identity=SIP_ID))
        out["phone_hung_up_by_removal"] = await until(
            lambda: sum(1 for e in phone.events if e.get("state") == "DISCONNECTED") >= 2, 10)
        await asyncio.sleep(0.5)
    except Exception as exc:  # reported to the test, which shows it
        out["errors"].append(repr(exc))
    finally:
        out["cpu"] = cpu
        sine_task.cancel()
        phone.send("quit")
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
        await room.disconnect()
        await lk.aclose()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_scenario(json.loads(Path(sys.argv[1]).read_text())))), flush=True)
