"""``roomtone serve`` as users run it: one process serving signalling, the twirp API and the SIP
gateway; trunks created through the official ``livekit-api`` client survive a restart."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from livekit import api

from tests.serve_process import start_serve, stop_serve

KEY, SECRET = "APIserve", "serve-secret-" + "x" * 24


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp_path: Path, port: int, sip_port: int) -> subprocess.Popen[str]:
    sip = {"port": sip_port, "db": str(tmp_path / "telephony.sqlite")}
    return start_serve(tmp_path, {"port": port, "keys": {KEY: SECRET}, "sip": sip})


async def test_serve_answers_livekit_api_and_keeps_trunks(tmp_path: Path) -> None:
    port, sip_port = free_port(), free_port(socket.SOCK_DGRAM)
    proc = start(tmp_path, port, sip_port)
    try:
        lk = api.LiveKitAPI(f"http://127.0.0.1:{port}", KEY, SECRET)
        trunk = await lk.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(
                trunk=api.SIPInboundTrunkInfo(name="carrier", numbers=["+15550100"], allowed_addresses=["127.0.0.1"])
            )
        )
        assert trunk.sip_trunk_id.startswith("ST_")
        room = await lk.room.create_room(api.CreateRoomRequest(name="lobby"))
        assert room.name == "lobby" and room.sid
        await lk.aclose()

        bad = api.LiveKitAPI(f"http://127.0.0.1:{port}", KEY, "wrong-secret-" + "y" * 24)
        with pytest.raises(api.TwirpError) as info:
            await bad.room.list_rooms(api.ListRoomsRequest())
        assert info.value.code == "unauthenticated"
        await bad.aclose()
    finally:
        first_log = stop_serve(proc)
    assert f"SIP gateway listening on 127.0.0.1:{sip_port}" in first_log
    assert "in-band DTMF detector: numba kernels" in first_log  # loaded before audio flows

    proc = start(tmp_path, port, sip_port)
    try:
        lk = api.LiveKitAPI(f"http://127.0.0.1:{port}", KEY, SECRET)
        listed = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        assert [(t.sip_trunk_id, t.name, list(t.numbers)) for t in listed.items] == [
            (trunk.sip_trunk_id, "carrier", ["+15550100"])
        ]
        rooms = await lk.room.list_rooms(api.ListRoomsRequest())
        assert [r.name for r in rooms.rooms] == []  # rooms are live state, trunks are stored
        await lk.aclose()
    finally:
        stop_serve(proc)
