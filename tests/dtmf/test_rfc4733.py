"""RFC 4733 codec, Sender and Receiver: behaviour case by case."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomtone.dtmf.digits import DtmfError, Pause, Tone
from roomtone.dtmf.rfc4733 import (
    MAX_DURATION,
    Anomaly,
    DigitEnded,
    DigitStarted,
    EventError,
    EventPacket,
    Receiver,
    Sender,
    SenderConfig,
    TelephoneEvent,
    parse_event,
)
from roomtone.media.rtp import RtpPacket, ts_add, ts_diff

# --- codec -----------------------------------------------------------------------------------

events = st.builds(TelephoneEvent, event=st.integers(0, 255), end=st.booleans(), volume=st.integers(0, 63),
                   duration=st.integers(0, 0xFFFF), reserved=st.booleans())


@given(events)
def test_payload_round_trip(ev: TelephoneEvent) -> None:
    wire = ev.serialize()
    assert len(wire) == 4
    assert parse_event(wire) == ev


@given(st.binary(max_size=12))
def test_payload_garbage_is_an_error_value(data: bytes) -> None:
    result = parse_event(data)
    if len(data) == 4:
        assert isinstance(result, TelephoneEvent)
    else:
        assert isinstance(result, EventError) and "expected 4" in result.reason


def test_payload_known_bytes() -> None:
    # '#' (11), end bit, volume 10, duration 1280: the bytes every RFC 4733 trace shows
    assert TelephoneEvent(11, True, 10, 1280).serialize() == bytes([11, 0x8A, 0x05, 0x00])
    ev = parse_event(bytes([5, 0x4A, 0x00, 0xA0]))
    assert isinstance(ev, TelephoneEvent)
    assert (ev.event, ev.end, ev.reserved, ev.volume, ev.duration, ev.digit) == (5, False, True, 10, 160, "5")


@pytest.mark.parametrize("bad", [TelephoneEvent(256), TelephoneEvent(1, volume=64), TelephoneEvent(1, duration=70000),
                                 TelephoneEvent(1, volume=-1)])
def test_serialize_rejects_out_of_range(bad: TelephoneEvent) -> None:
    with pytest.raises(ValueError):
        bad.serialize()


# --- sender ----------------------------------------------------------------------------------


def drain(sender: Sender, start: float = 0.0, step: float | None = None) -> list[EventPacket]:
    """Poll at every deadline (or every ``step`` seconds) until idle."""
    out: list[EventPacket] = []
    now = start
    while (deadline := sender.next_deadline()) is not None:
        now = max(now, deadline) if step is None else now + step
        out += sender.poll(now)
    return out


def test_sender_default_digit() -> None:
    sender = Sender()
    handle = sender.enqueue("5")
    pkts = drain(sender, 10.0)
    assert handle.done and not handle.cancelled and handle.tones_sent == 1
    assert [p.marker for p in pkts] == [True] + [False] * 9
    assert {p.timestamp for p in pkts} == {0}
    assert [p.event.duration for p in pkts] == [160 * k for k in range(1, 8)] + [1280] * 3
    assert [p.event.end for p in pkts] == [False] * 7 + [True] * 3
    assert {p.event.volume for p in pkts} == {10} and {p.event.event for p in pkts} == {5}
    assert [round(p.send_at - 10.0, 3) for p in pkts] == [round(0.02 * k, 3) for k in range(10)]
    assert handle.finished_at == pytest.approx(10.18)
    assert all(parse_event(p.payload) == p.event for p in pkts)


def test_sender_sequence_gap_and_pause() -> None:
    sender = Sender()
    handle = sender.enqueue("12w3")
    pkts = drain(sender)
    starts = [(p.event.event, round(p.send_at, 3), p.timestamp) for p in pkts if p.marker]
    # tone 160 ms + gap 120 ms; 'w' adds 0.5 s
    assert starts == [(1, 0.0, 0), (2, 0.28, 2240), (3, 1.06, 8480)]
    assert handle.done and handle.tones_sent == 3


def test_sender_trailing_pause_completes_after_the_pause() -> None:
    sender = Sender()
    handle = sender.enqueue([Tone(1), Pause(1.0)])
    drain(sender)
    assert handle.done and handle.finished_at == pytest.approx(0.28 + 1.0)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_sender_clock_rates(rate: int) -> None:
    sender = Sender(SenderConfig(clock_rate=rate))
    pkts = drain(_enq(sender, "#"))
    per_packet = rate // 50
    assert pkts[0].event.duration == per_packet
    assert pkts[-1].event.duration == rate * 160 // 1000
    assert sum(p.event.end for p in pkts) == 3


def _enq(sender: Sender, digits: str) -> Sender:
    sender.enqueue(digits)
    return sender


def test_sender_configurable() -> None:
    cfg = SenderConfig(tone_ms=100, gap_ms=50, volume=20, packet_ms=10, end_repeats=5)
    sender = Sender(cfg)
    pkts = drain(_enq(sender, "12"))
    first = [p for p in pkts if p.event.event == 1]
    assert sum(p.event.end for p in first) == 5
    assert first[-1].event.duration == 800 and first[0].event.duration == 80
    assert {p.event.volume for p in pkts} == {20}
    second = next(p for p in pkts if p.event.event == 2)
    # end repeats at 90..130 ms, next start = max(100 + 50, 130 + 10) ms
    assert second.send_at == pytest.approx(0.15)
    assert Sender().enqueue("1", tone_ms=400, volume=3)
    with pytest.raises(ValueError):
        Sender(SenderConfig(clock_rate=44100))
    with pytest.raises(ValueError):
        Sender(SenderConfig(packet_ms=0))


def test_sender_rejects_bad_digits_without_queueing() -> None:
    sender = Sender()
    with pytest.raises(DtmfError, match="'x'"):
        sender.enqueue("12x")
    with pytest.raises(DtmfError):
        sender.enqueue(17)
    with pytest.raises(ValueError):
        sender.enqueue("1", volume=64)
    assert sender.pending == 0 and sender.next_deadline() is None


@pytest.mark.parametrize("rate", [8000, 48000])
def test_sender_long_event_segments(rate: int) -> None:
    """RFC 4733 §2.5.1.3: a 20 s (8 kHz) or 3 s (48 kHz) tone exceeds 0xFFFF samples."""
    seconds = 20 if rate == 8000 else 3
    sender = Sender(SenderConfig(clock_rate=rate), timestamp_origin=0xFFFF0000)  # wraps, too
    sender.enqueue("0", tone_ms=seconds * 1000)
    pkts = drain(sender)
    stamps = sorted({p.timestamp for p in pkts}, key=lambda t: ts_diff(t, 0xFFFF0000))
    assert len(stamps) > 1
    seg = (MAX_DURATION // (rate // 50)) * (rate // 50)
    assert [ts_diff(t, 0xFFFF0000) for t in stamps] == [seg * i for i in range(len(stamps))]
    assert sum(p.marker for p in pkts) == 1 and pkts[0].marker
    assert all(p.event.duration <= MAX_DURATION for p in pkts)
    # the last packet of each completed segment reports the whole segment
    for t in stamps[:-1]:
        assert max(p.event.duration for p in pkts if p.timestamp == t) == seg
    assert (len(stamps) - 1) * seg + pkts[-1].event.duration == seconds * rate


def test_sender_late_poll_skips_stale_updates_but_keeps_marker_and_ends() -> None:
    sender = Sender()
    sender.enqueue("7")
    sender.poll(0.0)  # marker packet
    pkts = sender.poll(0.5)  # the event loop stalled
    assert [p.event.duration for p in pkts if not p.event.end] == [1120]
    assert sum(p.event.end for p in pkts) == 3


def test_sender_sync_shares_the_audio_timeline() -> None:
    sender = Sender()
    sender.sync(100.0, 0xFFFFFF00)  # audio timestamp at t=100 s
    sender.enqueue("9")
    pkts = drain(sender, 100.5)
    assert pkts[0].timestamp == ts_add(0xFFFFFF00, 4000)


def test_sender_cancel_cuts_the_tone_short_and_sends_ends() -> None:
    sender = Sender()
    h1 = sender.enqueue("12")
    h2 = sender.enqueue("3")
    done: list[object] = []
    h1.add_done_callback(done.append)
    sender.poll(0.0)
    sender.poll(0.02)
    sender.cancel(h1, now=0.03)
    assert h1.cancelled and not h1.done and done == [h1]
    pkts = sender.poll(0.03) + drain(sender, 0.03)
    ones = [(p.event.end, p.event.duration) for p in pkts if p.event.event == 1]
    assert ones == [(True, 320)] * 3  # the cut tone still ends properly
    assert {p.event.event for p in pkts} == {1, 3} and h2.done


def test_sender_cancelled_pause_does_not_delay_the_next_sequence() -> None:
    sender = Sender()
    h1 = sender.enqueue("1W")
    h2 = sender.enqueue("2")
    pkts = []
    now = 0.0
    while (deadline := sender.next_deadline()) is not None:
        now = max(now, deadline)
        pkts += sender.poll(now)
        if h1.tones_sent == 1 and not h1.finished:
            sender.cancel(h1, now=now)
    assert h1.cancelled and h2.done
    assert next(p for p in pkts if p.event.event == 2).send_at == pytest.approx(0.28)


def test_sender_cancel_all_before_start_sends_nothing() -> None:
    sender = Sender()
    handles = [sender.enqueue("1"), sender.enqueue("2")]
    sender.cancel()
    assert all(h.cancelled for h in handles)
    assert drain(sender) == [] and sender.next_deadline() is None


def test_sender_enqueue_while_busy_queues_after_gap() -> None:
    sender = Sender()
    sender.enqueue("1")
    sender.poll(0.0)
    h = sender.enqueue("2")
    pkts = drain(sender)
    assert next(p for p in pkts if p.event.event == 2).send_at == pytest.approx(0.28)
    assert h.done


def test_sender_idle_start_uses_now_not_a_stale_schedule() -> None:
    sender = Sender()
    drain(_enq(sender, "1"))
    sender.enqueue("2")
    pkts = drain(sender, 50.0)
    assert pkts[0].send_at == 50.0 and pkts[0].timestamp == 400000


# --- receiver --------------------------------------------------------------------------------


def feed(rx: Receiver, pkts: list[EventPacket], ssrc: int = 0x1111, t0: float = 0.0,
         seq0: int = 0) -> list:
    out: list = []
    for i, p in enumerate(pkts):
        out += rx.receive(t0 + p.send_at, ssrc=ssrc, timestamp=p.timestamp, payload=p.payload,
                          marker=p.marker, sequence=(seq0 + i) & 0xFFFF)
    return out


def digits(events: list) -> list[tuple[str, str]]:
    return [("start" if isinstance(e, DigitStarted) else "end", e.digit) for e in events
            if isinstance(e, DigitStarted | DigitEnded)]


def packets_for(text: str, **cfg: int) -> list[EventPacket]:
    return drain(_enq(Sender(SenderConfig(**cfg)), text))


def test_receiver_clean_stream() -> None:
    rx = Receiver()
    out = feed(rx, packets_for("1#"))
    assert digits(out) == [("start", "1"), ("end", "1"), ("start", "#"), ("end", "#")]
    ends = [e for e in out if isinstance(e, DigitEnded)]
    assert [(e.duration, e.seconds, e.volume, e.reason) for e in ends] == [(1280, 0.16, 10, "end")] * 2
    assert not [e for e in out if isinstance(e, Anomaly)]


def test_receiver_missing_marker_and_lost_start() -> None:
    pkts = packets_for("4")
    rx = Receiver()
    out = feed(rx, pkts[2:])  # start and first update lost
    assert digits(out) == [("start", "4"), ("end", "4")]
    assert [a.kind for a in out if isinstance(a, Anomaly)] == ["no_marker"]
    rx2 = Receiver()
    unmarked = [EventPacket(p.payload, False, p.timestamp, p.event, p.send_at, p.handle) for p in pkts]
    assert digits(feed(rx2, unmarked)) == [("start", "4"), ("end", "4")]


def test_receiver_all_end_packets_lost_times_out() -> None:
    pkts = [p for p in packets_for("8") if not p.event.end]
    rx = Receiver(end_timeout=0.3)
    out = feed(rx, pkts)
    assert digits(out) == [("start", "8")]
    deadline = rx.next_deadline()
    assert deadline == pytest.approx(pkts[-1].send_at + 0.3)
    assert rx.poll(deadline - 0.01) == []
    late = rx.poll(deadline)
    ended = [e for e in late if isinstance(e, DigitEnded)]
    assert len(ended) == 1 and ended[0].reason == "timeout" and ended[0].duration == 1120
    assert any(isinstance(a, Anomaly) and a.kind == "missing_end" for a in late)
    assert rx.next_deadline() is None and rx.poll(99.0) == []


def test_receiver_lost_ends_then_next_digit_supersedes() -> None:
    first = [p for p in packets_for("5") if not p.event.end]
    second = drain(_enq(Sender(timestamp_origin=2240), "5"), 0.28)
    rx = Receiver()
    out = feed(rx, first + second)
    assert digits(out) == [("start", "5"), ("end", "5"), ("start", "5"), ("end", "5")]
    assert [e.reason for e in out if isinstance(e, DigitEnded)] == ["superseded", "end"]


def test_receiver_duplicated_and_reordered_packets() -> None:
    pkts = packets_for("69")
    shuffled = pkts[:3] + [pkts[4], pkts[3]] + pkts[5:9] + pkts[3:6] + pkts[9:] + pkts[7:10]
    out = feed(Receiver(), shuffled)
    assert digits(out) == [("start", "6"), ("end", "6"), ("start", "9"), ("end", "9")]


def test_receiver_late_end_of_earlier_digit_after_new_digit_began() -> None:
    pkts = packets_for("12")
    one = [p for p in pkts if p.event.event == 1]
    two = [p for p in pkts if p.event.event == 2]
    order = one[:7] + two[:3] + one[7:] + two[3:]  # all of 1's end packets arrive late
    out = feed(Receiver(), order)
    assert digits(out) == [("start", "1"), ("end", "1"), ("start", "2"), ("end", "2")]


def test_receiver_timestamp_reuse_with_another_code() -> None:
    """Some gateways start the next digit on the previous digit's timestamp."""
    first = packets_for("3")
    second = [EventPacket(p.payload, p.marker, first[0].timestamp, p.event, p.send_at + 0.3, p.handle)
              for p in packets_for("7")]
    out = feed(Receiver(), first + second)
    assert digits(out) == [("start", "3"), ("end", "3"), ("start", "7"), ("end", "7")]
    assert any(isinstance(a, Anomaly) and a.kind == "timestamp_reuse" for a in out)


