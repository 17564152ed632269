"""The ``livekit.RoomService`` twirp service on :class:`roomtone.rooms.RoomManager`.

Grants as in livekit/livekit ``pkg/service/roomservice.go``: CreateRoom and DeleteRoom need
``roomCreate``, ListRooms ``roomList``, everything acting inside one room ``roomAdmin`` for that
room. RemoveParticipant on a SIP participant hangs its call up: the room manager tells the
participant's endpoint it was removed, and the telephony bridge ends the call on that signal.

SendData sends user packets only, as LiveKit's does; DTMF toward a phone has its own call,
``roomtone.SIP/SendDTMF``.
"""

from __future__ import annotations

import logging
from typing import Any

from google.protobuf.message import Message
from livekit.protocol import models
from livekit.protocol import room as room_pb

from roomtone.api.grants import ensure_admin, ensure_create, ensure_list
from roomtone.api.twirp import Service, TwirpError, invalid_argument
from roomtone.rooms import Permission, RoomError, RoomManager
from roomtone.rtc.tokens import Claims

log = logging.getLogger(__name__)


def build_service(rooms: RoomManager, telephony: Any = None) -> Service:
    svc = Service("livekit.RoomService")

    async def call(coro: Any) -> Any:
        try:
            return await coro
        except RoomError as exc:
            raise TwirpError(exc.code, exc.message) from None

    async def create_room(claims: Claims, req: room_pb.CreateRoomRequest) -> Message:
        ensure_create(claims)
        if not req.name:
            raise invalid_argument("name is required")
        room: Message = await call(
            rooms.create_room(
                req.name,
                empty_timeout=req.empty_timeout or None,
                departure_timeout=req.departure_timeout or None,
                max_participants=req.max_participants or None,
                metadata=req.metadata,
            )
        )
        return room

    async def list_rooms(claims: Claims, req: room_pb.ListRoomsRequest) -> Message:
        ensure_list(claims)
        found = await call(rooms.list_rooms(list(req.names) or None))
        return room_pb.ListRoomsResponse(rooms=found)

    async def delete_room(claims: Claims, req: room_pb.DeleteRoomRequest) -> Message:
        ensure_create(claims)
        if not req.room:
            raise invalid_argument("room is required")
        await call(rooms.delete_room(req.room))
        return room_pb.DeleteRoomResponse()

    async def update_room_metadata(claims: Claims, req: room_pb.UpdateRoomMetadataRequest) -> Message:
        ensure_admin(claims, req.room)
        room: Message = await call(rooms.update_room_metadata(req.room, req.metadata))
        return room

    async def list_participants(claims: Claims, req: room_pb.ListParticipantsRequest) -> Message:
        ensure_admin(claims, req.room)
        found = await call(rooms.list_participants(req.room))
        return room_pb.ListParticipantsResponse(participants=found)

    async def get_participant(claims: Claims, req: room_pb.RoomParticipantIdentity) -> Message:
        ensure_admin(claims, req.room)
        info: Message = await call(rooms.get_participant(req.room, req.identity))
        return info

    async def remove_participant(claims: Claims, req: room_pb.RoomParticipantIdentity) -> Message:
        ensure_admin(claims, req.room)
        await call(rooms.remove_participant(req.room, req.identity))
        return room_pb.RemoveParticipantResponse()

    async def update_participant(claims: Claims, req: room_pb.UpdateParticipantRequest) -> Message:
        ensure_admin(claims, req.room)
        info: Message = await call(
            rooms.update_participant(
                req.room,
                req.identity,
                name=req.name or None,
                metadata=req.metadata or None,
                attributes=dict(req.attributes) or None,
                permission=Permission.from_proto(req.permission) if req.HasField("permission") else None,
            )
        )
        return info

    async def send_data(claims: Claims, req: room_pb.SendDataRequest) -> Message:
        ensure_admin(claims, req.room)
        routed = await call(
            rooms.send_data(
                req.room,
                req.data,
                reliable=req.kind != models.DataPacket.LOSSY,
                destination_identities=list(req.destination_identities),
                topic=req.topic if req.HasField("topic") else None,
            )
        )
        if routed.dropped:
            raise invalid_argument(f"data not sent: {routed.dropped}")
        return room_pb.SendDataResponse()

    svc.method("CreateRoom", room_pb.CreateRoomRequest, create_room)
    svc.method("ListRooms", room_pb.ListRoomsRequest, list_rooms)
    svc.method("DeleteRoom", room_pb.DeleteRoomRequest, delete_room)
    svc.method("UpdateRoomMetadata", room_pb.UpdateRoomMetadataRequest, update_room_metadata)
    svc.method("ListParticipants", room_pb.ListParticipantsRequest, list_participants)
    svc.method("GetParticipant", room_pb.RoomParticipantIdentity, get_participant)
    svc.method("RemoveParticipant", room_pb.RoomParticipantIdentity, remove_participant)
    svc.method("UpdateParticipant", room_pb.UpdateParticipantRequest, update_participant)
    svc.method("SendData", room_pb.SendDataRequest, send_data)
    return svc
