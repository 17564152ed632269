"""The engine's batched fast paths against the per-call paths they replace.

The media engine runs a thousand calls per 20 ms tick by batching (one G.711 lookup for every
steady call, one detector pass per sample rate, the received datagrams through one epoll set) and by
inlined fast paths in the jitter buffer, the RTCP statistics and the tone suppressor. Each must give
exactly what the general per-call code gives: the same packets out, the same digits, the same audio
handed onward, the same counters. These tests drive both with the same random traffic (loss,
reordering, duplicates, late ticks, timestamp jumps, in-band tones, RFC 4733 events, outgoing DTMF
and audio) and compare everything.
"""

from __future__ import annotations

import asyncio
import random
import select
import socket
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roomtone.dtmf.digits import parse_sequence
from roomtone.dtmf.tones import ToneGenerator
from roomtone.media.codecs import PCMA, PCMU
from roomtone.media.engine import MediaEngine, MediaStream
from roomtone.media.inband import InbandBank, StreamingInband
from roomtone.media.jitter import JitterBuffer
from roomtone.media.ports import PortAllocator
from roomtone.media.session import RtpSession, SessionConfig
from roomtone.media.suppress import ToneSuppressor

_HDR = struct.Struct("!BBHII")


def _traffic(rng: random.Random, cfg: SessionConfig, frames: int) -> list[tuple[float, bytes]]:
    """(arrival offset, datagram) of one phone: noise with an in-band digit, maybe an RFC 4733
    event, over a network that loses, delays, reorders and duplicates; maybe a timestamp jump."""
    codec = cfg.codec
    n = codec.frame_samples(cfg.ptime_ms)
    nrng = np.random.default_rng(rng.getrandbits(32))
    audio = nrng.normal(0, rng.choice([50, 600, 3000]), n * frames).astype(np.int16)
    at = rng.randrange(0, n * frames - 1000)
    audio[at:at + 800] = ToneGenerator(codec.sample_rate).tone(rng.choice("0123456789*#ABCD"), 0.1)
    enc = codec.new_encoder()
    ssrc, seq0, ts0 = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)
    jump_at = rng.randrange(frames) if rng.random() < 0.3 else None
    event_at = rng.randrange(5, frames - 10) if cfg.telephone_event_pt is not None and rng.random() < 0.7 else None
    loss, late = rng.choice([0.0, 0.02, 0.1]), rng.choice([0.0, 0.05, 0.2])
    out: list[tuple[float, bytes]] = []
    ts = ts0
    code, event_ts = rng.randrange(16), 0
    ticks = codec.frame_ticks(cfg.ptime_ms)
    for k in range(frames):
        if jump_at is not None and k == jump_at:
            ts = (ts + rng.choice([8000 * 5, -8000 * 5, 320])) & 0xFFFFFFFF
        seq = (seq0 + k) & 0xFFFF
        when = k * 0.02 + rng.uniform(0, 0.004) + (rng.uniform(0.02, 0.09) if rng.random() < late else 0.0)
        if event_at is not None and event_at <= k < event_at + 6:
            # an RFC 4733 event in place of the audio: marker first, three end packets
            i = k - event_at
            if i == 0:
                event_ts = ts
            flags = (0x80 if i >= 3 else 0) | 10
            payload = struct.pack("!BBH", code, flags, min(i + 1, 4) * ticks)
            datagram = _HDR.pack(0x80, (0x80 if i == 0 else 0) | cfg.telephone_event_pt, seq, event_ts, ssrc) + payload
        else:
            datagram = _HDR.pack(0x80, cfg.payload_type, seq, ts, ssrc) + enc.encode(audio[k * n:(k + 1) * n])
        if rng.random() >= loss:
            out.append((when, datagram))
            if rng.random() < 0.03:
                out.append((when + rng.uniform(0, 0.03), datagram))  # duplicate
        ts = (ts + ticks) & 0xFFFFFFFF
    out.sort(key=lambda p: p[0])
    return out


def _configs(rng: random.Random, calls: int) -> list[SessionConfig]:
    cfgs = []
    for _ in range(calls):
        codec = rng.choice([PCMU, PCMA])
        cfgs.append(SessionConfig(
            codec=codec, payload_type=0 if codec is PCMU else 8,
            telephone_event_pt=rng.choice([None, 101]), media_timeout=None, rtcp_interval=1000.0,
            jitter_delay=rng.choice([0.02, 0.06]), suppress_tones=rng.random() < 0.8,
            inband_detection=rng.random() < 0.8, received_audio_frames=1000,
        ))
    return cfgs


