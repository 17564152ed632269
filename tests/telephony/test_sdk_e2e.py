"""Phone <-> room DTMF with official clients end to end, inside a network namespace.

livekit-api configures the trunk and rule; a pjsua2 phone calls the gateway; the Python livekit
SDK participant receives each digit once from the SIP participant and its publish_dtmf reaches
the phone by the trunk's DTMF mode; RemoveParticipant hangs up. (libwebrtc ignores loopback,
hence the namespace; everything runs inside it.)
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netns import netns, netns_available  # noqa: F401

pytestmark = [
    pytest.mark.interop,
    pytest.mark.netns,
    pytest.mark.skipif(not netns_available(), reason="needs root for network namespaces"),
]

HERE = Path(__file__).parent
KEY, SECRET = "APIe2e", secrets.token_urlsafe(32)
ALL16 = "0123456789*#ABCD"


@pytest.mark.parametrize(
    ("method", "to_phone_mode", "digits"),
    [("rfc4733", "rfc4733", ALL16), ("info", "info", ALL16), ("inband", "auto", "0123456789*#")],
)
def test_phone_and_sdk_exchange_dtmf(netns, method: str, to_phone_mode: str, digits: str) -> None:  # noqa: F811
    log = netns.tmp_path("server.log")
    with open(log, "wb") as out:
        proc = netns.popen([sys.executable, str(HERE / "sdk_gateway_server.py"), "7880", KEY, SECRET, "5060",
                            str(netns.tmp_path("t.sqlite"))],
                           stdout=out, stderr=subprocess.STDOUT, cwd=str(HERE.parents[1]))
    deadline = time.monotonic() + 30
    while '"ready": true' not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    spec = {
        "url": "ws://127.0.0.1:7880", "key": KEY, "secret": SECRET, "sip_port": 5060, "phone_port": 5070,
        "phone_log": str(netns.tmp_path("pjsua.log")), "method": method, "digits": digits,
        "to_phone_mode": to_phone_mode, "to_phone": [[1, "1"], [11, "#"], [12, "A"]] if method != "inband" else
        [[1, "1"], [11, "#"]],
    }
    spec_path = netns.tmp_path("spec.json")
    spec_path.write_text(json.dumps(spec))
    res = netns.run([sys.executable, str(HERE / "sdk_scenario.py"), str(spec_path)], timeout=150,
                    cwd=str(HERE.parents[1]))
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"{res.stderr[-3000:]}\n{log.read_text()[-4000:]}"
    got = json.loads(lines[-1])
    context = f"{got}\n{res.stderr[-2000:]}\n{log.read_text()[-4000:]}"
    assert got["errors"] == [], context
    assert got["sip_kind"] == 3 and got["sip_name"] == "Phone 15557777", context
    attrs = got["sip_attributes"]
    assert attrs["sip.callStatus"] == "active" and attrs["sip.trunkID"] == got["trunk_id"], context
    assert attrs["sip.ruleID"] == got["rule_id"] and attrs["sip.phoneNumber"] == "15557777", context
    assert attrs["sip.trunkPhoneNumber"] == "+15550100" and attrs["sip.callID"].startswith("SCL_"), context
    # each digit once, in order, canonical, from the SIP participant
    assert got["room_got"] == [[i, d, "sip_15557777"] for i, d in enumerate(digits)], context
    assert [d["digit"] for d in got["details"]] == list(digits), context
    assert {d["method"] for d in got["details"]} == {method}, context
    # the SDK participant's publish_dtmf reached the phone by the trunk's mode
    expected_phone = [d for _, d in spec["to_phone"]]
    assert got["phone_got"] == expected_phone, context
    if to_phone_mode != "auto":
        assert got["phone_methods"] == [to_phone_mode], context
    assert got["listed"] == {"agent": 0, "sip_15557777": 3}, context
    assert got["phone_hung_up"], context