def test_receiver_timestamp_reuse_same_code_with_marker_and_newer_sequence() -> None:
    first = packets_for("3")
    again = [EventPacket(p.payload, p.marker, p.timestamp, p.event, p.send_at + 0.3, p.handle) for p in first]
    out = feed(Receiver(), first + again)
    assert digits(out) == [("start", "3"), ("end", "3")] * 2


@pytest.mark.parametrize("rate", [8000, 48000])
def test_receiver_long_event_segments_are_one_digit(rate: int) -> None:
    sender = Sender(SenderConfig(clock_rate=rate), timestamp_origin=0xFFFFF000)
    sender.enqueue("0", tone_ms=20000 if rate == 8000 else 3000)
    pkts = drain(sender)
    # lose the first packet of the second segment, too
    seg_starts = [i for i in range(1, len(pkts)) if pkts[i].timestamp != pkts[i - 1].timestamp]
    del pkts[seg_starts[0]]
    out = feed(Receiver(rate), pkts)
    assert digits(out) == [("start", "0"), ("end", "0")]
    end = next(e for e in out if isinstance(e, DigitEnded))
    assert end.duration == (20 if rate == 8000 else 3) * rate and end.timestamp == 0xFFFFF000


def test_receiver_timestamp_wraps() -> None:
    sender = Sender(timestamp_origin=0xFFFFFFFF - 3000)
    sender.enqueue("1234")
    pkts = drain(sender)
    assert len({p.timestamp for p in pkts}) == 4 and min(p.timestamp for p in pkts) < 10000
    assert digits(feed(Receiver(), pkts)) == [(k, d) for d in "1234" for k in ("start", "end")]


