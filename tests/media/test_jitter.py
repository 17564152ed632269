"""Jitter buffer: reordering, loss concealment, late and duplicate packets, re-basing."""

from __future__ import annotations

import random

import pytest

from roomtone.media.jitter import JitterBuffer

FRAME = 160  # 20 ms at 8 kHz


def feed_all(jb: JitterBuffer, arrivals: list[tuple[float, int]], until: float) -> list:
    """arrivals: (time, frame index). Pops every 20 ms like the media tick does."""
    out = []
    arrivals = sorted(arrivals)
    t = 0.0
    i = 0
    while t <= until:
        while i < len(arrivals) and arrivals[i][0] <= t:
            at, idx = arrivals[i]
            jb.push((1000 + idx * FRAME) & 0xFFFFFFFF, bytes([idx % 256]) * FRAME, at, FRAME, sequence=idx)
            i += 1
        out.extend(jb.pop(t))
        t = round(t + 0.005, 6)
    return out


def test_in_order_stream_comes_out_unchanged_after_the_delay():
    jb = JitterBuffer(delay=0.06)
    jb.push(1000, b"a" * FRAME, 0.0, FRAME)
    assert jb.pop(0.059) == []
    frames = jb.pop(0.06)
    assert [f.payload for f in frames] == [b"a" * FRAME]


def test_reordered_and_jittered_packets_play_in_order_without_loss():
    rng = random.Random(7)
    arrivals = [(i * 0.02 + rng.uniform(0, 0.04), i) for i in range(100)]
    out = feed_all(JitterBuffer(delay=0.06), arrivals, until=2.5)
    assert [f.sequence for f in out] == list(range(100))
    assert all(f.payload is not None for f in out)


def test_lost_packets_come_out_as_concealment_slots_keeping_position():
    arrivals = [(i * 0.02, i) for i in range(20) if i not in (5, 6, 12)]
    jb = JitterBuffer(delay=0.04)
    out = feed_all(jb, arrivals, until=1.0)
    assert len(out) == 20
    lost = [i for i, f in enumerate(out) if f.payload is None]
    assert lost == [5, 6, 12]
    assert [f.timestamp for f in out] == [1000 + i * FRAME for i in range(20)]
    assert jb.stats.lost == 3


def test_late_and_duplicate_packets_are_dropped_and_counted():
    jb = JitterBuffer(delay=0.02)
    jb.push(1000, b"x" * FRAME, 0.0, FRAME)
    jb.push(1000 + FRAME, b"y" * FRAME, 0.02, FRAME)
    jb.push(1000 + FRAME, b"y" * FRAME, 0.021, FRAME)
    assert jb.stats.duplicate == 1
    jb.push(1000 + 2 * FRAME, b"z" * FRAME, 0.04, FRAME)
    assert len(jb.pop(0.1)) == 3
    jb.push(1000 + FRAME, b"y" * FRAME, 0.1, FRAME)  # already played
    assert jb.stats.late == 1
    assert jb.pop(0.2) == []


def test_timestamp_wraparound_keeps_order():
    jb = JitterBuffer(delay=0.04)
    start = (1 << 32) - 2 * FRAME
    order = [0, 2, 1, 3, 4]
    for n, i in enumerate(order):
        jb.push((start + i * FRAME) & 0xFFFFFFFF, bytes([i]) * FRAME, n * 0.02, FRAME)
    out = jb.pop(1.0)
    assert [f.payload[0] for f in out if f.payload] == [0, 1, 2, 3, 4]


def test_timestamp_jump_rebases_instead_of_waiting_forever():
    jb = JitterBuffer(delay=0.04)
    jb.push(1000, b"a" * FRAME, 0.0, FRAME)
    assert len(jb.pop(0.1)) == 1
    jb.push(900_000, b"b" * FRAME, 5.0, FRAME)  # new talk spurt far ahead
    assert jb.stats.resyncs == 1
    assert [f.payload for f in jb.pop(5.04)] == [b"b" * FRAME]


