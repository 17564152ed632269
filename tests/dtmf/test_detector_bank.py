"""The batched bank gives exactly the per-channel detector's events, however the audio is framed.

Signals are random mixtures of DTMF sequences (random levels, twist, deviation), noise, and
G.711 round trips, so that digits start, end, break and change in every channel at different
times; frames are random lengths per channel (odd ones included) and per tick."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from roomtone.dtmf.detector import DtmfDetector, DtmfDetectorBank, DtmfEvent
from roomtone.dtmf.tones import ToneGenerator
from roomtone.media import g711

KEYS = list("0123456789*#ABCD")


def signal(seed: int, seconds: float = 1.5, rate: int = 8000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gen = ToneGenerator(sample_rate=rate, low_dbm0=float(rng.uniform(-40, -3)),
                        high_dbm0=float(rng.uniform(-40, -3)),
                        deviation=(float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03))))
    parts = []
    total = 0
    while total < seconds * rate:
        if rng.random() < 0.6:
            p = gen.tone(str(rng.choice(KEYS)), float(rng.uniform(0.015, 0.12)))
        else:
            p = gen.silence(float(rng.uniform(0.003, 0.08)))
        parts.append(p)
        total += len(p)
    x = np.concatenate(parts)[: int(seconds * rate)].astype(float)
    x += rng.standard_normal(len(x)) * float(rng.choice([0.0, 30.0, 300.0, 3000.0]))
    y = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    codec = rng.choice(["none", "ulaw", "alaw"])
    return y if codec == "none" else g711.roundtrip(y, str(codec))


def single(x: np.ndarray, rate: int, sizes: list[int]) -> list[DtmfEvent]:
    det = DtmfDetector(rate)
    out: list[DtmfEvent] = []
    pos = 0
    i = 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        out += det.feed(x[pos:pos + n])
        pos += n
        i += 1
    return out + det.flush()


def by_channel(events: list[DtmfEvent], ch: int) -> list[tuple]:
    return [(e.kind, e.digit, e.start, e.end, e.emitted_at) for e in events if e.channel == ch]


def test_uniform_ticks_match_single_channels() -> None:
    channels = 24
    xs = np.stack([signal(100 + c) for c in range(channels)])
    bank = DtmfDetectorBank(channels)
    events: list[DtmfEvent] = []
    for k in range(0, xs.shape[1], 160):
        events += bank.feed(xs[:, k:k + 160])
    events += bank.flush()
    assert len(events) > 40  # the signals really do contain digits
    for c in range(channels):
        assert by_channel(events, c) == by_channel(single(xs[c], 8000, [xs.shape[1]]), 0), c


@settings(max_examples=25, deadline=None)
@given(
    seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=6),
    rate=st.sampled_from([8000, 16000]),
    frame_seed=st.integers(0, 10_000),
)
def test_ragged_frames_match_single_channels(seeds: list[int], rate: int, frame_seed: int) -> None:
    xs = [signal(s, 0.8, rate) for s in seeds]
    rng = np.random.default_rng(frame_seed)
    bank = DtmfDetectorBank(len(xs), rate)
    pos = [0] * len(xs)
    events: list[DtmfEvent] = []
    while any(p < len(x) for p, x in zip(pos, xs, strict=True)):
        frames = []
        for c, x in enumerate(xs):
            n = int(rng.integers(0, 500))  # odd lengths, empty frames, partial sub-blocks
            frames.append(x[pos[c]:pos[c] + n] if rng.random() > 0.1 else None)
            pos[c] += n if frames[-1] is not None else 0
        events += bank.feed(frames)
    events += bank.flush()
    for c, x in enumerate(xs):
        sizes = [int(v) for v in np.random.default_rng(c).integers(1, 700, 20)]
        assert by_channel(events, c) == by_channel(single(x, rate, sizes), 0), c


def test_uniform_and_ragged_paths_mix() -> None:
    xs = np.stack([signal(7 + c) for c in range(5)])
    bank = DtmfDetectorBank(5)
    events: list[DtmfEvent] = []
    pos = 0
    rng = np.random.default_rng(9)
    while pos < xs.shape[1]:
        n = int(rng.choice([160, 40, 13, 320, 1]))
        events += bank.feed(xs[:, pos:pos + n])
        pos += n
    events += bank.flush()
    for c in range(5):
        assert by_channel(events, c) == by_channel(single(xs[c], 8000, [333]), 0)


def test_reset_channels_starts_a_slot_afresh() -> None:
    xs = np.stack([signal(40 + c) for c in range(3)])
    bank = DtmfDetectorBank(3)
    half = xs.shape[1] // 2 + 77  # mid-digit somewhere, and mid sub-block
    before = bank.feed(xs[:, :half])
    bank.reset_channels([1])
    tones, _ = ToneGenerator().sequence("47#", 0.06, 0.06)
    fresh = np.zeros(xs.shape[1] - half, dtype=np.int16)
    fresh[300:300 + len(tones)] = tones
    after = bank.feed(np.stack([xs[0, half:], fresh, xs[2, half:]])) + bank.flush()
    events = before + after
    # untouched channels: as if nothing happened
    for c in (0, 2):
        assert by_channel(events, c) == by_channel(single(xs[c], 8000, [xs.shape[1]]), 0)
    # the reset channel: exactly a new detector fed only the new call's audio
    assert by_channel(after, 1) == by_channel(single(fresh, 8000, [len(fresh)]), 0)
    assert len(by_channel(after, 1)) > 0


def test_empty_ticks_change_nothing() -> None:
    # an empty (channels, 0) block, fed mid-digit (when the old bank raised IndexError) and at
    # the start, leaves the events exactly as without it; so does an empty frame to one channel
    xs = np.stack([signal(seed) for seed in (107, 3, 111, 50)])  # 107 and 111 hold many digits
    bank = DtmfDetectorBank(4)
    events: list[DtmfEvent] = bank.feed(np.zeros((4, 0), dtype=np.int16))
    for k in range(0, xs.shape[1], 160):
        events += bank.feed(xs[:, k:k + 160])
        events += bank.feed(xs[:, :0])
    events += bank.flush()
    assert len(events) > 4
    for c in range(4):
        assert by_channel(events, c) == by_channel(single(xs[c], 8000, [xs.shape[1]]), 0)
    det = DtmfDetector()
    tones, _ = ToneGenerator().sequence("5", 0.08, 0.0)
    got = det.feed(tones[:400]) + det.feed(np.zeros(0, dtype=np.int16)) + det.feed(b"") + det.feed(tones[400:])
    got += det.flush()
    assert [(e.kind, e.digit) for e in got] == [("started", "5"), ("ended", "5")]


def test_feed_blocks_gives_feed_s_events_for_whole_sub_blocks() -> None:
    channels = 6
    xs = np.stack([signal(300 + c) for c in range(channels)])
    via_feed, via_blocks = DtmfDetectorBank(channels), DtmfDetectorBank(channels)
    s = via_blocks.block
    rng = np.random.default_rng(7)
    pos = np.zeros(channels, dtype=np.int64)
    a: list[DtmfEvent] = []
    b: list[DtmfEvent] = []
    while (pos < xs.shape[1]).any():
        # uneven whole sub-blocks per channel this tick (0-4 of them), as after a late tick
        counts = np.minimum(rng.integers(0, 5, channels), (xs.shape[1] - pos) // s)
        a += via_feed.feed([xs[c, pos[c]:pos[c] + counts[c] * s] for c in range(channels)])
        blocks = np.zeros((channels, int(counts.max()) if counts.max() else 1, s), dtype=np.int16)
        for c in range(channels):
            blocks[c, :counts[c]] = xs[c, pos[c]:pos[c] + counts[c] * s].reshape(-1, s)
        b += via_blocks.feed_blocks(blocks, counts.astype(np.int64))
        pos += counts * s
    assert len(a) > 5 and by_channel(a, 0) == by_channel(b, 0)
    assert sorted(map(repr, a)) == sorted(map(repr, b))


def test_feed_blocks_refuses_while_a_partial_sub_block_is_pending() -> None:
    import pytest

    bank = DtmfDetectorBank(2)
    bank.feed([np.zeros(bank.block + 3, dtype=np.int16), None])
    assert bank.pending
    with pytest.raises(ValueError, match="partial sub-block"):
        bank.feed_blocks(np.zeros((2, 1, bank.block), dtype=np.int16), np.array([1, 1]))