def _ticks(rng: random.Random, start: float, count: int) -> list[float]:
    """Tick times: mostly on time (a few ms late), sometimes one or several periods late."""
    out, t = [], start
    for _ in range(count):
        t += 0.02
        out.append(t + (rng.choice([0.025, 0.05, 0.11]) if rng.random() < 0.05 else rng.uniform(0, 0.004)))
    return out


class _Peer:
    """One phone on loopback: a real UDP socket that sends the call's traffic to the engine and
    receives what the engine sends back."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr: tuple[str, int] = self.sock.getsockname()

    def drain(self) -> list[bytes]:
        got = []
        while True:
            try:
                got.append(self.sock.recv(4096))
            except BlockingIOError:
                return got


class _GeneralJitter(JitterBuffer):
    def push(self, timestamp, payload, now, duration, sequence=None, ssrc=None):  # type: ignore[no-untyped-def]
        self._push(timestamp, payload, now, duration, sequence, ssrc)


class _GeneralSuppressor(ToneSuppressor):
    def process(self, frame: np.ndarray) -> np.ndarray:
        return self._process(frame)


def _reference(stream_session: RtpSession, cfg: SessionConfig, remote: tuple[str, int]) -> RtpSession:
    """A lone session starting exactly like the engine's, on the general per-call paths only: its
    own detector, the general tick and playout, no receive fast path (RTCP statistics by
    _ReceptionStats.update), the jitter buffer's and the suppressor's general code."""
    ref = RtpSession(cfg, remote, now=stream_session._started, wallclock_offset=stream_session.wallclock_offset,
                     rng=random.Random(0), batched_detection=False)
    ref.ssrc, ref._seq, ref._ts = stream_session.ssrc, stream_session._seq, stream_session._ts
    ref._next_rtcp = stream_session._next_rtcp
    ref._fast_b1 = b""  # never matches: every packet takes the general receive path
    ref.jitter = _GeneralJitter(cfg.codec.clock_rate, delay=cfg.jitter_delay)
    if ref._suppressor is not None:
        sup = ref._suppressor
        ref._suppressor = _GeneralSuppressor(sup.delay_samples, sup.margin_samples)
    return ref


async def _compare(seed: int, calls: int, ticks: int, epoll: bool = True) -> None:
    rng = random.Random(seed)
    engine = MediaEngine("127.0.0.1", PortAllocator(23400, 23499))
    peers = [_Peer() for _ in range(calls)]
    try:
        cfgs = _configs(rng, calls)
        streams: list[MediaStream] = []
        for cfg, peer in zip(cfgs, peers, strict=True):
            st_ = await engine.open(cfg)
            st_.set_remote(peer.addr)
            streams.append(st_)
        assert engine._task is not None
        engine._task.cancel()  # the test drives the clock
        await asyncio.sleep(0)
        clock = [0.0]
        engine._loop_time = lambda: clock[0]
        refs = [_reference(s.session, cfg, p.addr) for s, cfg, p in zip(streams, cfgs, peers, strict=True)]
        got_events: list[list[object]] = [[] for _ in streams]
        got_audio: list[list[np.ndarray]] = [[] for _ in streams]
        for i, s in enumerate(streams):
            s.on_event = got_events[i].append
            s.on_audio = got_audio[i].append
        ref_events: list[list[object]] = [[] for _ in streams]
        ref_audio: list[list[np.ndarray]] = [[] for _ in streams]
        sent: list[list[bytes]] = [[] for _ in streams]
        ref_sent: list[list[bytes]] = [[] for _ in streams]
        start = max(s.session._started for s in streams)
        arrivals = sorted(
            (start + off, i, data)
            for i, cfg in enumerate(cfgs) for off, data in _traffic(rng, cfg, ticks - 10)
        )
        # outgoing work on some calls, the same on both sides
        plans: dict[int, list[tuple[int, str]]] = {}
        for i, cfg in enumerate(cfgs):
            for _ in range(rng.randrange(3)):
                kind = rng.choice(["audio", "inband"] + (["rfc4733"] * 2 if cfg.telephone_event_pt else []))
                plans.setdefault(rng.randrange(ticks - 20), []).append((i, kind))
        a = 0
        for j, now in enumerate(_ticks(rng, start, ticks)):
            for i, kind in plans.get(j, []):
                for sess in (streams[i].session, refs[i]):
                    if kind == "audio":
                        sess.send_audio(np.full(500, 1000 * (i + 1), dtype=np.int16))
                    else:
                        sess.queue_dtmf(parse_sequence("1#"), kind, tone_ms=60, gap_ms=40)  # type: ignore[arg-type]
            while a < len(arrivals) and arrivals[a][0] <= now:
                when, i, data = arrivals[a]
                a += 1
                clock[0] = when
                peers[i].sock.sendto(data, streams[i].local)
                assert select.select([streams[i]._rtp], [], [], 2.0)[0], "datagram did not arrive"
                if epoll:
                    engine._on_ready()  # the engine's receive path: epoll, recvfrom_into, the session
                else:
                    streams[i]._rtp_readable()  # the per-socket loop reader (no select.epoll)
                refs[i].receive_rtp(data, peers[i].addr, when)
            clock[0] = now
            engine.tick(now)
            for i, ref in enumerate(refs):
                ref.tick(now)
                ref_events[i] += ref.take_events()
                ref_audio[i] += ref.read_audio()
                ref_sent[i] += [d for d, _, rtcp in ref.take_datagrams() if not rtcp]
                sent[i] += peers[i].drain()
        for i, (s, ref) in enumerate(zip(streams, refs, strict=True)):
            assert s.failed is None
            assert got_events[i] == ref_events[i], i
            assert len(got_audio[i]) == len(ref_audio[i]) >= ticks - 5
            assert all(np.array_equal(x, y) for x, y in zip(got_audio[i], ref_audio[i], strict=True)), i
            assert sent[i] == ref_sent[i], i
            assert s.session.stats == ref.stats
            assert s.session.jitter.stats == ref.jitter.stats
            assert s.session._reception == ref._reception  # RFC 3550 counters, jitter estimate
            if ref._reception is not None:
                assert s.session._reception.report_block(1.0) == ref._reception.report_block(1.0)
    finally:
        await engine.close()
        for p in peers:
            p.sock.close()
    assert engine.ports.in_use == 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), calls=st.integers(1, 6))
def test_engine_batched_tick_and_receive_match_lone_sessions(seed: int, calls: int) -> None:
    asyncio.run(_compare(seed, calls, 120))


def test_engine_batched_paths_match_lone_sessions_on_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional; the asyncio variant above always runs
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        for seed in range(3):
            runner.run(_compare(seed, 8, 150))


def test_engine_without_epoll_reads_each_socket_the_same(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Where select.epoll does not exist each socket is its own loop reader: same results."""
    monkeypatch.delattr(select, "epoll")
    asyncio.run(_compare(11, 4, 100, epoll=False))


