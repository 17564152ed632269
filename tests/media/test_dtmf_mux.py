"""Cross-method DTMF deduplication: one key press counted once, distinct presses kept."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from roomtone.media.dtmf_mux import DtmfDeduplicator, DtmfEvent


def test_rfc4733_then_inband_same_press_counts_once():
    d = DtmfDeduplicator()
    s = d.started(5, "rfc4733", 1.00)
    assert s is not None and s.digit == "5" and s.method == "rfc4733"
    assert d.started(5, "inband", 1.04) is None
    ev = d.ended(5, "rfc4733", 1.00, 0.16, volume=10)
    assert ev == DtmfEvent("5", 5, "rfc4733", 1.00, 0.16, 10)
    assert d.ended(5, "inband", 1.04, 0.14) is None
    assert d.merged == 1


def test_inband_ending_first_completes_the_press_named_by_the_first_method():
    d = DtmfDeduplicator()
    d.started(11, "rfc4733", 2.0)
    d.started(11, "inband", 2.03)
    ev = d.ended(11, "inband", 2.03, 0.12)
    assert ev is not None and ev.method == "rfc4733" and ev.digit == "#"
    assert d.ended(11, "rfc4733", 2.0, 0.16) is None


def test_same_digit_twice_by_two_methods_gives_two_presses():
    d = DtmfDeduplicator()
    events = []
    # "55": events at 0.00-0.16 and 0.28-0.44, tones slightly later
    for code, m, s, dur in [(5, "rfc4733", 0.0, 0.16), (5, "inband", 0.02, 0.15),
                            (5, "rfc4733", 0.28, 0.16), (5, "inband", 0.30, 0.15)]:
        d.started(code, m, s)
        ev = d.ended(code, m, s, dur)
        if ev:
            events.append(ev)
    assert [(e.digit, e.method) for e in events] == [("5", "rfc4733"), ("5", "rfc4733")]


def test_different_digits_at_the_same_time_are_not_merged():
    d = DtmfDeduplicator()
    a = d.ended(1, "rfc4733", 0.0, 0.1)
    b = d.ended(2, "inband", 0.0, 0.1)
    assert a is not None and b is not None


def test_info_without_start_report_merges_with_overlapping_event():
    d = DtmfDeduplicator()
    d.started(7, "rfc4733", 10.0)
    ev = d.ended(7, "info", 10.05, 0.1)  # INFO completes the press first...
    assert ev is not None and ev.method == "rfc4733" and ev.start == 10.0
    assert d.ended(7, "rfc4733", 10.0, 0.16) is None  # ...and the event's end is then a duplicate


def test_far_apart_presses_are_separate():
    d = DtmfDeduplicator()
    assert d.ended(3, "rfc4733", 0.0, 0.1) is not None
    assert d.ended(3, "inband", 1.0, 0.1) is not None


def test_json_line_shape():
    ev = DtmfEvent("A", 12, "info", 3.5, 0.25)
    obj = json.loads(ev.to_json("abc@h", at=1700000000.5))
    assert obj == {"digit": "A", "code": 12, "method": "info", "duration_ms": 250,
                   "call_id": "abc@h", "at": 1700000000.5}


presses = st.lists(st.tuples(st.integers(0, 16), st.floats(0.04, 0.5)), min_size=1, max_size=12)


@given(presses, st.floats(0, 0.06), st.booleans())
def test_every_press_sent_by_two_methods_is_reported_exactly_once_in_order(seq, skew, inband_first):
    """Presses separated by gaps of 120 ms or more, each reported by both methods with skew."""
    d = DtmfDeduplicator()
    t = 0.0
    out = []
    for code, dur in seq:
        reports = [("rfc4733", t, dur), ("inband", t + skew, max(0.04, dur - skew))]
        if inband_first:
            reports.reverse()
        for m, s, _du in reports:
            d.started(code, m, s)
        for m, s, du in reports:
            ev = d.ended(code, m, s, du)
            if ev is not None:
                out.append(ev.code)
        t += dur + 0.12 + 0.2 * (code % 2) + 0.16  # the gap leaves room for the tolerance
    assert out == [c for c, _ in seq]
