"""The phone harnesses proved against each other, without roomtone's UA, and the DTMF matrix measured.

Each test is one cell of "who can send / receive DTMF by which method"; the table in
tests/phones/__init__.py is what these tests found. In-band tones are checked by recording the
receiver's audio and running a plain Goertzel check (tests/phones/media.py) on it; SIPp plays pcaps from tests/pcaps.py.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.pcaps import inband_pcap, rfc4733_pcap

from .baresip import baresip_phone
from .media import detect_dtmf, read_wav, tones_wav
from .pjsua import pjsua_phone
from .sipp import run_sipp, sipp, uac_scenario, uas_scenario

pytestmark = pytest.mark.interop

ALL16 = "0123456789*#ABCD"


def _digits(events):
    return "".join(e["digit"] for e in events)


def _wait_recorded(path: str, expected: str, timeout: float = 10.0) -> str:
    """Digits detected in a growing recording, polled until they match or time runs out."""
    deadline = time.monotonic() + timeout
    found = ""
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 44:
            samples, rate = read_wav(path)
            found = detect_dtmf(samples, rate)
            if found == expected:
                break
        time.sleep(0.2)
    return found


def test_baresip_sends_rfc4733_pjsua_receives_all_16_in_order():
    with pjsua_phone(auto_answer=True) as pj, baresip_phone() as b:
        b.dial(pj.uri)
        b.wait_event("CALL_ESTABLISHED")
        pj.wait_event("media", active=True)
        b.send_dtmf(ALL16, gap=0.2)
        got = pj.wait_digits(16)
        assert _digits(got) == ALL16
        assert {e["method"] for e in got} == {"rfc4733"}
        b.hangup()
        pj.wait_state("DISCONNECTED")


def test_pjsua_sends_rfc4733_and_info_baresip_receives_both_with_method():
    with baresip_phone(auto_answer=True) as b, pjsua_phone() as pj:
        pj.call(b.uri)
        pj.wait_state("CONFIRMED")
        pj.wait_event("media", active=True)
        pj.send_dtmf("159#", method="rfc4733")
        got = b.wait_digits(4)
        assert _digits(got) == "159#" and {e["method"] for e in got} == {"rfc4733"}
        pj.send_dtmf("2*A", method="info")
        got = b.wait_digits(7)[4:]
        assert _digits(got) == "2*A" and {e["method"] for e in got} == {"info"}
        assert all(e["duration_ms"] == 160 for e in got)
        pj.hangup()
        b.wait_event("CALL_CLOSED")


def test_pjsua_sends_all_three_methods_to_pjsua(tmp_path):
    """RFC 4733 and INFO are reported by the receiving pjsua2; in-band is not (PJSIP has no detector),
    but the recording of the receiver's audio carries the tones."""
    rec = str(tmp_path / "rx.wav")
    with pjsua_phone(auto_answer=True, user="callee") as callee, pjsua_phone(user="caller") as caller:
        caller.call(callee.uri)
        caller.wait_state("CONFIRMED")
        callee.wait_event("media", active=True)
        callee.record(rec)
        caller.send_dtmf("12", method="rfc4733")
        assert [(e["digit"], e["method"]) for e in callee.wait_digits(2)] == [("1", "rfc4733"), ("2", "rfc4733")]
        # PJSIP replaces audio with events while it sends them: let the last event end before tones
        callee.wait_event("dtmf_event", digit="2", end=True)
        caller.send_dtmf("3#", method="info")
        assert [(e["digit"], e["method"]) for e in callee.wait_digits(4)[2:]] == [("3", "info"), ("#", "info")]
        caller.send_dtmf("4567", method="inband", duration_ms=120)
        assert _wait_recorded(rec, "4567") == "4567"
        assert len(callee.dtmf) == 4  # the tones produced no DTMF event
        caller.hangup()
        callee.wait_state("DISCONNECTED")


def test_baresip_sends_inband_by_playing_a_wav(tmp_path):
    wav = str(tmp_path / "tones.wav")
    rec = str(tmp_path / "rx.wav")
    # baresip's source runs at 48 kHz stereo in this harness (ausine needs it), so the file matches
    # a long lead-in: the source switch and the recorder start need not line up on a busy machine
    tones_wav(wav, "9*0D", 48000, channels=2, tone_ms=150, gap_ms=120, lead_ms=800, tail_ms=800)
    with pjsua_phone(auto_answer=True) as pj, baresip_phone() as b:
        b.dial(pj.uri)
        b.wait_event("CALL_ESTABLISHED")
        pj.wait_event("media", active=True)
        pj.record(rec)
        b.play_file(wav)
        assert _wait_recorded(rec, "9*0D") == "9*0D"
        assert len(pj.dtmf) == 0
        b.hangup()


def test_baresip_records_what_it_receives(tmp_path):
    with baresip_phone(auto_answer=True, record=True) as b, pjsua_phone() as pj:
        pj.call(b.uri)
        pj.wait_state("CONFIRMED")
        pj.wait_event("media", active=True)
        pj.send_dtmf("58", method="inband", duration_ms=120)
        deadline = time.monotonic() + 10
        found = ""
        while time.monotonic() < deadline and found != "58":
            for path in b.recordings():
                samples, rate = read_wav(path)
                found = detect_dtmf(samples, rate) or found
                if found == "58":
                    break
            time.sleep(0.2)
        assert found == "58", b.recordings()
        assert len(b.dtmf) == 0  # baresip detects no in-band tones
        pj.hangup()


def test_sipp_sends_info_and_rfc4733_pcap_to_pjsua(tmp_path):
    pcap = str(tmp_path / "events.pcap")
    length = rfc4733_pcap(pcap, "73#", event_pt=101)
    with pjsua_phone(auto_answer=True) as pj:
        result = run_sipp(uac_scenario(info_dtmf="08", pcap=pcap, hold_ms=int(length * 1000) + 800),
                          f"127.0.0.1:{pj.port}", timeout=20)
        assert result.ok, result.report()
        got = pj.wait_digits(5)
    by_method = {m: "".join(e["digit"] for e in got if e["method"] == m) for m in ("info", "rfc4733")}
    assert by_method == {"info": "08", "rfc4733": "73#"}, got


def test_sipp_sends_inband_pcap_pjsua_records_it(tmp_path):
    pcap = str(tmp_path / "tones.pcap")
    rec = str(tmp_path / "rx.wav")
    length = inband_pcap(pcap, "2580")
    with pjsua_phone(auto_answer=True) as pj:
        with sipp(uac_scenario(pcap=pcap, hold_ms=int(length * 1000) + 1500),
                  f"127.0.0.1:{pj.port}", timeout=20) as s:
            pj.wait_event("media", active=True)
            pj.record(rec)
            result = s.wait()
        assert result.ok, result.report()
        assert _wait_recorded(rec, "2580") == "2580"
        assert len(pj.dtmf) == 0


def test_sipp_uas_takes_calls_from_pjsua_and_baresip_and_logs_info():
    with sipp(uas_scenario(), timeout=20) as s, pjsua_phone() as pj:
        pj.call(s.uri)
        pj.wait_state("CONFIRMED")
        pj.send_dtmf("6", method="info")
        pj.send_dtmf("9", method="info")
        time.sleep(0.5)
        pj.hangup()
        result = s.wait()
    assert result.ok, result.report()
    assert "Signal=6" in result.messages and "Signal=9" in result.messages
    with sipp(uas_scenario(), timeout=20) as s, baresip_phone() as b:
        b.dial(s.uri)
        b.wait_event("CALL_ESTABLISHED")
        b.hangup()
        result = s.wait()
    assert result.ok, result.report()