def test_some_traffic_really_takes_each_path() -> None:
    """The comparison above means something only if digits, losses and events really happen."""
    events = asyncio.run(_count_paths())
    assert events["inband"] > 0 and events["rfc4733"] > 0 and events["lost"] > 0


async def _count_paths() -> dict[str, int]:
    from roomtone.media.dtmf_mux import DtmfEvent

    rng = random.Random(5)
    engine = MediaEngine("127.0.0.1", PortAllocator(23400, 23499))
    counts = {"inband": 0, "rfc4733": 0, "lost": 0}
    try:
        cfgs = [SessionConfig(telephone_event_pt=101, media_timeout=None, suppress_tones=True)] * 6
        streams = [await engine.open(c) for c in cfgs]
        assert engine._task is not None
        engine._task.cancel()
        await asyncio.sleep(0)
        for s in streams:
            s.on_event = lambda e: counts.__setitem__(e.method, counts[e.method] + 1) \
                if isinstance(e, DtmfEvent) else None
        start = max(s.session._started for s in streams)
        arrivals = sorted((start + off, i, d) for i, c in enumerate(cfgs) for off, d in _traffic(rng, c, 110))
        a = 0
        for now in _ticks(rng, start, 120):
            while a < len(arrivals) and arrivals[a][0] <= now:
                when, i, data = arrivals[a]
                a += 1
                streams[i].session.receive_rtp(data, ("127.0.0.1", 9), when)
            engine.tick(now)
        counts["lost"] = sum(s.session.jitter.stats.lost for s in streams)
    finally:
        await engine.close()
    return counts


# ------------------------------------------------------------------ the pieces' fast paths


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), delay=st.sampled_from([0.0, 0.02, 0.06]),
       max_jump=st.sampled_from([None, 800]), adaptive=st.booleans())
