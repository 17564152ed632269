"""A SIP gateway on loopback wired to a real RoomManager and SQLite store (ports 25000-26999)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit.protocol import models

from roomtone.rooms import CallbackEndpoint, Participant, RoomManager
from roomtone.telephony.gateway import GatewayConfig, SipGateway
from roomtone.telephony.service import Telephony
from roomtone.telephony.store import SQLiteTelephonyStore
from tests.waiting import wait_for  # noqa: F401  (re-exported for the telephony tests)


@dataclass
class Listener:
    """A plain room participant (kind STANDARD) that records what the room sends it."""

    participant: Participant
    packets: list[models.DataPacket] = field(default_factory=list)

    def dtmf(self) -> list[tuple[str, str, int]]:
        return [(p.participant_identity, p.sip_dtmf.digit, p.sip_dtmf.code)
                for p in self.packets if p.WhichOneof("value") == "sip_dtmf"]

    def details(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(p.user.payload) for p in self.packets
                if p.WhichOneof("value") == "user" and p.user.topic == "roomtone.dtmf"]


def media_flowing(gw: SipGateway) -> bool:
    """Some call of the gateway has received RTP: digits sent from now on will be heard."""
    return any(c.media is not None and c.media.stream.session.stats.rtp_received > 0 for c in gw.calls.values())


async def listen(rooms: RoomManager, room: str, identity: str = "agent") -> Listener:
    packets: list[models.DataPacket] = []
    p = await rooms.join(room, identity, endpoint=CallbackEndpoint(on_data=packets.append))
    return Listener(p, packets)


@pytest.fixture
async def gw() -> AsyncIterator[SipGateway]:
    """A gateway on an ephemeral SIP port, RTP from a random 50-pair block of 26000-26998."""
    telephony = Telephony(SQLiteTelephonyStore(":memory:"))
    rooms = RoomManager()
    first = random.randrange(26000, 26900, 2)
    gateway = SipGateway(telephony, rooms, GatewayConfig(sip_port=0, transports=("UDP",),
                                                         rtp_ports=(first, first + 98)))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.close()
        await rooms.close()
        telephony.close()


@contextlib.asynccontextmanager
async def api_server(gateway: SipGateway, key: str, secret: str) -> AsyncIterator[str]:
    """The twirp API (RoomService, SIP) over ``gateway``'s rooms and store, on an ephemeral port;
    yields its base URL."""
    from aiohttp import web

    from roomtone.api import install
    from roomtone.rtc.tokens import TokenVerifier
    from tests.api.conftest import start_server

    app = web.Application()
    install(app, verifier=TokenVerifier({key: secret}), rooms=gateway.rooms, telephony=gateway.telephony)
    server = await start_server(app)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


@pytest.fixture
async def gateway() -> AsyncIterator[SipGateway]:
    telephony = Telephony(SQLiteTelephonyStore(":memory:"))
    rooms = RoomManager()
    gw = None
    for _ in range(20):
        sip_port = random.randrange(25000, 25990)
        rtp_first = random.randrange(26000, 26900, 2)
        gw = SipGateway(telephony, rooms, GatewayConfig(
            sip_port=sip_port, transports=("UDP",), rtp_ports=(rtp_first, rtp_first + 98)))
        try:
            await gw.start()
            break
        except OSError:
            await gw.ua.close()
            gw = None
    assert gw is not None, "no free SIP port in 25000-25990"
    try:
        yield gw
    finally:
        await gw.close()
        await rooms.close()
        telephony.close()


@dataclass
class Watcher:
    """Records the SIP participant's attribute history as the room reports it."""

    statuses: list[str] = field(default_factory=list)

    def on_participants(self, infos: list[models.ParticipantInfo]) -> None:
        for info in infos:
            status = info.attributes.get("sip.callStatus")
            if info.kind == models.ParticipantInfo.SIP and status and (not self.statuses or self.statuses[-1] != status):
                self.statuses.append(status)


async def watch(rooms: RoomManager, room: str, identity: str = "watcher") -> tuple[Listener, Watcher]:
    packets: list[models.DataPacket] = []
    watcher = Watcher()
    p = await rooms.join(room, identity, endpoint=CallbackEndpoint(on_data=packets.append,
                                                                    on_participants=watcher.on_participants))
    return Listener(p, packets), watcher