def test_receiver_ssrc_change_mid_call() -> None:
    """A new SSRC may reuse the old one's timestamps; its digits still count, once."""
    first = [p for p in packets_for("1") if not p.event.end]
    rx = Receiver()
    out = feed(rx, first, ssrc=1)
    out += feed(rx, packets_for("1"), ssrc=2, t0=0.2, seq0=500)
    assert digits(out) == [("start", "1"), ("end", "1"), ("start", "1"), ("end", "1")]
    assert [e.reason for e in out if isinstance(e, DigitEnded)] == ["ssrc_change", "end"]
    assert [e.ssrc for e in out if isinstance(e, DigitStarted)] == [1, 2]


def test_receiver_late_unseen_event_is_reported_not_dropped() -> None:
    pkts = packets_for("12")
    one = [p for p in pkts if p.event.event == 1]
    two = [p for p in pkts if p.event.event == 2]
    out = feed(Receiver(), two[:5] + one[-1:] + two[5:])
    assert digits(out) == [("start", "2"), ("start", "1"), ("end", "1"), ("end", "2")]
    late = [e for e in out if isinstance(e, DigitStarted) and e.late]
    assert [e.digit for e in late] == ["1"]


def test_receiver_bad_and_non_dtmf_payloads_are_anomalies() -> None:
    rx = Receiver()
    out = rx.receive(0.0, ssrc=1, timestamp=0, payload=b"\x01\x02", marker=True)
    assert [a.kind for a in out] == ["bad_payload"]
    out = rx.receive(0.0, ssrc=1, timestamp=0, payload=TelephoneEvent(32).serialize(), marker=True)
    assert [a.kind for a in out] == ["non_dtmf_event"]
    assert rx.next_deadline() is None


