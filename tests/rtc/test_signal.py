"""Signalling without WebRTC: auth refusals (LiveKit's statuses and messages), the JoinResponse,
participant updates, ping/pong, duplicate identity, resume, metadata; a real server on loopback
and a protobuf WebSocket client (the SDK-level tests are in test_python_sdk.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import logging
import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
from livekit import api
from livekit.protocol import models as pm
from livekit.protocol import rtc as pr

from roomtone import config as config_mod
from roomtone import server as server_mod
from roomtone.rtc.tokens import make_token

KEY, SECRET = "APIsig", secrets.token_urlsafe(32)


@pytest.fixture
async def srv():
    cfg = config_mod.load(env={"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}, bind="127.0.0.1", port=0)
    s = await server_mod.start(cfg, default_services=False)
    yield s
    await s.stop()


def tok(identity="alice", room="r", key=KEY, secret=SECRET, **grants):
    grants.setdefault("room_join", True)
    grants.setdefault("room", room)
    t = api.AccessToken(key, secret)
    if identity:
        t = t.with_identity(identity)
    return t.with_grants(api.VideoGrants(**grants)).to_jwt()


class Client:
    def __init__(self, ws):
        self.ws = ws

    async def recv(self, kind=None, timeout=5.0) -> pr.SignalResponse:
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), timeout)
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            resp = pr.SignalResponse.FromString(msg.data)
            if kind is None or resp.WhichOneof("message") == kind:
                return resp

    async def send(self, **kw):
        await self.ws.send_bytes(pr.SignalRequest(**kw).SerializeToString())


async def connect(session, s, token, path="/rtc", **query) -> Client:
    ws = await session.ws_connect(f"{s.http_url}{path}", params=query, headers={"Authorization": f"Bearer {token}"})
    return Client(ws)


@pytest.mark.parametrize(
    "headers,query,status,body",
    [
        ({}, {}, 401, "no permissions to access the room"),
        ({"Authorization": "Basic abc"}, {}, 401, "invalid authorization header. Must start with Bearer "),
        ({}, {"access_token": "not-a-jwt"}, 401, "invalid authorization token"),
        ({"Authorization": "Bearer " + tok(key="nokey")}, {}, 401, "invalid API key"),
        ({"Authorization": "Bearer " + tok(secret="x" * 40)}, {}, 401,
         "invalid authorization token: go-jose/go-jose: error in cryptographic primitive"),
        ({"Authorization": "Bearer " + make_token(KEY, SECRET, "a", video={"roomJoin": True, "room": "r"}, now=1e9, ttl=60)},
         {}, 401, "invalid authorization token: go-jose/go-jose/jwt: validation failed, token is expired (exp)"),
        ({"Authorization": "Bearer " + tok(room_join=False)}, {}, 401, "permissions denied"),
        ({"Authorization": "Bearer " + make_token(KEY, SECRET, "a", sip={"admin": True})}, {}, 401,
         "no permissions to access the room"),
        ({"Authorization": "Bearer " + make_token(KEY, SECRET, "a", video={"roomJoin": True})}, {}, 400, "no room name"),
        ({"Authorization": "Bearer " + make_token(KEY, SECRET, "", video={"roomJoin": True, "room": "r"})}, {}, 400,
         "identity cannot be empty"),
    ],
    ids=["no-token", "not-bearer", "garbage", "unknown-key", "wrong-signature", "expired", "no-roomjoin",
         "no-video-grant", "no-room", "no-identity"],
)
async def test_refusals_match_livekit(srv, headers, query, status, body, caplog):
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(secrets.token_bytes(16)).decode(),
    }
    async with aiohttp.ClientSession() as session:
        for path, extra in (("/rtc", upgrade), ("/rtc/validate", {})):
            with caplog.at_level(logging.WARNING):
                async with session.get(f"{srv.http_url}{path}", params=query, headers={**headers, **extra}) as r:
                    assert (r.status, await r.text()) == (status, body)
            assert f"refused {path}" in caplog.text and body.strip() in caplog.text
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await session.ws_connect(f"{srv.http_url}/rtc", params=query, headers=headers)
        assert exc.value.status == status


async def test_missing_room_grant_via_query_room_is_accepted(srv):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{srv.http_url}/rtc/validate", params={"access_token": make_token(KEY, SECRET, "a", video={"roomJoin": True}), "room": "q"}) as r:
            assert (r.status, await r.text()) == (200, "success")


async def test_join_response_updates_ping_and_leave(srv):
    async with aiohttp.ClientSession() as session:
        a = await connect(session, srv, tok("alice"), sdk="python", protocol="18")
        join = (await a.recv("join")).join
        assert join.participant.sid.startswith("PA_") and join.participant.identity == "alice"
        assert join.room.name == "r" and join.room.sid.startswith("RM_")
        assert join.ping_interval > 0 and join.ping_timeout > 0
        assert join.server_info.version and join.server_version
        assert join.subscriber_primary and list(join.other_participants) == []
        offer = (await a.recv("offer")).offer  # subscriber PC with the server's data channels
        assert offer.type == "offer" and "webrtc-datachannel" in offer.sdp

        b = await connect(session, srv, tok("bob", can_publish_data=False))
        join_b = (await b.recv("join")).join
        assert [p.identity for p in join_b.other_participants] == ["alice"]
        upd = (await a.recv("update")).update.participants
        assert [(p.identity, p.state) for p in upd] == [("bob", pm.ParticipantInfo.ACTIVE)]
        assert upd[0].permission.can_publish_data is False

        await a.send(ping_req=pr.Ping(timestamp=1234, rtt=5))
        pong = (await a.recv("pong_resp")).pong_resp
        assert pong.last_ping_timestamp == 1234 and pong.timestamp > 1234
        await a.send(ping=42)
        assert (await a.recv("pong")).pong > 0

        await b.send(leave=pr.LeaveRequest(reason=pm.DisconnectReason.CLIENT_INITIATED))
        upd = (await a.recv("update")).update.participants
        assert [(p.identity, p.state) for p in upd] == [("bob", pm.ParticipantInfo.DISCONNECTED)]
        assert upd[0].version > 1
        await a.ws.close()
        await b.ws.close()


async def test_duplicate_identity_kicks_older_connection(srv):
    async with aiohttp.ClientSession() as session:
        first = await connect(session, srv, tok("dup"))
        sid1 = (await first.recv("join")).join.participant.sid
        second = await connect(session, srv, tok("dup"))
        sid2 = (await second.recv("join")).join.participant.sid
        leave = (await first.recv("leave")).leave
        assert leave.reason == pm.DisconnectReason.DUPLICATE_IDENTITY and leave.action == pr.LeaveRequest.DISCONNECT
        assert sid1 != sid2
        msg = await asyncio.wait_for(first.ws.receive(), 5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        rooms = srv.app[server_mod.ROOMS]
        assert [p.sid for p in await rooms.list_participants("r")] == [sid2]
        await second.ws.close()


async def test_resume_attempt_gets_leave_with_reconnect_action(srv):
    async with aiohttp.ClientSession() as session:
        c = await connect(session, srv, tok("res"), reconnect="1", sid="PA_old", reconnect_reason="1")
        leave = (await c.recv()).leave
        assert leave.action == pr.LeaveRequest.RECONNECT and leave.can_reconnect


async def test_metadata_update_needs_permission_and_reaches_others(srv):
    async with aiohttp.ClientSession() as session:
        a = await connect(session, srv, tok("a", can_update_own_metadata=True))
        await a.recv("join")
        b = await connect(session, srv, tok("b"))
        await b.recv("join")
        await b.send(update_metadata=pr.UpdateParticipantMetadata(metadata="nope", request_id=7))
        rr = (await b.recv("request_response")).request_response
        assert rr.request_id == 7 and rr.reason == pr.RequestResponse.NOT_ALLOWED
        await a.send(update_metadata=pr.UpdateParticipantMetadata(metadata="m1", attributes={"x": "1"}, request_id=8))
        while True:
            upd = (await b.recv("update")).update.participants
            if upd[0].identity == "a":
                break
        assert upd[0].metadata == "m1" and dict(upd[0].attributes) == {"x": "1"}
        while True:  # the participant sees itself too (after b's join)
            mine = (await a.recv("update")).update.participants
            if mine[0].identity == "a":
                break
        assert mine[0].metadata == "m1"
        await a.ws.close()
        await b.ws.close()


async def test_v1_needs_join_request_and_decodes_gzip(srv):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{srv.http_url}/rtc/v1/validate", params={"access_token": tok()}) as r:
            assert (r.status, await r.text()) == (400, "join_request is required")
        jr = pr.JoinRequest(client_info=pm.ClientInfo(sdk=pm.ClientInfo.JS, protocol=17))
        wrapped = pr.WrappedJoinRequest(compression=pr.WrappedJoinRequest.GZIP, join_request=gzip.compress(jr.SerializeToString()))
        value = base64.urlsafe_b64encode(wrapped.SerializeToString()).decode().rstrip("=")
        c = await connect(session, srv, tok("v1"), path="/rtc/v1", join_request=value)
        join = (await c.recv("join")).join
        assert join.subscriber_primary is False and join.participant.identity == "v1"
        async with session.get(f"{srv.http_url}/rtc/v1", params={"access_token": tok(), "join_request": "!!"}) as r:
            assert r.status == 404  # not a WebSocket upgrade: LiveKit answers 404 too
        await c.ws.close()


async def test_v1_disabled_answers_404_so_clients_fall_back():
    cfg = config_mod.load(env={"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}, bind="127.0.0.1", port=0)
    cfg.rtc.single_pc = False
    s = await server_mod.start(cfg, default_services=False)
    try:
        async with aiohttp.ClientSession() as session:
            for path in ("/rtc/v1", "/rtc/v1/validate"):
                async with session.get(f"{s.http_url}{path}", params={"access_token": tok()}) as r:
                    assert r.status == 404 and "requested room does not exist" not in await r.text()
    finally:
        await s.stop()


async def test_garbage_signal_request_is_logged_and_connection_survives(srv, caplog):
    async with aiohttp.ClientSession() as session:
        c = await connect(session, srv, tok("g"))
        await c.recv("join")
        with caplog.at_level(logging.WARNING):
            await c.ws.send_bytes(b"\xff\xff\xff\xff")
            await c.send(ping_req=pr.Ping(timestamp=5))
            assert (await c.recv("pong_resp")).pong_resp.last_ping_timestamp == 5
        assert "unparseable signal request" in caplog.text
        await c.ws.close()


async def test_ice_host_addresses_and_port_range_are_honoured():
    cfg = config_mod.load(env={"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}, bind="127.0.0.1", port=0)
    cfg.rtc.ice_host_addresses = ["127.0.0.1"]
    cfg.rtc.port_range_start, cfg.rtc.port_range_end = 42700, 42709
    s = await server_mod.start(cfg, default_services=False)
    try:
        async with aiohttp.ClientSession() as session:
            c = await connect(session, s, tok("ice"))
            await c.recv("join")
            offer = (await c.recv("offer")).offer.sdp
            cands = [ln for ln in offer.splitlines() if ln.startswith("a=candidate:")]
            trickled = [(await c.recv("trickle")).trickle for _ in cands]
            assert cands, offer
            for line in cands:
                parts = line.split()
                assert parts[4] == "127.0.0.1" and 42700 <= int(parts[5]) <= 42709, line
            assert [t.target for t in trickled] == [pr.SUBSCRIBER] * len(cands)
            assert sorted(json.loads(t.candidateInit)["candidate"] for t in trickled) == sorted(x[2:] for x in cands)
            await c.ws.close()
    finally:
        await s.stop()
        from roomtone.rtc import ice

        ice.configure()


async def test_token_identity_fields_kind_hidden_and_permissions_reach_others(srv):
    async with aiohttp.ClientSession() as session:
        watcher = await connect(session, srv, tok("w"))
        await watcher.recv("join")
        sip_token = make_token(KEY, SECRET, "phone", video={"roomJoin": True, "room": "r", "canSubscribe": False},
                               name="Caller", metadata="m", attributes={"sip.callStatus": "active"}, kind="sip")
        phone = await connect(session, srv, sip_token)
        me = (await phone.recv("join")).join
        assert me.subscriber_primary is False  # cannot subscribe: no subscriber PC offered
        info = (await watcher.recv("update")).update.participants[0]
        assert (info.identity, info.name, info.metadata, info.kind) == ("phone", "Caller", "m", pm.ParticipantInfo.SIP)
        assert dict(info.attributes) == {"sip.callStatus": "active"} and info.permission.can_subscribe is False
        ghost = await connect(session, srv, tok("ghost", hidden=True))
        join = (await ghost.recv("join")).join
        assert {p.identity for p in join.other_participants} == {"w", "phone"}
        await watcher.send(ping_req=pr.Ping(timestamp=1))
        nxt = await watcher.recv()
        assert nxt.WhichOneof("message") == "pong_resp"  # no update announced the hidden participant
        rooms = srv.app[server_mod.ROOMS]
        assert (await rooms.get_room("r")).num_participants == 2
        for c in (watcher, phone, ghost):
            await c.ws.close()


async def test_room_limits_auto_create_off_and_server_side_removal():
    cfg = config_mod.load(env={"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}, bind="127.0.0.1", port=0)
    cfg.room.auto_create = False
    s = await server_mod.start(cfg, default_services=False)
    rooms = s.app[server_mod.ROOMS]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{s.http_url}/rtc/validate", params={"access_token": tok(room="nope")}) as r:
                assert (r.status, await r.text()) == (404, "requested room does not exist")
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await connect(session, s, tok(room="nope"))
            assert exc.value.status == 404
            await rooms.create_room("small", max_participants=1)
            a = await connect(session, s, tok("a", room="small"))
            await a.recv("join")
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await connect(session, s, tok("b", room="small"))
            assert exc.value.status == 403
            await rooms.remove_participant("small", "a")
            leave = (await a.recv("leave")).leave
            assert leave.reason == pm.DisconnectReason.PARTICIPANT_REMOVED and leave.action == pr.LeaveRequest.DISCONNECT
            b = await connect(session, s, tok("b", room="small"))
            await b.recv("join")
            await rooms.delete_room("small")
            assert (await b.recv("leave")).leave.reason == pm.DisconnectReason.ROOM_DELETED
    finally:
        await s.stop()


async def test_server_shutdown_tells_clients():
    cfg = config_mod.load(env={"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}, bind="127.0.0.1", port=0)
    s = await server_mod.start(cfg, default_services=False)
    async with aiohttp.ClientSession() as session:
        c = await connect(session, s, tok("bye"))
        await c.recv("join")
        stopping = asyncio.ensure_future(s.stop())
        leave = (await c.recv("leave")).leave
        assert leave.reason == pm.DisconnectReason.SERVER_SHUTDOWN
        assert (await asyncio.wait_for(c.ws.receive(), 5)).type == aiohttp.WSMsgType.CLOSE
        await stopping


@contextlib.asynccontextmanager
async def watcher_and_silent(identity: str) -> AsyncIterator[tuple[Client, Client]]:
    """A server with ping_interval = ping_timeout = 1 s, a watcher that pings, and a client
    ``identity`` that says nothing after its join (what it does with pings is the test's)."""
    cfg = config_mod.load(env={"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}, bind="127.0.0.1", port=0)
    cfg.rtc.ping_interval, cfg.rtc.ping_timeout = 1, 1
    s = await server_mod.start(cfg, default_services=False)
    try:
        async with aiohttp.ClientSession() as session:
            w = await connect(session, s, tok("watcher"))
            await w.recv("join")
            silent = await connect(session, s, tok(identity))
            await silent.recv("join")
            await w.recv("update")
            yield w, silent
    finally:
        await s.stop()


async def keep_pinging(w: Client, rounds: int) -> None:
    for _ in range(rounds):
        await w.send(ping_req=pr.Ping(timestamp=1))
        await asyncio.sleep(0.6)


async def test_silent_client_is_closed_after_ping_interval_plus_timeout(caplog):
    async with watcher_and_silent("quiet") as (w, _quiet):
        await keep_pinging(w, 4)  # the quiet one never reads, so it never answers a WebSocket ping
        upd = (await w.recv("update")).update.participants[0]
        assert upd.identity == "quiet" and upd.state == pm.ParticipantInfo.DISCONNECTED
        assert upd.disconnect_reason == pm.DisconnectReason.CONNECTION_TIMEOUT
        assert "quiet" in caplog.text and "nothing from the client for 2 s and no answer to a WebSocket ping" in caplog.text


async def test_client_answering_websocket_pings_stays_without_signal_pings(caplog):
    """Like the Go SDK (server-sdk-go 2.19 sends no signal pings): a client that never sends a
    signal message but answers WebSocket pings stays in the room. Before, every idle Go SDK
    participant was closed after ping_interval + ping_timeout (found by benchmarks/bridge_sdk.py)."""
    async with watcher_and_silent("go-like") as (w, go_like):
        pings = 0
        original = go_like.ws.pong

        async def counting_pong(message: bytes = b"") -> None:
            nonlocal pings
            pings += 1
            await original(message)

        async def read_only() -> None:  # aiohttp answers the server's pings inside receive()
            while (await go_like.ws.receive()).type not in (
                    aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR):
                pass

        go_like.ws.pong = counting_pong  # type: ignore[method-assign]
        reader = asyncio.ensure_future(read_only())
        await keep_pinging(w, 10)  # 6 s: three times the idle limit
        reader.cancel()
        assert pings >= 2, "the server pinged the silent client"
        with pytest.raises(asyncio.TimeoutError):  # no participant update: nobody left
            await w.recv("update", timeout=0.5)
        assert not [r for r in caplog.records if r.levelname == "WARNING" and "go-like" in r.getMessage()]


async def test_malformed_requests_are_logged_and_the_session_survives(srv, caplog):
    async with aiohttp.ClientSession() as session:
        c = await connect(session, srv, tok("fuzz"))
        await c.recv("join")
        with caplog.at_level(logging.INFO):
            await c.send(offer=pr.SessionDescription(type="offer", sdp="v=0\r\nm=audio notaport RTP/AVP 0\r\n", id=3))
            await c.send(trickle=pr.TrickleRequest(candidateInit="{not json", target=pr.PUBLISHER))
            await c.send(trickle=pr.TrickleRequest(candidateInit='{"candidate": "candidate:garbage", "sdpMid": "0"}', target=pr.SUBSCRIBER))
            await c.send(answer=pr.SessionDescription(type="answer", sdp="v=0\r\n"))
            await c.send(subscription=pr.UpdateSubscription(track_sids=["TR_nope"], subscribe=True))
            await c.send(mute=pr.MuteTrackRequest(sid="TR_nope", muted=True))
            await c.ws.send_bytes(pr.SignalRequest(ping_req=pr.Ping(timestamp=77)).SerializeToString() + b"\x00\xff")
            await c.send(ping_req=pr.Ping(timestamp=99))
            while True:
                pong = await c.recv("pong_resp")
                if pong.pong_resp.last_ping_timestamp == 99:
                    break
        assert "cannot answer the client's offer" in caplog.text
        assert "cannot apply the client's answer" in caplog.text
        assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert "bad trickle candidate JSON" in caplog.text
        rooms = srv.app[server_mod.ROOMS]
        assert [p.identity for p in await rooms.list_participants("r")] == ["fuzz"]
        await c.ws.close()


async def test_token_room_config_applies_when_the_join_creates_the_room(srv):
    t = (api.AccessToken(KEY, SECRET).with_identity("first")
         .with_grants(api.VideoGrants(room_join=True, room="cfg"))
         .with_room_config(api.RoomConfiguration(empty_timeout=7, departure_timeout=3, max_participants=1, metadata="rm"))
         .to_jwt())
    async with aiohttp.ClientSession() as session:
        c = await connect(session, srv, t)
        room = (await c.recv("join")).join.room
        assert (room.empty_timeout, room.departure_timeout, room.max_participants, room.metadata) == (7, 3, 1, "rm")
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await connect(session, srv, tok("second", room="cfg"))
        assert exc.value.status == 403
        await c.ws.close()
