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