def test_receiver_reports_volume_and_rtp_packets() -> None:
    rx = Receiver()
    pkts = packets_for("D", volume=33)
    out = []
    for i, p in enumerate(pkts):
        rtp = RtpPacket(payload_type=101, sequence=i, timestamp=p.timestamp, ssrc=9, payload=p.payload,
                        marker=p.marker)
        out += rx.receive_rtp(p.send_at, rtp)
    started = next(e for e in out if isinstance(e, DigitStarted))
    ended = next(e for e in out if isinstance(e, DigitEnded))
    assert (started.digit, started.volume, ended.volume, ended.end_packets) == ("D", 33, 33, 1)


def test_receiver_flush_ends_open_events() -> None:
    rx = Receiver()
    feed(rx, packets_for("9")[:3])
    out = rx.flush(1.0)
    assert digits(out) == [("end", "9")]


def test_receiver_poll_at_its_own_deadline_always_fires() -> None:
    """Regression: with float rounding, now - last >= timeout can be false at last + timeout."""
    at = next(x / 1000 for x in range(1, 100000) if (x / 1000 + 0.3) - x / 1000 < 0.3)
    rx = Receiver(end_timeout=0.3)
    rx.receive(at, ssrc=1, timestamp=0, payload=TelephoneEvent(1, duration=160).serialize(), marker=True)
    deadline = rx.next_deadline()
    assert deadline is not None
    assert digits(rx.poll(deadline)) == [("end", "1")]
    assert rx.next_deadline() is None


