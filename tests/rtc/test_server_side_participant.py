"""The rooms API a SIP bridge uses (add_sip_participant, publish_dtmf, publish_track), driven by
the official Python SDK over WebRTC inside a network namespace."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from livekit import api

from tests.netns import netns, netns_available  # noqa: F401

pytestmark = [
    pytest.mark.interop,
    pytest.mark.netns,
    pytest.mark.skipif(not netns_available(), reason="needs root for network namespaces"),
]

HERE = Path(__file__).parent
KEY, SECRET = "APIbridge", secrets.token_urlsafe(32)


def start_bridge_server(netns) -> Path:  # noqa: F811
    log = netns.tmp_path("bridge.log")
    with open(log, "wb") as out:
        proc = netns.popen([sys.executable, str(HERE / "sip_bridge_server.py"), "7880", KEY, SECRET],
                           stdout=out, stderr=subprocess.STDOUT, cwd=str(HERE.parents[1]))
    deadline = time.monotonic() + 30
    while '"ready": true' not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return log


def caller_token() -> str:
    return api.AccessToken(KEY, SECRET).with_identity("caller").with_grants(
        api.VideoGrants(room_join=True, room="bridge")).to_jwt()


def test_sdk_and_server_side_sip_participant_exchange_dtmf_and_audio(netns):  # noqa: F811
    log = start_bridge_server(netns)
    res = netns.run([sys.executable, str(HERE / "lk_bridge_client.py"), "ws://127.0.0.1:7880", caller_token()], timeout=120)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"{res.stderr[-3000:]}\n{log.read_text()[-3000:]}"
    out = json.loads(lines[-1])
    assert out["errors"] == [], f"{out}\n{res.stderr[-2000:]}\n{log.read_text()[-3000:]}"
    # The phone joined as a SIP participant with its attributes, and got the digits in order.
    assert out["phone_kind"] == 3 and out["phone_attributes"] == {"sip.callStatus": "active"}
    server_lines = [json.loads(ln) for ln in log.read_text().splitlines() if ln.startswith('{"dtmf"')]
    assert [d["dtmf"] for d in server_lines] == [[1, "1", "caller"], [2, "2", "caller"], [3, "3", "caller"], [11, "#", "caller"]]
    # Its answer reached the SDK as DTMF events from sip-phone.
    assert out["dtmf"] == [[9, "9", "sip-phone"], [8, "8", "sip-phone"], [7, "7", "sip-phone"]]
    # Its audio track was relayed to the SDK participant.
    assert out["audio_from"] == "sip-phone" and abs(out["peak_hz"] - 660) <= 5, out
    assert 4000 < out["rms"] < 7000, out


def test_room_metadata_update_and_removal_reach_the_sdk(netns):  # noqa: F811
    log = start_bridge_server(netns)
    res = netns.run([sys.executable, str(HERE / "lk_admin_client.py"), "ws://127.0.0.1:7880", caller_token()], timeout=120)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"{res.stderr[-3000:]}\n{log.read_text()[-3000:]}"
    out = json.loads(lines[-1])
    assert out["errors"] == [], f"{out}\n{res.stderr[-2000:]}\n{log.read_text()[-3000:]}"
    assert out["room_metadata"] == "star from caller" == out["room_metadata_seen_by_sdk"]
    assert out["disconnect_reason"] == "PARTICIPANT_REMOVED"


def test_sdk_resume_after_signal_drop_and_duplicate_identity(netns):  # noqa: F811
    log = start_bridge_server(netns)
    res = netns.run([sys.executable, str(HERE / "lk_resume_client.py"), "ws://127.0.0.1:7880", caller_token()], timeout=150)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"{res.stderr[-3000:]}\n{log.read_text()[-3000:]}"
    out = json.loads(lines[-1])
    assert out["errors"] == [], f"{out}\n{res.stderr[-3000:]}\n{log.read_text()[-3000:]}"
    assert out["events"] == ["reconnecting", "reconnected"]
    assert out["dtmf_after_resume"] == [9, 8, 7]
    assert "resume attempt answered with leave(RECONNECT)" in log.read_text()
    assert out["first_disconnect_reason"] == "DUPLICATE_IDENTITY"
    assert out["second_sees"] == ["sip-phone"]
