"""The harnesses themselves: clean teardown by PID, useful failure messages, port hygiene."""

from __future__ import annotations

import os

import pytest

from .baresip import baresip_phone
from .common import PORT_RANGE, RTP_RANGE, PhoneError, free_port
from .pjsua import pjsua_phone
from .sipp import render, run_sipp, uac_scenario


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); our harness reaps, so a live answer means running
    return True


def test_free_ports_are_in_range_distinct_and_bindable():
    ports = {free_port(span=2) for _ in range(20)}
    assert len(ports) == 20
    assert all(PORT_RANGE[0] <= p < PORT_RANGE[1] for p in ports)
    assert RTP_RANGE[0] <= free_port(span=2, rtp=True) < RTP_RANGE[1]


def test_free_ports_outlive_their_claims(monkeypatch):
    """A whole CI run asks for more spans than a range holds: once a claim has expired only the
    port's real state counts, so a long run does not run out (it did, at 1,044 tests)."""
    from tests.phones import common

    monkeypatch.setattr(common, "CLAIM_SECONDS", 0.0)
    monkeypatch.setattr(common, "_claimed", {})  # this test's claims must not reserve the range afterwards
    capacity = (RTP_RANGE[1] - RTP_RANGE[0]) // 4
    ports = [free_port(span=4, tcp=False, rtp=True) for _ in range(2 * capacity)]
    assert all(RTP_RANGE[0] <= p < RTP_RANGE[1] for p in ports)


@pytest.mark.interop
def test_pjsua_over_tcp_and_dtmf_event_durations():
    with pjsua_phone(auto_answer=True, tcp=True, user="callee") as callee, pjsua_phone(tcp=True) as caller:
        caller.call(callee.uri + ";transport=tcp")
        caller.wait_state("CONFIRMED")
        incoming = callee.wait_event("incoming")
        assert incoming["sdp"].startswith("v=0")
        callee.wait_event("media", active=True)
        caller.send_dtmf("7", method="rfc4733", duration_ms=200)
        end = callee.wait_event("dtmf_event", end=True)
        assert end["digit"] == "7" and end["method"] == "rfc4733"
        assert 150 <= end["duration_ms"] <= 300, end  # RFC 4733 duration as received, in ms
        log = open(callee.log_path, errors="replace").read()
        assert "TCP" in log and "INVITE" in log
        caller.hangup()


@pytest.mark.interop
def test_pjsua_stops_on_exit_and_failures_carry_its_log():
    with pjsua_phone() as phone:
        pid = phone.proc.pid
        assert _alive(pid)
        with pytest.raises(PhoneError) as err:
            phone.wait_event("incoming", timeout=0.3)
        assert "PJSIP log tail" in str(err.value) and f"pid {pid}" in str(err.value)
        with pytest.raises(PhoneError, match="no call"):
            phone.hangup()  # nothing to hang up: a clear error, and the phone keeps running
        assert phone.proc.alive()
    assert not _alive(pid)


@pytest.mark.interop
def test_baresip_stops_on_exit_and_refused_commands_say_so():
    with baresip_phone() as phone:
        pid = phone.proc.pid
        directory = phone.dir
        with pytest.raises(PhoneError) as err:
            phone.wait_event("CALL_INCOMING", timeout=0.3)
        assert "baresip is ready" in str(err.value)  # the log tail is attached
        with pytest.raises(PhoneError, match="command not found"):
            phone.command("sndcode", "1")  # in-call commands exist only during a call
    assert not _alive(pid)
    assert not os.path.exists(directory)


@pytest.mark.interop
def test_sipp_failure_is_reported_not_hung():
    # nobody listens on this port: SIPp retransmits, then its -timeout ends the run with an error
    dead = free_port(span=1)
    result = run_sipp(uac_scenario(), f"127.0.0.1:{dead}", timeout=2)
    assert not result.ok and result.returncode != 0
    assert "INVITE sip:service@127.0.0.1" in result.messages


def test_render_refuses_unfilled_placeholders():
    with pytest.raises(PhoneError, match="{{missing}}"):
        render("<x>{{missing}}</x>")
    assert render("<x>{{a}}</x>", a=1) == "<x>1</x>"