packet_streams = st.lists(
    st.tuples(
        st.floats(0, 0.5),  # time step
        st.sampled_from([1, 2]),  # ssrc
        st.sampled_from([0, 160, 1280, 0xFFA0, 0xFFFFFF00, 0x7FFFFFFF]),  # timestamp
        st.binary(min_size=4, max_size=4) | st.binary(max_size=6),
        st.booleans(),
        st.integers(0, 0xFFFF),
    ),
    max_size=60,
)


@given(packet_streams)
def test_receiver_any_input_balanced_and_never_raises(stream: list) -> None:
    """Whatever arrives, every started digit is ended exactly once (after a flush), never twice."""
    rx = Receiver()
    now = 0.0
    events: list = []
    for step, ssrc, ts, payload, marker, seq in stream:
        now += step
        events += rx.poll(now)
        events += rx.receive(now, ssrc=ssrc, timestamp=ts, payload=payload, marker=marker, sequence=seq)
    events += rx.flush(now + 1)
    started = [(e.ssrc, e.timestamp, e.code) for e in events if isinstance(e, DigitStarted)]
    ended = [(e.ssrc, e.timestamp, e.code) for e in events if isinstance(e, DigitEnded)]
    assert sorted(started) == sorted(ended)
    open_keys: set = set()
    for e in events:
        key = (e.ssrc, e.timestamp, getattr(e, "code", None))
        if isinstance(e, DigitStarted):
            assert key not in open_keys
            open_keys.add(key)
        elif isinstance(e, DigitEnded):
            assert key in open_keys
            open_keys.remove(key)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