def test_underrun_rebuilds_the_cushion():
    jb = JitterBuffer(delay=0.04)
    jb.push(1000, b"a" * FRAME, 0.0, FRAME)
    jb.pop(0.04)
    # the next frame was due at 0.06 but arrives at 0.3 into an empty buffer
    jb.push(1000 + FRAME, b"b" * FRAME, 0.3, FRAME)
    assert jb.pop(0.31) == []
    assert [f.payload for f in jb.pop(0.34)] == [b"b" * FRAME]


def test_a_sender_running_fast_is_trimmed_to_max_delay():
    jb = JitterBuffer(delay=0.04, max_delay=0.2)
    for i in range(100):  # 2 s of audio arriving at once
        jb.push(1000 + i * FRAME, b"a" * FRAME, 0.0, FRAME)
    assert jb.stats.overflow_dropped > 0
    assert len(jb) * 0.02 <= 0.2 + 0.04


def test_ssrc_change_restarts():
    jb = JitterBuffer(delay=0.02)
    jb.push(1000, b"a" * FRAME, 0.0, FRAME, ssrc=1)
    jb.push(77, b"b" * FRAME, 0.01, FRAME, ssrc=2)
    assert [f.payload for f in jb.pop(1.0)] == [b"b" * FRAME]


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError):
        JitterBuffer(delay=1.0, max_delay=0.5)


def test_delay_adapts_to_jitter_bigger_than_the_cushion():
    rng = random.Random(3)
    # 0-120 ms of jitter against a 20 ms cushion
    arrivals = [(i * 0.02 + rng.uniform(0, 0.12), i) for i in range(300)]
    fixed = JitterBuffer(delay=0.02, adaptive=False)
    adaptive = JitterBuffer(delay=0.02, max_delay=0.3)
    feed_all(fixed, arrivals, until=7.0)
    feed_all(adaptive, arrivals, until=7.0)
    assert adaptive.stats.delay_increases >= 2 and adaptive.delay > 0.02
    assert adaptive.stats.late < fixed.stats.late / 3
    assert adaptive.stats.played > fixed.stats.played


def test_overlapping_frames_of_uneven_lengths_never_make_negative_durations() -> None:
    # A peer's packet lengths need not match its timestamp steps: a 40 ms frame at 0 and a 20 ms
    # one at 160 overlap. The second starts inside played audio: dropped as late, not a frame of
    # length -160 (which crashed the session's playout with "negative dimensions").
    jb = JitterBuffer(clock_rate=8000, delay=0.0)
    jb.push(0, b"a" * 320, 0.0, 320, sequence=1, ssrc=7)
    jb.push(160, b"b" * 160, 0.0, 160, sequence=2, ssrc=7)
    jb.push(480, b"c" * 160, 0.0, 160, sequence=3, ssrc=7)
    out = jb.pop(1.0)
    assert [(f.timestamp, f.duration, f.payload is None) for f in out] == [(0, 320, False), (320, 160, True),
                                                                          (480, 160, False)]
    assert jb.stats.late == 1


def test_random_peer_streams_give_only_positive_contiguous_frames() -> None:
    # Whatever lengths, timestamps and orders a peer sends, playout moves forward: every frame has
    # a positive duration and starts where the previous one ended (until a re-base or a trim).
    rng = random.Random(4733)
    for _ in range(200):
        jb = JitterBuffer(clock_rate=8000, delay=rng.choice([0.0, 0.06]))
        ts, now = rng.getrandbits(32), 0.0
        restarts = (0, 0)
        expected: int | None = None
        for seq in range(150):
            now += rng.choice([0.0, 0.01, 0.02, 0.02, 0.3])
            ts = (ts + rng.choice([160, 160, 80, 0, -160, 320, 40000])) & 0xFFFFFFFF
            jb.push(ts, b"x", now, rng.choice([80, 160, 320, 1000]), sequence=seq, ssrc=1)
            frames = jb.pop(now)
            if (jb.stats.resyncs, jb.stats.overflow_dropped) != restarts:
                restarts, expected = (jb.stats.resyncs, jb.stats.overflow_dropped), None
            for f in frames:
                assert f.duration > 0
                assert expected is None or f.timestamp == expected
                expected = (f.timestamp + f.duration) & 0xFFFFFFFF
