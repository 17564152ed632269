"""The API and SIP gateway are mounted on every real server app (roomtone.server default services)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from livekit import api

from roomtone import server
from roomtone.api.app import GATEWAY, gateway_config
from roomtone.config import Config
from roomtone.telephony.gateway import SipGateway

from .conftest import API_KEY, API_SECRET


async def test_server_installer_mounts_room_and_sip_services(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    for _ in range(20):
        config = Config(bind="127.0.0.1", port=random.randint(25000, 26999), keys={API_KEY: API_SECRET})
        config.raw = {"sip": {"db": str(db), "port": random.randint(25000, 25990), "transports": ["UDP"],
                              "rtp_port_range_start": 26000, "rtp_port_range_end": 26999}}
        try:
            running = await server.start(config)  # the API and gateway are default services
            break
        except OSError:
            continue
    else:
        raise RuntimeError("no free port in 25000-26999")
    try:
        async with api.LiveKitAPI(running.http_url, API_KEY, API_SECRET) as client:
            room = await client.room.create_room(api.CreateRoomRequest(name="wired"))
            assert room.name == "wired"
            trunk = await client.sip.create_inbound_trunk(
                api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(numbers=["+15550800"]))
            )
            listed = await client.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
            assert [t.sip_trunk_id for t in listed.items] == [trunk.sip_trunk_id]
        gateway = running.app[GATEWAY]
        assert isinstance(gateway, SipGateway) and gateway.telephony.gateway is gateway
    finally:
        await running.stop()
    assert db.exists() and db.stat().st_size > 0


def test_gateway_config_errors() -> None:
    cfg = gateway_config({"port": 5070, "pin": {"retries": 5}, "dtmf_mode": "info"}, "127.0.0.1")
    assert cfg.sip_port == 5070 and cfg.pin.retries == 5 and cfg.trunk_defaults.dtmf_mode == "info"
    for bad, words in [({"prot": 1}, "prot"), ({"dtmf_mode": "x"}, "dtmf_mode"), ({"pin": {"tries": 1}}, "pin")]:
        with pytest.raises(ValueError, match=words):
            gateway_config(bad, "127.0.0.1")