@pytest.mark.parametrize("gap_samples", [0xF000 - 1, 0xF000, 0xF800, 0xFFFF, 0x10000])
def test_receiver_same_key_again_after_a_long_pause_is_a_new_digit(rate: int, gap_samples: int) -> None:
    """Regression (found by benchmarks/bridge_sdk.py at 100 calls: 35 of 1,000 digits lost): the
    same key pressed again 0xF000-0xFFFF samples after an earlier press (7.7-8.2 s at 8 kHz) was
    absorbed as a segment of that earlier, finished press."""
    first = drain(_enq(Sender(SenderConfig(clock_rate=rate), timestamp_origin=1000), "7"))
    again = drain(_enq(Sender(SenderConfig(clock_rate=rate), timestamp_origin=1000 + gap_samples), "7"))
    seconds = gap_samples / rate
    rx = Receiver(rate)
    out = feed(rx, first) + feed(rx, again, t0=seconds, seq0=len(first))
    assert digits(out) == [("start", "7"), ("end", "7")] * 2


def test_receiver_long_press_outage_across_a_segment_boundary_is_one_digit() -> None:
    """The case the absorb rule exists for: packets stop for longer than end_timeout in the
    middle of a long press, the event ends by timeout, and the press's next segment (no marker)
    arrives: it must not count as a second digit."""
    sender = Sender(SenderConfig(clock_rate=8000), timestamp_origin=500)
    sender.enqueue("4", tone_ms=12000)
    pkts = drain(sender)
    boundary = next(i for i in range(1, len(pkts)) if pkts[i].timestamp != pkts[i - 1].timestamp)
    t_boundary = pkts[boundary].send_at
    kept = [p for p in pkts if not t_boundary - 0.6 <= p.send_at < t_boundary + 0.2]
    assert not kept[len(kept) // 2].marker
    rx = Receiver(8000, end_timeout=0.3)
    out: list = []
    for i, p in enumerate(kept):
        out += rx.poll(p.send_at)
        out += rx.receive(p.send_at, ssrc=7, timestamp=p.timestamp, payload=p.payload, marker=p.marker, sequence=i)
    assert [d for d in digits(out) if d[0] == "start"] == [("start", "4")]


@given(st.sampled_from("0123456789*#ABCD"), st.sampled_from("0123456789*#ABCD"),
       st.integers(min_value=2000, max_value=10 * 8000 - 1), st.integers(min_value=0, max_value=2**32 - 1))
def test_receiver_two_whole_presses_are_two_digits(first: str, second: str, gap: int, origin: int) -> None:
    """Any two complete key presses (start with marker, updates, end packets), the second
    starting any time within 10 s after the first ended, are two digits, whatever the keys."""
    one = drain(_enq(Sender(timestamp_origin=origin), first))
    start = ts_add(origin, gap)
    two = drain(_enq(Sender(timestamp_origin=start), second))
    rx = Receiver()
    out = feed(rx, one) + feed(rx, two, t0=gap / 8000, seq0=len(one))
    assert digits(out) == [("start", first), ("end", first), ("start", second), ("end", second)]


@given(st.sampled_from([8000, 16000, 48000]), st.integers(min_value=0, max_value=2**32 - 1),
       st.lists(st.tuples(st.sampled_from("0123456789*#ABCD"), st.floats(min_value=0.25, max_value=120.0)),
                min_size=2, max_size=6))
def test_receiver_whole_presses_are_each_one_digit(rate: int, origin: int, presses: list[tuple[str, float]]) -> None:
    """Complete key presses (start with marker, updates, end packets) on one stream, each
    starting 0.25-120 s after the one before, are each exactly one digit, whatever the keys,
    the clock rate and where the timestamps start (they may wrap)."""
    rx = Receiver(rate)
    out: list = []
    at, seq = 0.0, 0
    ts = origin
    for key, gap in presses:
        pkts = drain(_enq(Sender(SenderConfig(clock_rate=rate), timestamp_origin=ts), key))
        out += feed(rx, pkts, t0=at, seq0=seq)
        seq += len(pkts)
        at += gap
        ts = ts_add(ts, round(gap * rate))
    assert digits(out) == [(kind, key) for key, _ in presses for kind in ("start", "end")]