def test_jitter_fast_push_matches_the_general_path(seed: int, delay: float, max_jump: int | None,
                                                   adaptive: bool) -> None:
    rng = random.Random(seed)
    fast = JitterBuffer(8000, delay=delay, max_delay=0.2, max_jump=max_jump, adaptive=adaptive)
    slow = _GeneralJitter(8000, delay=delay, max_delay=0.2, max_jump=max_jump, adaptive=adaptive)
    ts, ssrc, t = rng.getrandbits(32), 7, 0.0
    for k in range(300):
        t += rng.choice([0.0, 0.005, 0.02, 0.02, 0.02, 0.06])
        r = rng.random()
        if r < 0.02:
            ssrc += 1
        elif r < 0.05:
            ts = (ts + rng.choice([-3200, 160 * 30, 2**31, 2**32 - 160, 17])) & 0xFFFFFFFF
        step = rng.choice([160, 160, 160, 320, 80, 0, -160, 480])
        ts = (ts + step) & 0xFFFFFFFF
        dur = rng.choice([160, 160, 80, 0])
        args = (ts, bytes([k % 256]) * 4, t, dur, k, ssrc if rng.random() > 0.01 else None)
        fast.push(*args)
        slow.push(*args)
        if rng.random() < 0.5:
            assert fast.pop(t) == slow.pop(t)
        assert fast.stats == slow.stats
        assert fast.next_deadline() == slow.next_deadline()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), delay=st.sampled_from([0, 160, 320, 240]))
def test_suppressor_fast_path_matches_the_general_path(seed: int, delay: int) -> None:
    rng = random.Random(seed)
    fast = ToneSuppressor(delay_samples=delay, margin_samples=80)
    slow = ToneSuppressor(delay_samples=delay, margin_samples=80)
    pos = 0
    n = rng.choice([160, 80])  # a session's frame size is fixed (a new codec gets a new suppressor)
    for _ in range(200):
        frame = np.random.default_rng(rng.getrandbits(32)).integers(-3000, 3000, n).astype(np.int16)
        r = rng.random()
        if r < 0.05:
            start = pos + rng.randrange(-400, 400)
            for sup in (fast, slow):
                sup.mute(start, None)
        elif r < 0.1:
            start = pos + rng.randrange(-400, 0)
            end = start + rng.randrange(0, 800)
            for sup in (fast, slow):
                sup.close(start, end)
        assert np.array_equal(fast.process(frame), slow._process(frame))
        pos += n
    assert fast.muted_samples == slow.muted_samples


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ragged=st.booleans())
def test_growing_bank_chunks_give_each_call_its_own_detector(seed: int, ragged: bool) -> None:
    """Slots in chunks of 2, 2, 4, 8, 8 channels, calls joining and leaving, matrix and list
    input, and (``ragged``) calls that get no audio, two frames or an odd length in a tick (the
    jitter buffer after a late tick): every call's reports equal those of its own detector fed
    the same audio."""
    rng = random.Random(seed)
    bank = InbandBank(8000, chunk=2, max_chunk=8)
    gen = ToneGenerator(8000)
    live: dict[int, tuple[StreamingInband, np.ndarray]] = {}  # slot -> (own detector, its audio)
    pos: dict[int, int] = {}
    got: dict[int, list] = {}
    want: dict[int, list] = {}
    for _ in range(150):
        if rng.random() < 0.15 or not live:
            slot = bank.add()
            assert slot not in live
            seq = "".join(rng.choice("0123456789*#") for _ in range(3))
            audio = np.concatenate((gen.sequence(seq, 0.06, 0.05)[0], np.zeros(1600, dtype=np.int16)))
            live[slot] = (StreamingInband(8000), np.resize(audio, 160 * 400))
            got[slot], want[slot], pos[slot] = [], [], 0
        if rng.random() < 0.05 and len(live) > 1:
            gone = rng.choice(sorted(live))
            bank.remove(gone)
            del live[gone]
        slots = sorted(live)
        sizes = [rng.choice([0, 320, 320, 100]) if ragged and rng.random() < 0.2 else 160 for _ in slots]
        frames = []
        for slot, size in zip(slots, sizes, strict=True):
            frames.append(live[slot][1][pos[slot]:pos[slot] + size])
            pos[slot] = (pos[slot] + size) % (160 * 390)
        feed = np.array(frames) if len(set(sizes)) == 1 and rng.random() < 0.5 else frames
        results = bank.process(slots, feed)
        for slot, frame, res in zip(slots, frames, results, strict=True):
            got[slot] += res
            want[slot] += live[slot][0].process(frame)
    assert sum(len(g) for g in got.values()) > 0
    for slot in got:
        assert got[slot] == want[slot], slot
