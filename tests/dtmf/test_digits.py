import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomtone.dtmf import (
    CANONICAL,
    DtmfError,
    Pause,
    Tone,
    canonical,
    code_for,
    digit_for,
    interpret_sip_dtmf,
    parse_sequence,
)

RFC4733 = {"0": 0, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9,
           "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}


@pytest.mark.parametrize("char,code", sorted(RFC4733.items()))
def test_rfc4733_table(char, code):
    assert code_for(char) == code
    assert digit_for(code) == char


@pytest.mark.parametrize("char", ["a", "b", "c", "d"])
def test_lowercase_letters_accepted_uppercase_emitted(char):
    assert canonical(char) == char.upper()
    assert code_for(char) == code_for(char.upper())


@pytest.mark.parametrize("char", ["R", "!", "\x00"])
def test_flash_spellings(char):
    assert code_for(char) == 16
    assert canonical(char) == "R"


@pytest.mark.parametrize("bad", ["x", "E", "?", "", "12", "5 "])
def test_unknown_character_named(bad):
    with pytest.raises(DtmfError) as info:
        code_for(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("code", [-1, 17, 255, True, "1", None])
def test_unknown_code(code):
    with pytest.raises(DtmfError):
        digit_for(code)


def test_sequence_with_pauses():
    assert parse_sequence("1w2,3W#") == [Tone(1), Pause(0.5), Tone(2), Pause(0.5), Tone(3), Pause(1.0), Tone(11)]


def test_sequence_rejects_and_names_bad_char():
    with pytest.raises(DtmfError, match=r"'x' at position 2"):
        parse_sequence("12x4")


def test_interpret_empty_digit_uses_code():
    assert interpret_sip_dtmf(11, "") == [Tone(11)]
    with pytest.raises(DtmfError):
        interpret_sip_dtmf(42, "")


def test_interpret_digit_wins_and_logs(caplog):
    with caplog.at_level(logging.INFO, logger="roomtone.dtmf.digits"):
        assert interpret_sip_dtmf(1, "#") == [Tone(11)]
    assert "disagrees" in caplog.text


def test_interpret_agreeing_does_not_log(caplog):
    with caplog.at_level(logging.INFO, logger="roomtone.dtmf.digits"):
        assert interpret_sip_dtmf(11, "#") == [Tone(11)]
    assert caplog.text == ""


def test_interpret_sequence():
    assert interpret_sip_dtmf(0, "ww12#") == [Pause(0.5), Pause(0.5), Tone(1), Tone(2), Tone(11)]


def test_interpret_rejects_garbage_digit():
    with pytest.raises(DtmfError, match="'z'"):
        interpret_sip_dtmf(1, "1z")


@given(st.text(alphabet="0123456789*#ABCDabcdR!wW,", max_size=40))
def test_sequence_roundtrip(text):
    steps = parse_sequence(text)
    assert len(steps) == len(text)
    rebuilt = "".join(s.digit if isinstance(s, Tone) else {0.5: "w", 1.0: "W"}[s.seconds] for s in steps)
    again = parse_sequence(rebuilt)
    assert again == steps
    assert all(s.digit in CANONICAL for s in steps if isinstance(s, Tone))
