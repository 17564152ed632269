"""The pure header <-> attribute rules (:mod:`roomtone.telephony.sip_headers`) on parsed SIP messages."""

from __future__ import annotations

import logging

import pytest

from roomtone.sip.message import Request, parse
from roomtone.telephony import sip_headers as sh

INVITE = (
    b"INVITE sip:+15550100@gw.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa\r\n"
    b"f: <sip:alice@192.0.2.1>;tag=1\r\n"
    b"To: <sip:+15550100@gw.example>\r\n"
    b"Call-ID: c1\r\nCSeq: 1 INVITE\r\n"
    b"Authorization: Digest username=\"u\", response=\"secret\"\r\n"
    b"x-customer-ID: 42\r\n"
    b"X-Tag: a\r\nX-Tag: b\r\n"
    b"X-Twilio-CallSid: CA123\r\n"
    b"X-Empty: \r\n"
    b"Content-Length: 0\r\n\r\n"
)


def message() -> Request:
    msg = parse(INVITE)
    assert isinstance(msg, Request), msg
    return msg


def test_x_headers_lowercased_repeated_joined_and_known_provider_headers() -> None:
    attrs = sh.headers_to_attributes(message(), {"X-CUSTOMER-id": "customer"}, sh.SIP_X_HEADERS)
    assert attrs["sip.h.x-customer-id"] == "42" and attrs["customer"] == "42"
    assert attrs["sip.h.x-tag"] == "a, b"
    assert attrs["sip.twilio.callSid"] == "CA123"  # mapped whatever include_headers says
    assert attrs["sip.h.x-empty"] == ""
    assert not [k for k in attrs if k.startswith("sip.h.") and not k.startswith("sip.h.x-")]


def test_all_headers_expand_compact_names_and_leave_out_credentials() -> None:
    attrs = sh.headers_to_attributes(message(), {}, sh.SIP_ALL_HEADERS)
    assert attrs["sip.h.from"] == "<sip:alice@192.0.2.1>;tag=1" and attrs["sip.h.cseq"] == "1 INVITE"
    assert "sip.h.authorization" not in attrs


def test_no_headers_maps_only_what_is_named() -> None:
    attrs = sh.headers_to_attributes(message(), {"To": "to", "X-Missing": "missing"}, sh.SIP_NO_HEADERS)
    assert attrs == {"to": "<sip:+15550100@gw.example>", "sip.twilio.callSid": "CA123"}


@pytest.mark.parametrize(("name", "value", "words"), [
    ("X-A", "1\r\nVia: evil", "CR"), ("X-A", "1\n", "LF"), ("X-A", "a\x00b", "NUL"), ("X-A", "\x1b[0m", "0x1b"),
    ("X-A", "x" * 1025, "too long"), ("X A", "1", "token"), ("X-A:", "1", "token"), ("", "1", "empty"),
    ("Call-ID", "1", "set by roomtone"), ("m", "<sip:x@y>", "set by roomtone"),
])
def test_bad_headers_are_refused_with_the_reason(name: str, value: str, words: str) -> None:
    with pytest.raises(sh.HeaderError, match=words):
        sh.check_headers({name: value})


def test_good_values_pass_including_utf8_and_tabs() -> None:
    sh.check_headers({"X-Name": "Zoë\tMüller", "User-Agent": "acme/1.0", "P-Asserted-Identity": "<sip:+1@x>"})


def test_attributes_to_headers_skips_unsafe_values_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        out = sh.attributes_to_headers({"ok": "1", "evil": "a\r\nContact: x", "other": "2"},
                                       {"ok": "X-Ok", "evil": "X-Evil", "missing": "X-Missing"}, call="SCL_1")
    assert out == [("X-Ok", "1")]
    assert "SCL_1" in caplog.text and "evil" in caplog.text


def test_merge_is_case_insensitive_and_later_wins() -> None:
    assert sh.merge([("X-A", "1"), ("X-B", "2")], [("x-a", "3")]) == {"X-A": "3", "X-B": "2"}
