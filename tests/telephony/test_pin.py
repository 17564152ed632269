"""The PIN entry state machine, driven with a virtual clock."""

from __future__ import annotations

from roomtone.telephony.pin import Fail, PinConfig, PinEntry, PinState, Play, Submit


def entry(**kw) -> PinEntry:  # type: ignore[no-untyped-def]
    return PinEntry(PinConfig(**kw))


def press(p: PinEntry, keys: str, now: float = 0.0) -> list:  # type: ignore[type-arg]
    out = []
    for k in keys:
        out += p.digit(k, now)
    return out


def test_hash_submits_and_accepts() -> None:
    p = entry()
    assert p.start(0.0) == [Play("enter_pin")]
    assert press(p, "12") == []
    assert press(p, "34#") == [Submit("1234")]
    assert p.state is PinState.CHECKING
    assert press(p, "9") == []  # ignored while checking
    assert p.verdict(True, 1.0) == [Play("room_join")]
    assert p.state is PinState.ACCEPTED


def test_star_clears_and_letters_are_ignored() -> None:
    p = entry()
    p.start(0)
    assert press(p, "99*") == [Play("pin_cleared")]
    assert press(p, "1A2R#") == [Submit("12")]


def test_empty_hash_means_no_pin() -> None:
    p = entry()
    p.start(0)
    assert press(p, "#") == [Submit("", no_pin=True)]


def test_wrong_pin_retries_then_fails() -> None:
    p = entry(retries=1)
    p.start(0)
    press(p, "1#")
    assert p.verdict(False, 1) == [Play("wrong_pin"), Play("enter_pin")]
    assert p.state is PinState.ENTERING
    assert press(p, "2#") == [Submit("2")]
    assert p.verdict(False, 2) == [Play("wrong_pin"), Fail("wrong-pin")]
    assert p.state is PinState.FAILED
    assert press(p, "3#") == []


def test_inter_digit_timeout_submits_typed_digits() -> None:
    p = entry(inter_digit_timeout=3, overall_timeout=100)
    p.start(0)
    press(p, "55", now=1)
    assert p.next_deadline() == 4
    assert p.poll(3.9) == []
    assert p.poll(4.0) == [Submit("55")]


def test_no_input_reprompts_then_fails_and_overall_timeout() -> None:
    p = entry(inter_digit_timeout=3, overall_timeout=100, retries=1)
    p.start(0)
    assert p.poll(3) == [Play("pin_timeout"), Play("enter_pin")]
    assert p.poll(6) == [Play("pin_timeout"), Fail("no-input")]

    q = entry(inter_digit_timeout=3, overall_timeout=10)
    q.start(0)
    for t in (2, 4, 6, 8):
        press(q, "1", now=t)
    assert q.next_deadline() == 10
    assert q.poll(10) == [Play("pin_timeout"), Fail("timeout")]


def test_too_many_digits_is_a_wrong_attempt() -> None:
    p = entry(max_digits=4, retries=0)
    p.start(0)
    assert press(p, "1234") == []
    assert press(p, "5") == [Play("wrong_pin"), Fail("wrong-pin")]


def test_prompt_time_does_not_count_against_the_caller() -> None:
    p = entry(inter_digit_timeout=3, overall_timeout=100)
    p.start(0)
    p.prompt_until(4.0)  # a 4 s prompt
    assert p.next_deadline() == 7.0
    assert p.poll(5.0) == []
