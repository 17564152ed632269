"""An aiohttp app with the twirp API mounted on a loopback port, driven by the real livekit-api client."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from roomtone.api import install
from roomtone.rooms import RoomManager
from roomtone.rtc.tokens import TokenVerifier
from roomtone.telephony.service import Telephony

API_KEY = "APItestkey"
API_SECRET = "test-secret-0123456789-abcdefghijklmnop"


@dataclass
class ApiServer:
    url: str
    telephony: Telephony
    db_path: Path
    rooms: Any = None


async def start_server(app: web.Application) -> TestServer:
    """Listen on a free port in this suite's range (25000-26999)."""
    last: OSError | None = None
    for _ in range(20):
        server = TestServer(app, host="127.0.0.1", port=random.randint(25000, 26999))
        try:
            await server.start_server()
            return server
        except OSError as exc:
            last = exc
    raise RuntimeError(f"no free port in 25000-26999: {last}")


@pytest.fixture
async def api_server(tmp_path: Path) -> AsyncIterator[ApiServer]:
    db = tmp_path / "telephony.sqlite"
    telephony = Telephony.open(db)
    rooms = RoomManager()
    app = web.Application()
    install(app, verifier=TokenVerifier({API_KEY: API_SECRET}), rooms=rooms, telephony=telephony)
    server = await start_server(app)
    try:
        yield ApiServer(url=f"http://127.0.0.1:{server.port}", telephony=telephony, db_path=db, rooms=rooms)
    finally:
        await server.close()
        await rooms.close()
        telephony.close()
