"""The official Python ``livekit`` SDK against ``roomtone serve``, inside a network namespace.

WebRTC (libwebrtc) ignores loopback, so the server and the SDK clients run in a namespace with a
veth pair (tests/netns.py). One server serves the whole module; each test uses its own room.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from pathlib import Path

import pytest
from livekit import api

from tests.netns import Netns, netns_available

pytestmark = [
    pytest.mark.interop,
    pytest.mark.netns,
    pytest.mark.skipif(not netns_available(), reason="needs root for network namespaces"),
]

KEY, SECRET = "APItest", secrets.token_urlsafe(32)
SCENARIO = Path(__file__).with_name("lk_scenario.py")
ALL_CODES = [[c, d] for c, d in enumerate("0123456789*#ABCDR")]


@pytest.fixture(scope="module")
def server():
    with Netns() as ns:
        srv = ns.start_server({KEY: SECRET})
        srv.ns = ns
        yield srv


def token(identity: str, room: str, **grants) -> str:
    grants.setdefault("room_join", True)
    grants.setdefault("room", room)
    return api.AccessToken(KEY, SECRET).with_identity(identity).with_grants(api.VideoGrants(**grants)).to_jwt()


def run_scenario(server, spec: dict) -> dict:
    spec = {"url": server.url, "timeout": 40, **spec}
    path = server.ns.tmp_path(f"spec-{secrets.token_hex(4)}.json")
    path.write_text(json.dumps(spec))
    res = server.ns.run([sys.executable, str(SCENARIO), str(path)], timeout=120)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"scenario produced no result (rc {res.returncode}):\n{res.stderr[-3000:]}\n{server.log()[-3000:]}"
    out = json.loads(lines[-1])
    assert out["errors"] == [], f"{out['errors']}\nclient stderr:\n{res.stderr[-3000:]}\nserver:\n{server.log()[-3000:]}"
    return out


@pytest.mark.parametrize("single_pc", [False, True], ids=["v0-dual-pc", "v1-single-pc"])
def test_all_sixteen_codes_and_flash_arrive_in_order(server, single_pc):
    room = f"codes-{int(single_pc)}"
    out = run_scenario(
        server,
        {
            "single_pc": single_pc,
            "receivers": [{"identity": "bob", "token": token("bob", room)}],
            "sender": {"identity": "alice", "token": token("alice", room)},
            "codes": ALL_CODES,
        },
    )
    assert out["events"]["bob"] == [["dtmf", c, d, "alice"] for c, d in ALL_CODES]
    mode = "v1 single PC" if single_pc else "v0"
    for who in ("alice", "bob"):
        assert re.search(rf"{who}\(PA_\w+\)@{room}: joined via {mode} \(sdk python", server.log())


@pytest.mark.parametrize("single_pc", [False, True], ids=["v0-dual-pc", "v1-single-pc"])
def test_destination_list_reaches_only_the_target(server, single_pc):
    room = f"dest-{int(single_pc)}"
    out = run_scenario(
        server,
        {
            "single_pc": single_pc,
            "receivers": [{"identity": i, "token": token(i, room)} for i in ("bob", "carol")],
            "sender": {"identity": "alice", "token": token("alice", room)},
            "codes": [[1, "1"], [11, "#"], [16, "R"]],
            "data": ["hello carol"],
            "destinations": ["carol"],
        },
    )
    assert out["events"]["bob"] == []
    assert out["events"]["carol"] == [
        ["dtmf", 1, "1", "alice"],
        ["dtmf", 11, "#", "alice"],
        ["dtmf", 16, "R", "alice"],
        ["data", "hello carol", "alice"],
    ]


@pytest.mark.parametrize("single_pc", [False, True], ids=["v0-dual-pc", "v1-single-pc"])
def test_sender_without_can_publish_data_delivers_nothing_and_server_says_why(server, single_pc):
    room = f"nodata-{int(single_pc)}"
    needle = "has no canPublishData permission"
    before = server.log().count(needle)
    out = run_scenario(
        server,
        {
            "single_pc": single_pc,
            "receivers": [{"identity": "bob", "token": token("bob", room)}],
            "sender": {"identity": "mallory", "token": token("mallory", room, can_publish_data=False)},
            "marker": {"identity": "marker", "token": token("marker", room)},
            "codes": ALL_CODES,
            "wait_log": {"path": str(server.log_path), "needle": needle, "count": before + len(ALL_CODES)},
        },
    )
    assert out["events"]["bob"] == []
    log = server.log()
    assert log.count(f"dropped data from mallory ({out['sender_sid']}): participant 'mallory'") == len(ALL_CODES)


@pytest.mark.parametrize("mode", ["v0", "v1", "manual"], ids=["v0-dual-pc", "v1-single-pc", "v0-manual-subscribe"])
def test_audio_is_relayed_to_present_and_late_subscribers(server, mode):
    room = f"audio-{mode}"
    toks = [token(i, room) for i in ("alice", "bob", "carol")]
    res = server.ns.run([sys.executable, str(SCENARIO.with_name("lk_audio.py")), server.url, *toks, "440", mode], timeout=150)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"rc {res.returncode}\n{res.stderr[-3000:]}\n{server.log()[-3000:]}"
    out = json.loads(lines[-1])
    assert out["errors"] == [], f"{out}\n{res.stderr[-3000:]}\n{server.log()[-3000:]}"
    for who in ("b", "c"):
        got = out[who]
        assert got["from"] == "alice" and got["track_sid"] == out["published_sid"]
        assert abs(got["peak_hz"] - 440) <= 5, got
        # 8000-amplitude sine: RMS 5657; Opus at default bitrate keeps it within a few percent.
        assert 4000 < got["rms"] < 7000, got
    assert out.get("unsubscribed") == ["b", "c"], out
    assert f"unpublished {out['published_sid']} (section" in server.log()
    if mode == "manual":  # subscribed because they asked (UpdateSubscription), not automatically
        for who in ("bob", "carol"):
            assert re.search(rf"{who}\(PA_\w+\)@{room}: subscribed to {out['published_sid']} of alice \(requested\)", server.log())
    assert "Traceback" not in server.log()


def test_ice_port_range_and_host_address_with_the_sdk():
    """libwebrtc connects to a server restricted to one address and a 10-port UDP range."""
    config = "rtc: {port_range_start: 41000, port_range_end: 41009, ice_host_addresses: [198.18.0.2]}\n"
    with Netns() as ns:
        srv = ns.start_server({KEY: SECRET}, config=config)
        srv.ns = ns
        room = "ice"
        out = run_scenario(
            srv,
            {
                "single_pc": False,
                "receivers": [{"identity": "bob", "token": token("bob", room)}],
                "sender": {"identity": "alice", "token": token("alice", room)},
                "codes": [[5, "5"]],
            },
        )
        assert out["events"]["bob"] == [["dtmf", 5, "5", "alice"]]
        log = srv.log()
        assert "ICE: host addresses ['198.18.0.2'], UDP ports 41000-41009" in log
        # Every local side of aioice's candidate pair checks (logged at -vv) is inside the limits.
        local = set(re.findall(r"CandidatePair\(\('([\d.]+)', (\d+)\) ->", log))
        assert local, log[-3000:]
        assert all(addr == "198.18.0.2" and 41000 <= int(port) <= 41009 for addr, port in local), local


def test_rpc_and_text_streams_pass_through(server):
    room = "rpc"
    res = server.ns.run(
        [sys.executable, str(SCENARIO.with_name("lk_rpc_stream.py")), server.url, token("alice", room), token("bob", room)],
        timeout=120,
    )
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"{res.stderr[-3000:]}\n{server.log()[-3000:]}"
    out = json.loads(lines[-1])
    assert out["errors"] == [], f"{out}\n{res.stderr[-3000:]}"
    assert out["rpc"] == "alice:HELLO"
    assert out["text"] == [20000, "alice", "chat"]


def test_metadata_name_attributes_updates_and_their_permission(server):
    room = "meta"
    res = server.ns.run(
        [sys.executable, str(SCENARIO.with_name("lk_metadata.py")), server.url,
         token("alice", room, can_update_own_metadata=True), token("bob", room)],
        timeout=120,
    )
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"{res.stderr[-3000:]}\n{server.log()[-3000:]}"
    out = json.loads(lines[-1])
    assert out["errors"] == [], f"{out}\n{res.stderr[-3000:]}"
    assert out["seen"] == [["metadata", "alice", "m1"], ["name", "alice", "Alice A"], ["attributes", "alice", {"k": "v"}]]
    assert out["b_set_metadata_error"] == "request error: NotAllowed - does not have permission to update own metadata"
    assert out["a_sees_b_metadata"] == ""
