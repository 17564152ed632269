"""The asyncio media engine: real UDP sockets on loopback, one shared clock, batched detection."""

from __future__ import annotations

import asyncio

import numpy as np

from roomtone.dtmf.digits import parse_sequence
from roomtone.media.dtmf_mux import DtmfEvent
from roomtone.media.engine import MediaEngine
from roomtone.media.inband import InbandBank, StreamingInband
from roomtone.media.ports import PortAllocator
from roomtone.media.session import SessionConfig


async def _wait_for(pred, timeout=5.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_two_streams_exchange_dtmf_by_both_media_methods_over_udp():
    engine = MediaEngine("127.0.0.1", PortAllocator(22200, 22299))
    try:
        a = await engine.open(SessionConfig(telephone_event_pt=101))
        b = await engine.open(SessionConfig(telephone_event_pt=101))
        a.set_remote(b.local)
        b.set_remote(a.local)
        got_b: list[DtmfEvent] = []
        got_a: list[DtmfEvent] = []
        b.on_event = lambda e: got_b.append(e) if isinstance(e, DtmfEvent) else None
        a.on_event = lambda e: got_a.append(e) if isinstance(e, DtmfEvent) else None
        a.session.queue_dtmf(parse_sequence("159#"), "rfc4733")
        b.session.queue_dtmf(parse_sequence("26*0"), "inband")
        assert await _wait_for(lambda: len(got_b) >= 4 and len(got_a) >= 4)
        await asyncio.sleep(0.3)
        assert [(e.digit, e.method) for e in got_b] == [(d, "rfc4733") for d in "159#"]
        assert [(e.digit, e.method) for e in got_a] == [(d, "inband") for d in "26*0"]
        assert engine.ticks > 0
    finally:
        await engine.close()
    assert engine.ports.in_use == 0


async def test_audio_callback_receives_steady_frames():
    engine = MediaEngine("127.0.0.1", PortAllocator(22300, 22399))
    try:
        a = await engine.open(SessionConfig(inband_detection=False))
        b = await engine.open(SessionConfig(inband_detection=False, suppress_tones=False))
        a.set_remote(b.local)
        frames: list[np.ndarray] = []
        b.on_audio = frames.append
        a.send_audio(np.full(1600, 4000, dtype=np.int16))
        assert await _wait_for(lambda: sum(int(np.abs(f).max() > 3000) for f in frames) >= 10)
        assert {len(f) for f in frames} == {160}
    finally:
        await engine.close()


def test_bank_gives_the_same_digits_as_one_detector_per_call_and_recycles_slots():
    from roomtone.dtmf.tones import ToneGenerator

    rate = 8000
    bank = InbandBank(rate, chunk=4)
    slots = [bank.add() for _ in range(6)]  # two chunks
    gens = [ToneGenerator(rate) for _ in slots]
    seqs = ["12", "34", "56", "78", "90", "*#"]
    audio = [g.sequence(s, 0.1, 0.1)[0] for g, s in zip(gens, seqs, strict=True)]
    n = max(len(x) for x in audio) + 1600
    audio = [np.concatenate((x, np.zeros(n - len(x), dtype=np.int16))) for x in audio]
    singles = [StreamingInband(rate) for _ in slots]
    got_bank: list[list] = [[] for _ in slots]
    got_single: list[list] = [[] for _ in slots]
    for i in range(0, n - 160, 160):
        res = bank.process(slots, [x[i:i + 160] for x in audio])
        for k in range(len(slots)):
            got_bank[k] += res[k]
            got_single[k] += singles[k].process(audio[k][i:i + 160])
    assert got_bank == got_single
    assert ["".join(str(r[1]) for r in g if r[0] == "ended") for g in got_bank][:2] == ["12", "34"]
    # a freed slot is quarantined, then reused with indices counted from the new owner's start
    bank.remove(slots[1])
    assert bank.add() != slots[1]
    for _ in range(5):
        bank.process([slots[0]], [np.zeros(160, dtype=np.int16)])
    reused = bank.add()
    assert reused == slots[1]
    tone = ToneGenerator(rate).sequence("7", 0.1, 0.1)[0]
    tone = np.concatenate((tone, np.zeros(800, dtype=np.int16)))
    events = []
    for i in range(0, len(tone) - 159, 160):
        events += bank.process([reused], [tone[i:i + 160]])[0]
    assert [(e[0], e[1]) for e in events] == [("started", 7), ("ended", 7)]
    assert events[0][2] < 80  # the tone starts at sample 0 of the new owner's stream


def test_bank_tolerates_ticks_with_no_new_audio():
    bank = InbandBank(8000, chunk=4)
    slots = [bank.add() for _ in range(3)]
    empty = np.zeros(0, dtype=np.int16)
    assert bank.process(slots, [empty, empty, empty]) == [[], [], []]
    assert bank.process(slots, [np.zeros(160, dtype=np.int16), empty, np.zeros(320, dtype=np.int16)]) == [[], [], []]


def test_batched_g711_decode_plays_out_exactly_what_each_session_alone_would():
    """The engine decodes all G.711 sessions' frames in one lookup; the audio handed onward must be
    sample for sample what a lone session decoding its own packets plays, through losses,
    reordering, bursts and gaps, for µ-law and A-law side by side (and G.722 on its own path)."""
    import random
    import struct

    from roomtone.media.codecs import G722, PCMA, PCMU
    from roomtone.media.engine import MediaStream
    from roomtone.media.g722 import G722Encoder
    from roomtone.media.session import RtpSession

    rng = np.random.default_rng(7)
    engine = MediaEngine()
    cases = []
    for i, codec in enumerate([PCMU, PCMA, PCMU, PCMA, PCMU, G722]):
        cfg = SessionConfig(codec=codec, payload_type={"PCMU": 0, "PCMA": 8, "G722": 9}[codec.name],
                            inband_detection=False, media_timeout=None)
        ours = RtpSession(cfg, ("127.0.0.1", 40000 + 2 * i), now=0.0, rng=random.Random(i))
        alone = RtpSession(cfg, ("127.0.0.1", 40000 + 2 * i), now=0.0, rng=random.Random(i))
        stream = MediaStream(engine, ours, ("127.0.0.1", 20000 + 2 * i))  # no sockets: nothing sent
        got: list[np.ndarray] = []
        stream.on_audio = got.append
        engine.streams.append(stream)
        # 3 s of packets: noise, some lost, some late (reordered), bursts, and a 0.3 s gap
        enc = G722Encoder() if codec is G722 else None
        n = codec.frame_samples()
        packets = []
        for k in range(150):
            pcm = rng.normal(0, 3000, n).astype(np.int16)
            payload = enc.encode(pcm) if enc else (codec.new_encoder().encode(pcm))
            at = k * 0.02 + 0.003 + (0.03 if k % 17 == 5 else 0.0) + (0.3 if k >= 100 else 0.0)
            if k % 23 == 11 or 60 <= k < 63 and i % 2:
                continue
            if k % 29 == 3:  # a burst: this one and the next arrive together
                at += 0.02
            header = struct.pack("!BBHII", 0x80, cfg.payload_type, k & 0xFFFF, k * codec.frame_ticks(), 1234)
            packets.append((at, header + payload))
        packets.sort(key=lambda p: p[0])
        cases.append((ours, alone, got, packets))
    alone_audio: list[list[np.ndarray]] = [[] for _ in cases]
    t = 0.0
    while t < 3.6:
        t = round(t + 0.02, 6)
        for j, (ours, alone, _, packets) in enumerate(cases):
            while packets and packets[0][0] <= t:
                _, data = packets.pop(0)
                ours.receive_rtp(data, ("127.0.0.1", 50000 + j), t)
                alone.receive_rtp(data, ("127.0.0.1", 50000 + j), t)
            alone.tick(t)
            alone_audio[j] += alone.read_audio()
        engine.tick(t)
    for j, (ours, alone, got, _) in enumerate(cases):
        assert len(got) == len(alone_audio[j]) > 150
        assert all(np.array_equal(a, b) for a, b in zip(got, alone_audio[j], strict=True)), j
        assert sum(int(np.abs(f).max() > 1000) for f in got) > 100  # real audio came through
        assert ours.jitter.stats.lost > 0 and ours.stats.rtp_received == alone.stats.rtp_received


def test_loop_factory_falls_back_to_asyncio_when_asked(monkeypatch):
    from roomtone.media.engine import loop_factory, loop_name, run

    monkeypatch.setenv("ROOMTONE_LOOP", "asyncio")
    loop = loop_factory()()
    try:
        assert loop_name(loop).startswith("asyncio")
    finally:
        loop.close()

    async def which() -> str:
        return loop_name(asyncio.get_running_loop())

    assert run(which()).startswith("asyncio")
    monkeypatch.delenv("ROOMTONE_LOOP")
    try:
        import uvloop  # noqa: F401
    except ImportError:
        expected = "asyncio"
    else:
        expected = "uvloop"
    loop = loop_factory()()
    try:
        assert loop_name(loop).startswith(expected)
    finally:
        loop.close()


async def test_a_failing_session_is_closed_and_the_other_calls_carry_on(caplog):
    """One session raising in the shared tick costs only that call: it is logged, closed and told
    (MediaFailed); the others keep their audio and DTMF (issue: one bad call used to abort the tick)."""
    from roomtone.media.session import MediaFailed

    engine = MediaEngine("127.0.0.1", PortAllocator(22500, 22599))
    try:
        a = await engine.open(SessionConfig(telephone_event_pt=101, audio_during_events="keep"))
        b = await engine.open(SessionConfig(telephone_event_pt=101, suppress_tones=False))
        bad = await engine.open(SessionConfig(telephone_event_pt=101))
        a.set_remote(b.local)
        b.set_remote(a.local)
        bad.set_remote(a.local)
        got_b: list[DtmfEvent] = []
        bad_events: list[object] = []
        b.on_event = lambda e: got_b.append(e) if isinstance(e, DtmfEvent) else None
        bad.on_event = bad_events.append
        frames: list[np.ndarray] = []
        b.on_audio = frames.append
        assert await _wait_for(lambda: len(frames) >= 5)  # all three streams ticking

        calls = {"n": 0}

        def boom(tick_time, now):
            calls["n"] += 1
            raise RuntimeError("session bug")

        bad.session.tick_head = boom  # type: ignore[method-assign]
        a.send_audio(np.full(8000, 4000, dtype=np.int16))
        a.session.queue_dtmf(parse_sequence("42#"), "rfc4733")
        assert await _wait_for(lambda: len(got_b) >= 3)
        assert [(e.digit, e.method) for e in got_b] == [(d, "rfc4733") for d in "42#"]
        assert await _wait_for(lambda: sum(int(np.abs(f).max() > 3000) for f in frames) >= 10)
        loud = sum(int(np.abs(f).max() > 3000) for f in frames)
        assert loud >= 10, "the healthy call lost its audio"
        assert calls["n"] == 1, "the failed stream was ticked again"
        assert bad.closed and bad not in engine.streams
        assert bad.failed is not None and "RuntimeError: session bug" in bad.failed
        assert [type(e) for e in bad_events] == [MediaFailed]
        assert "session bug" in bad_events[0].reason  # type: ignore[attr-defined]
        assert not a.closed and not b.closed
        records = [r for r in caplog.records if "failed; closing it" in r.getMessage()]
        assert len(records) == 1 and records[0].exc_info is not None
        assert not any("media tick failed" in r.getMessage() for r in caplog.records)
    finally:
        await engine.close()
    assert engine.ports.in_use == 0


def test_tick_isolates_a_failure_in_each_phase():
    """Driven with a virtual clock: a session failing in playout or in finish_tick is closed, and
    the healthy session's packet still goes out in the same tick."""
    import socket

    async def main(phase: str) -> None:
        engine = MediaEngine("127.0.0.1", PortAllocator(22600, 22699))
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(2)
        try:
            good = await engine.open(SessionConfig(inband_detection=False))
            bad = await engine.open(SessionConfig(inband_detection=phase != "finish_tick"))
            good.set_remote(sink.getsockname())
            bad.set_remote(sink.getsockname())
            engine._task.cancel()  # type: ignore[union-attr]  # drive the clock by hand

            def boom(*args, **kwargs):
                raise ValueError(f"broken {phase}")

            setattr(bad.session, phase, boom)
            def drain() -> list[bytes]:
                got = []
                sink.settimeout(0.2)
                try:
                    while True:
                        got.append(sink.recvfrom(2048)[0])
                except TimeoutError:
                    return got

            def rtp_from(ssrc: int, got: list[bytes]) -> int:
                return sum(1 for d in got if len(d) == 172 and int.from_bytes(d[8:12], "big") == ssrc)

            drain()  # whatever the clock task sent before it was stopped
            now = max(good.session._next_tick, bad.session._next_tick)
            good.session._next_tick = bad.session._next_tick = now
            engine.tick(now)
            assert bad.closed and bad.failed is not None and phase in bad.failed
            assert rtp_from(good.session.ssrc, drain()) == 1
            engine.tick(now + 0.02)
            got = drain()
            assert rtp_from(good.session.ssrc, got) == 1 and rtp_from(bad.session.ssrc, got) == 0
        finally:
            sink.close()
            await engine.close()

    for phase in ("playout", "finish_tick", "tick_head"):
        asyncio.run(main(phase))
