"""Token refusals as the official Python SDK reports them (signalling only: loopback suffices).

The Rust core tries /rtc/v1, then asks /rtc/v1/validate for the reason, and raises ConnectError
with LiveKit's status and message, which is what users of a real LiveKit server see.
"""

from __future__ import annotations

import secrets

import pytest
from livekit import rtc

from roomtone import config as config_mod
from roomtone import server as server_mod
from roomtone.rtc.tokens import make_token

pytestmark = pytest.mark.interop

KEY, SECRET = "APIsdkauth", secrets.token_urlsafe(32)
JOIN = {"roomJoin": True, "room": "r"}


@pytest.fixture
async def srv():
    cfg = config_mod.load(env={"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}, bind="127.0.0.1", port=0)
    s = await server_mod.start(cfg, default_services=False)
    yield s
    await s.stop()


@pytest.mark.parametrize(
    "token,expected",
    [
        (make_token(KEY, SECRET, "a", video=JOIN, now=1e9, ttl=60),
         "401 Unauthorized - invalid authorization token: go-jose/go-jose/jwt: validation failed, token is expired (exp)"),
        (make_token(KEY, "x" * 43, "a", video=JOIN),
         "401 Unauthorized - invalid authorization token: go-jose/go-jose: error in cryptographic primitive"),
        (make_token("APIother", SECRET, "a", video=JOIN), "401 Unauthorized - invalid API key"),
        (make_token(KEY, SECRET, "a", video={"roomJoin": True}), "400 Bad Request - no room name"),
        (make_token(KEY, SECRET, "a", video={"room": "r"}), "401 Unauthorized - permissions denied"),
        ("garbage", "401 Unauthorized - invalid authorization token"),
    ],
    ids=["expired", "wrong-signature", "unknown-key", "missing-room-grant", "missing-roomjoin", "garbage"],
)
async def test_sdk_connect_is_refused_with_livekits_status_and_message(srv, token, expected):
    room = rtc.Room()
    with pytest.raises(rtc.ConnectError) as exc:
        await room.connect(srv.url, token, rtc.RoomOptions(connect_timeout=10))
    assert expected in str(exc.value)
    assert await srv.app[server_mod.ROOMS].list_rooms() == []
