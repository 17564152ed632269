"""RoomService through the official livekit-api client, against a RoomManager with server-side participants."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest
from livekit import api
from livekit.api.twirp_client import TwirpClient, TwirpError
from livekit.protocol import models
from livekit.protocol import room as room_pb

from .conftest import API_KEY, API_SECRET, ApiServer


async def _until(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Wait for a condition instead of sleeping a guessed time (delivery runs in tasks)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def lk(server: ApiServer) -> api.LiveKitAPI:
    return api.LiveKitAPI(server.url, API_KEY, API_SECRET)


async def test_rooms_create_list_metadata_delete(api_server: ApiServer) -> None:
    async with lk(api_server) as client:
        room = await client.room.create_room(api.CreateRoomRequest(name="r1", metadata="hello", max_participants=5))
        assert room.name == "r1" and room.metadata == "hello" and room.sid
        await client.room.create_room(api.CreateRoomRequest(name="r2"))
        listed = await client.room.list_rooms(api.ListRoomsRequest())
        assert {r.name for r in listed.rooms} == {"r1", "r2"}
        only = await client.room.list_rooms(api.ListRoomsRequest(names=["r2"]))
        assert [r.name for r in only.rooms] == ["r2"]
        updated = await client.room.update_room_metadata(api.UpdateRoomMetadataRequest(room="r1", metadata="new"))
        assert updated.metadata == "new"
        await client.room.delete_room(api.DeleteRoomRequest(room="r1"))
        listed = await client.room.list_rooms(api.ListRoomsRequest())
        assert [r.name for r in listed.rooms] == ["r2"]
        with pytest.raises(TwirpError) as err:
            await client.room.delete_room(api.DeleteRoomRequest(room="r1"))
        assert err.value.code == "not_found" and err.value.status == 404


async def test_participants_get_update_remove_and_send_data(api_server: ApiServer) -> None:
    rooms = api_server.rooms
    received: list[models.DataPacket] = []
    closed: list[int] = []
    p = await rooms.add_sip_participant(
        "call", "sip_+1555", name="Phone +1555", attributes={"sip.callStatus": "active"},
        on_data=received.append, on_close=closed.append,
    )
    other = await rooms.add_sip_participant("call", "agent", on_data=lambda pkt: None)
    async with lk(api_server) as client:
        listed = await client.room.list_participants(api.ListParticipantsRequest(room="call"))
        assert {i.identity for i in listed.participants} == {"sip_+1555", "agent"}
        info = await client.room.get_participant(api.RoomParticipantIdentity(room="call", identity="sip_+1555"))
        assert info.kind == models.ParticipantInfo.SIP and info.attributes["sip.callStatus"] == "active"
        assert info.sid == p.sid
        updated = await client.room.update_participant(
            api.UpdateParticipantRequest(room="call", identity="sip_+1555", metadata="m", attributes={"x": "1"})
        )
        assert updated.metadata == "m" and updated.attributes["x"] == "1"
        assert updated.attributes["sip.callStatus"] == "active"  # merged, not replaced

        await client.room.send_data(
            api.SendDataRequest(room="call", data=b"hi", kind=models.DataPacket.RELIABLE,
                                destination_identities=["sip_+1555"], topic="t")
        )
        await _until(lambda: received, "the data packet")
        assert [(pk.user.payload, pk.user.topic) for pk in received] == [(b"hi", "t")]

        await client.room.remove_participant(api.RoomParticipantIdentity(room="call", identity="sip_+1555"))
        await _until(lambda: closed, "the participant's close")
        assert closed == [models.DisconnectReason.PARTICIPANT_REMOVED]
        with pytest.raises(TwirpError) as err:
            await client.room.get_participant(api.RoomParticipantIdentity(room="call", identity="sip_+1555"))
        assert err.value.code == "not_found"
        with pytest.raises(TwirpError) as err:
            await client.room.list_participants(api.ListParticipantsRequest(room="nope"))
        assert err.value.code == "not_found"
    del other


@pytest.mark.parametrize(
    ("method", "msg", "resp", "grants"),
    [
        ("CreateRoom", room_pb.CreateRoomRequest(name="x"), models.Room, api.VideoGrants(room_list=True)),
        ("ListRooms", room_pb.ListRoomsRequest(), room_pb.ListRoomsResponse, api.VideoGrants(room_create=True)),
        ("DeleteRoom", room_pb.DeleteRoomRequest(room="x"), room_pb.DeleteRoomResponse,
         api.VideoGrants(room_admin=True, room="x")),
        ("ListParticipants", room_pb.ListParticipantsRequest(room="x"), room_pb.ListParticipantsResponse,
         api.VideoGrants(room_admin=True, room="other")),
        ("RemoveParticipant", room_pb.RoomParticipantIdentity(room="x", identity="a"), room_pb.RemoveParticipantResponse,
         api.VideoGrants(room_join=True, room="x")),
        ("SendData", room_pb.SendDataRequest(room="x", data=b"1"), room_pb.SendDataResponse,
         api.VideoGrants(room_create=True, room_list=True)),
    ],
)
async def test_room_grants(api_server: ApiServer, method, msg, resp, grants) -> None:  # type: ignore[no-untyped-def]
    token = api.AccessToken(API_KEY, API_SECRET).with_identity("someone").with_grants(grants).to_jwt()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TwirpError) as err:
            await TwirpClient(session, api_server.url, "livekit").request(
                "RoomService", method, msg, {"Authorization": f"Bearer {token}"}, resp
            )
    assert err.value.code == "permission_denied" and err.value.status == 403
