"""SIP INFO DTMF bodies: the formats real PBXes send, and malformed bodies as error values."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from roomtone.dtmf.digits import CANONICAL, DtmfError
from roomtone.dtmf.info import (
    InfoDigit,
    InfoError,
    format_dtmf,
    format_dtmf_relay,
    parse_dtmf,
    parse_dtmf_relay,
    parse_info_body,
)


@pytest.mark.parametrize("body, expected", [
    ("Signal=5\r\nDuration=160\r\n", InfoDigit(5, 160)),
    ("Signal=5\nDuration=160\n", InfoDigit(5, 160)),
    ("signal = #\r\nDURATION = 250", InfoDigit(11, 250)),
    ("  Signal=*  \n\n  Duration=100 \n", InfoDigit(10, 100)),
    ("Signal=a\r\n", InfoDigit(12, None)),
    ("Signal=D\r\nDuration=80\r\n", InfoDigit(15, 80)),
    ("Signal=16\r\nDuration=300\r\n", InfoDigit(16, 300)),
    ("Signal=!\r\n", InfoDigit(16, None)),
    ("Signal=11\r\n", InfoDigit(11, None)),
    ("Signal=0\r\nVolume=10\r\n", InfoDigit(0, None)),  # unknown keys ignored
    (b"Signal=9\r\nDuration=160\r\n", InfoDigit(9, 160)),
])
def test_parse_dtmf_relay(body: str | bytes, expected: InfoDigit) -> None:
    assert parse_dtmf_relay(body) == expected


@pytest.mark.parametrize("body, fragment", [
    ("", "no Signal"),
    ("Duration=160", "no Signal"),
    ("Signal=", "empty"),
    ("Signal=x", "'x'"),
    ("Signal=17", "out of range"),
    ("Signal=55", "out of range"),
    ("Signal=12345", "unknown"),
    ("Signal=w", "unknown"),
    ("Signal=1\nSignal=2", "more than one Signal"),
    ("Signal=1\nDuration=abc", "Duration"),
    ("Signal=1\nDuration=-5", "Duration"),
    ("Signal=1\nDuration=0", "Duration"),
    ("Signal=1\nDuration=99999999", "Duration"),
    ("Signal=1\nDuration=1\nDuration=2", "more than one Duration"),
    ("Signal 5", "no '='"),
    (b"Signal=\xff", "UTF-8"),
    ("Signal=1\n" + "X=y\n" * 400, "too long"),
])
def test_parse_dtmf_relay_errors(body: str | bytes, fragment: str) -> None:
    result = parse_dtmf_relay(body)
    assert isinstance(result, InfoError) and result.status == 400
    assert fragment in result.reason


@pytest.mark.parametrize("body, code", [("5", 5), ("#", 11), (" * \r\n", 10), ("b", 13), ("16", 16),
                                        ("!", 16), ("R", 16), ("11", 11), (b"0", 0)])
def test_parse_dtmf(body: str | bytes, code: int) -> None:
    assert parse_dtmf(body) == InfoDigit(code)


@pytest.mark.parametrize("body", ["", "12a", "17", "Signal=5", "\x00", "x"])
def test_parse_dtmf_errors(body: str) -> None:
    assert isinstance(parse_dtmf(body), InfoError)


def test_parse_info_body_dispatch() -> None:
    assert parse_info_body("application/dtmf-relay", "Signal=3\n") == InfoDigit(3)
    assert parse_info_body("Application/DTMF-Relay; charset=utf-8", "Signal=3\n") == InfoDigit(3)
    assert parse_info_body("application/dtmf", "#") == InfoDigit(11)
    err = parse_info_body("application/media_control+xml", "<x/>")
    assert isinstance(err, InfoError) and err.status == 415 and "dtmf-relay" in err.reason
    bad = parse_info_body("application/dtmf-relay", "nonsense")
    assert isinstance(bad, InfoError) and bad.status == 400


def test_format() -> None:
    assert format_dtmf_relay("5") == "Signal=5\r\nDuration=160\r\n"
    assert format_dtmf_relay("a", 250) == "Signal=A\r\nDuration=250\r\n"
    assert format_dtmf_relay(16) == "Signal=16\r\nDuration=160\r\n"
    assert format_dtmf("!") == "16" and format_dtmf(11) == "#"
    with pytest.raises(DtmfError):
        format_dtmf_relay("x")
    with pytest.raises(DtmfError):
        format_dtmf(17)
    with pytest.raises(ValueError):
        format_dtmf_relay("1", 0)


@given(st.integers(0, 16), st.integers(1, 60000))
def test_round_trip(code: int, duration: int) -> None:
    assert parse_dtmf_relay(format_dtmf_relay(code, duration)) == InfoDigit(code, duration)
    assert parse_dtmf(format_dtmf(code)) == InfoDigit(code)
    assert parse_dtmf(format_dtmf(code)).digit == CANONICAL[code]  # type: ignore[union-attr]


@given(st.text(max_size=60) | st.binary(max_size=60))
@example("²")  # str.isdigit() is true for it, int() refuses it
@example("Signal=5\r\nDuration=1²0\r\n")
def test_garbage_never_raises(body: str | bytes) -> None:
    assert isinstance(parse_dtmf_relay(body), InfoDigit | InfoError)
    assert isinstance(parse_dtmf(body), InfoDigit | InfoError)
