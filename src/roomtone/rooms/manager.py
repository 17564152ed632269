"""The room manager: membership, participant updates, data routing, room lifetimes.

It is the asyncio adapter around the pure rules in :mod:`roomtone.rooms.routing` and the records
in a :class:`~roomtone.rooms.store.RoomStore`. Transports plug in as
:class:`ParticipantEndpoint` objects: the WebRTC signalling session is one, a SIP call is another
(:meth:`RoomManager.add_sip_participant` builds one from callbacks). The manager never blocks on an
endpoint: endpoint methods may return an awaitable, which is run as a task, and an endpoint that
raises is logged and does not disturb the room.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from livekit.protocol import models as proto_models

from roomtone.dtmf.digits import digit_for
from roomtone.rooms.model import (
    ParticipantKind,
    ParticipantRecord,
    ParticipantState,
    Permission,
    RoomRecord,
    new_sid,
)
from roomtone.rooms.routing import DEFAULT_MAX_PACKET_BYTES, RoutedPacket, parse_packet, route_packet
from roomtone.rooms.store import MemoryRoomStore, RoomStore

log = logging.getLogger(__name__)

DisconnectReason = proto_models.DisconnectReason


class RoomError(Exception):
    """A refused room operation. ``status`` is the HTTP status, ``code`` the twirp error code."""

    status = 400
    code = "invalid_argument"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RoomNotFound(RoomError):
    status = 404
    code = "not_found"

    def __init__(self, message: str = "requested room does not exist") -> None:
        super().__init__(message)


class ParticipantNotFound(RoomError):
    status = 404
    code = "not_found"

    def __init__(self, message: str = "participant does not exist") -> None:
        super().__init__(message)


class RoomFull(RoomError):
    # LiveKit's message (pkg/rtc/errors.go ErrMaxParticipantsExceeded); it surfaces as a failed join.
    status = 403
    code = "resource_exhausted"

    def __init__(self, message: str = "room has exceeded its max participants") -> None:
        super().__init__(message)


class ParticipantEndpoint(Protocol):
    """How the room reaches a participant connected to this node. Methods may return an awaitable."""

    def deliver_data(self, packet: proto_models.DataPacket, payload: bytes, reliable: bool) -> Any:
        """A routed packet (already stamped); ``payload`` is its serialised form."""

    def participants_changed(self, infos: list[proto_models.ParticipantInfo]) -> Any:
        """Other participants joined, left (state DISCONNECTED) or changed; or this one changed."""

    def room_changed(self, room: proto_models.Room) -> Any:
        """Room metadata changed."""

    def closed(self, reason: int) -> Any:
        """The server removed this participant (``DisconnectReason``): end the connection."""

    # Optional (looked up with getattr): media published by others in the room.
    #   track_published(publisher: Participant, track: TrackInfo, media: Any) -> Any
    #   track_unpublished(publisher: Participant, track_sid: str) -> Any
    # ``media`` is whatever the publisher's transport attached: for WebRTC and for SIP bridges an
    # aiortc ``MediaStreamTrack`` producing decoded frames.


@dataclass
class CallbackEndpoint:
    """An endpoint made of optional callbacks (sync or async), for server-side participants."""

    on_data: Callable[[proto_models.DataPacket], Any] | None = None
    on_participants: Callable[[list[proto_models.ParticipantInfo]], Any] | None = None
    on_room: Callable[[proto_models.Room], Any] | None = None
    on_close: Callable[[int], Any] | None = None
    on_track: Callable[[Participant, proto_models.TrackInfo, Any], Any] | None = None
    on_track_removed: Callable[[Participant, str], Any] | None = None
    #: the data packet kinds (``DataPacket.value`` oneof names) ``on_data`` wants; None = all.
    #: The room skips the others, so a big room does not call every listener for every packet.
    data_kinds: frozenset[str] | None = None
    #: False: skip data sent by SIP participants (a phone that must not hear other phones' tones)
    data_from_sip: bool = True

    def track_published(self, publisher: Participant, track: proto_models.TrackInfo, media: Any) -> Any:
        return self.on_track(publisher, track, media) if self.on_track else None

    def track_unpublished(self, publisher: Participant, track_sid: str) -> Any:
        return self.on_track_removed(publisher, track_sid) if self.on_track_removed else None

    def deliver_data(self, packet: proto_models.DataPacket, payload: bytes, reliable: bool) -> Any:
        return self.on_data(packet) if self.on_data else None

    def participants_changed(self, infos: list[proto_models.ParticipantInfo]) -> Any:
        return self.on_participants(infos) if self.on_participants else None

    def room_changed(self, room: proto_models.Room) -> Any:
        return self.on_room(room) if self.on_room else None

    def closed(self, reason: int) -> Any:
        return self.on_close(reason) if self.on_close else None


class Participant:
    """A participant connected through this node: its record, its endpoint, and what it may do."""

    def __init__(self, manager: RoomManager, record: ParticipantRecord, endpoint: ParticipantEndpoint) -> None:
        self._manager = manager
        self.record = record
        self.endpoint = endpoint
        self.last_reliable_sequence = 0
        self.active = True
        self.media: dict[str, Any] = {}  # track sid -> the transport's media object (node-local)
        self.dropped_packets = 0

    @property
    def sid(self) -> str:
        return self.record.sid

    @property
    def identity(self) -> str:
        return self.record.identity

    @property
    def room_name(self) -> str:
        return self.record.room_name

    def info(self) -> proto_models.ParticipantInfo:
        return self.record.to_proto()

    def others(self) -> list[proto_models.ParticipantInfo]:
        """The other participants this one may see (hidden ones excluded), in join order."""
        return [
            p.record.to_proto()
            for p in self._manager._members(self.room_name)
            if p is not self and not p.record.permission.hidden
        ]

    async def room(self) -> proto_models.Room:
        return await self._manager.get_room(self.room_name)

    def publish(self, raw: bytes, reliable: bool = True) -> RoutedPacket:
        """Bytes from a data channel: parse, apply the rules, deliver. Returns what happened."""
        try:
            packet = parse_packet(raw, self._manager.max_packet_bytes)
        except ValueError as exc:
            log.warning("room %s: dropped data from %s (%s): %s", self.room_name, self.identity, self.sid, exc)
            return RoutedPacket(dropped=str(exc))
        return self.publish_packet(packet, reliable)

    def publish_packet(self, packet: proto_models.DataPacket, reliable: bool = True) -> RoutedPacket:
        return self._manager._route(self, packet, reliable)

    def publish_dtmf(self, code: int, digit: str = "", destination_identities: Iterable[str] = ()) -> RoutedPacket:
        """Send ``SipDTMF{code, digit}`` into the room (digit defaults to the canonical one)."""
        packet = proto_models.DataPacket(
            sip_dtmf=proto_models.SipDTMF(code=code, digit=digit or digit_for(code)),
            destination_identities=list(destination_identities),
            sequence=self._next_sequence(),
        )
        return self.publish_packet(packet, True)

    def publish_data(
        self,
        payload: bytes,
        *,
        topic: str | None = None,
        reliable: bool = True,
        destination_identities: Iterable[str] = (),
    ) -> RoutedPacket:
        user = proto_models.UserPacket(payload=payload)
        if topic is not None:
            user.topic = topic
        packet = proto_models.DataPacket(
            user=user,
            destination_identities=list(destination_identities),
            sequence=self._next_sequence() if reliable else 0,
        )
        return self.publish_packet(packet, reliable)

    def _next_sequence(self) -> int:
        return self.last_reliable_sequence + 1

    async def update(
        self,
        *,
        name: str | None = None,
        metadata: str | None = None,
        attributes: Mapping[str, str] | None = None,
        permission: Permission | None = None,
    ) -> proto_models.ParticipantInfo:
        return await self._manager.update_participant(
            self.room_name, self.identity, name=name, metadata=metadata, attributes=attributes, permission=permission
        )

    async def leave(self, reason: int = DisconnectReason.CLIENT_INITIATED) -> None:
        """This participant leaves (its endpoint is not told: it asked)."""
        await self._manager._leave(self, reason, notify_endpoint=False)

    async def publish_track(self, track: proto_models.TrackInfo, media: Any) -> None:
        """Announce a track (``TrackInfo`` with a ``TR_`` sid) and offer its media to the others."""
        await self._manager.publish_track(self, track, media)

    async def unpublish_track(self, track_sid: str) -> None:
        await self._manager.unpublish_track(self, track_sid)


class RoomManager:
    """All rooms on this node. See :mod:`roomtone.rooms` for the API summary."""

    def __init__(
        self,
        store: RoomStore | None = None,
        *,
        empty_timeout: int = 300,
        departure_timeout: int = 20,
        max_participants: int = 0,
        max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES,
        auto_create: bool = True,
    ) -> None:
        self.store = store or MemoryRoomStore()
        self.empty_timeout = empty_timeout
        self.departure_timeout = departure_timeout
        self.max_participants = max_participants
        self.max_packet_bytes = max_packet_bytes
        self.auto_create = auto_create
        self._local: dict[str, dict[str, Participant]] = {}  # room -> sid -> participant
        self._lock = asyncio.Lock()
        self._close_timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- rooms ---------------------------------------------------------------------------------
    async def create_room(
        self,
        name: str,
        *,
        empty_timeout: int | None = None,
        departure_timeout: int | None = None,
        max_participants: int | None = None,
        metadata: str = "",
    ) -> proto_models.Room:
        """Create a room, or return the existing one unchanged (as LiveKit's CreateRoom does)."""
        if not name:
            raise RoomError("no room name")
        async with self._lock:
            room = await self._ensure_room(name, empty_timeout, departure_timeout, max_participants, metadata)
        return self._room_proto(room)

    async def _ensure_room(
        self,
        name: str,
        empty_timeout: int | None = None,
        departure_timeout: int | None = None,
        max_participants: int | None = None,
        metadata: str = "",
    ) -> RoomRecord:
        room = await self.store.get_room(name)
        if room is not None:
            return room
        room = RoomRecord(
            name=name,
            metadata=metadata,
            empty_timeout=self.empty_timeout if empty_timeout is None else empty_timeout,
            departure_timeout=self.departure_timeout if departure_timeout is None else departure_timeout,
            max_participants=self.max_participants if max_participants is None else max_participants,
        )
        await self.store.save_room(room)
        self._local.setdefault(name, {})
        log.info("room %s (%s) created", name, room.sid)
        self._schedule_close(name, room.empty_timeout)
        return room

    async def get_room(self, name: str) -> proto_models.Room:
        room = await self.store.get_room(name)
        if room is None:
            raise RoomNotFound()
        return self._room_proto(room)

    async def list_rooms(self, names: Iterable[str] | None = None) -> list[proto_models.Room]:
        wanted = set(names) if names else None
        return [self._room_proto(r) for r in await self.store.list_rooms() if wanted is None or r.name in wanted]

    async def delete_room(self, name: str) -> None:
        """Close a room: every participant is removed (ROOM_DELETED) and the room forgotten."""
        async with self._lock:
            if await self.store.get_room(name) is None:
                raise RoomNotFound()
            for p in list(self._members(name)):
                await self._leave_locked(p, DisconnectReason.ROOM_DELETED, notify_endpoint=True, broadcast=False)
            await self.store.delete_room(name)
            self._local.pop(name, None)
            self._cancel_close(name)
        log.info("room %s deleted", name)

    async def update_room_metadata(self, name: str, metadata: str) -> proto_models.Room:
        async with self._lock:
            room = await self.store.get_room(name)
            if room is None:
                raise RoomNotFound()
            room.metadata = metadata
            room.version += 1
            await self.store.save_room(room)
        info = self._room_proto(room)
        for p in self._members(name):
            self._call(p, p.endpoint.room_changed, info)
        return info

    # ---- participants --------------------------------------------------------------------------
    async def join(
        self,
        room_name: str,
        identity: str,
        *,
        endpoint: ParticipantEndpoint,
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        kind: ParticipantKind | int = ParticipantKind.STANDARD,
        permission: Permission | None = None,
        client_protocol: int = 0,
        room_config: Mapping[str, Any] | None = None,
    ) -> Participant:
        """Add a participant; creates the room if needed (with ``room_config``: ``empty_timeout``,
        ``departure_timeout``, ``max_participants``, ``metadata``, as a token's ``roomConfig``
        carries them). An existing participant with the same identity is replaced (its endpoint
        gets ``closed(DUPLICATE_IDENTITY)``)."""
        if not room_name:
            raise RoomError("no room name")
        if not identity:
            raise RoomError("participant identity cannot be empty")
        async with self._lock:
            room = await self.store.get_room(room_name)
            if room is None:
                if not self.auto_create:
                    raise RoomNotFound()
                rc = room_config or {}
                room = await self._ensure_room(
                    room_name,
                    rc.get("empty_timeout"),
                    rc.get("departure_timeout"),
                    rc.get("max_participants"),
                    str(rc.get("metadata") or ""),
                )
            for old in [p for p in self._members(room_name) if p.identity == identity]:
                log.info("room %s: %s joins again; replacing %s", room_name, identity, old.sid)
                await self._leave_locked(old, DisconnectReason.DUPLICATE_IDENTITY, notify_endpoint=True)
            members = self._members(room_name)
            if room.max_participants and len(members) >= room.max_participants:
                raise RoomFull()
            record = ParticipantRecord(
                sid=new_sid("PA_"),
                identity=identity,
                room_name=room_name,
                name=name,
                metadata=metadata,
                attributes=dict(attributes or {}),
                kind=ParticipantKind(int(kind)),
                permission=permission or Permission(),
                state=ParticipantState.ACTIVE,
                client_protocol=client_protocol,
            )
            await self.store.save_participant(record)
            participant = Participant(self, record, endpoint)
            self._local.setdefault(room_name, {})[record.sid] = participant
            self._cancel_close(room_name)
        log.info(
            "room %s: %s (%s, kind %s) joined",
            room_name,
            identity,
            record.sid,
            ParticipantKind(record.kind).name.lower(),
        )
        if not record.permission.hidden:
            self._broadcast_update(room_name, [record.to_proto()], exclude=participant)
        return participant

    async def add_sip_participant(
        self,
        room_name: str,
        identity: str,
        *,
        on_data: Callable[[proto_models.DataPacket], Any],
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        on_participants: Callable[[list[proto_models.ParticipantInfo]], Any] | None = None,
        on_room: Callable[[proto_models.Room], Any] | None = None,
        on_close: Callable[[int], Any] | None = None,
        on_track: Callable[[Participant, proto_models.TrackInfo, Any], Any] | None = None,
        on_track_removed: Callable[[Participant, str], Any] | None = None,
        permission: Permission | None = None,
        data_kinds: Iterable[str] | None = None,
        data_from_sip: bool = True,
    ) -> Participant:
        """A server-side participant of kind SIP. ``on_data(packet)`` receives every routed packet
        addressed to it (``packet.WhichOneof("value") == "sip_dtmf"`` for tones), or only those of
        ``data_kinds`` when given (for example ``{"sip_dtmf"}``), and none sent by other SIP
        participants when ``data_from_sip`` is False; it publishes with
        :meth:`Participant.publish_dtmf` / ``publish_data`` / ``publish_packet``; ``on_close(reason)``
        tells it the server removed it (API, room deleted, duplicate identity)."""
        endpoint = CallbackEndpoint(
            on_data=on_data,
            on_participants=on_participants,
            on_room=on_room,
            on_close=on_close,
            on_track=on_track,
            on_track_removed=on_track_removed,
            data_kinds=frozenset(data_kinds) if data_kinds is not None else None,
            data_from_sip=data_from_sip,
        )
        return await self.join(
            room_name,
            identity,
            endpoint=endpoint,
            name=name,
            metadata=metadata,
            attributes=attributes,
            kind=ParticipantKind.SIP,
            permission=permission or Permission(can_subscribe=True, can_publish=True, can_publish_data=True),
        )

    def participant(self, room_name: str, identity: str) -> Participant | None:
        """The local handle for a participant connected to this node, if any."""
        for p in self._members(room_name):
            if p.identity == identity:
                return p
        return None

    async def list_participants(self, room_name: str) -> list[proto_models.ParticipantInfo]:
        if await self.store.get_room(room_name) is None:
            raise RoomNotFound()
        return [r.to_proto() for r in await self.store.list_participants(room_name)]

    async def get_participant(self, room_name: str, identity: str) -> proto_models.ParticipantInfo:
        record = await self.store.get_participant(room_name, identity)
        if record is None:
            raise ParticipantNotFound()
        return record.to_proto()

    async def remove_participant(self, room_name: str, identity: str) -> None:
        """Kick a participant (PARTICIPANT_REMOVED); its endpoint is told to close."""
        p = self.participant(room_name, identity)
        if p is None:
            raise ParticipantNotFound()
        await self._leave(p, DisconnectReason.PARTICIPANT_REMOVED, notify_endpoint=True)

    async def update_participant(
        self,
        room_name: str,
        identity: str,
        *,
        name: str | None = None,
        metadata: str | None = None,
        attributes: Mapping[str, str] | None = None,
        permission: Permission | None = None,
    ) -> proto_models.ParticipantInfo:
        """Change name/metadata/permission; ``attributes`` are merged, an empty value deletes a key.
        Everyone in the room (including the participant) receives the new ParticipantInfo."""
        p = self.participant(room_name, identity)
        if p is None:
            raise ParticipantNotFound()
        record = p.record
        if name is not None:
            record.name = name
        if metadata is not None:
            record.metadata = metadata
        if attributes:
            for k, v in attributes.items():
                if v:
                    record.attributes[k] = v
                else:
                    record.attributes.pop(k, None)
        revoked_tracks: list[str] = []
        if permission is not None:
            if not permission.can_publish and p.media:
                revoked_tracks = list(p.media)  # LiveKit unpublishes when canPublish is taken away
                record.tracks = [t for t in record.tracks if t.sid not in p.media]
                p.media.clear()
            record.permission = permission
        record.version += 1
        await self.store.save_participant(record)
        info = record.to_proto()
        if record.permission.hidden:
            self._call(p, p.endpoint.participants_changed, [info])
        else:
            self._broadcast_update(room_name, [info], exclude=None)
        if revoked_tracks:
            log.info("room %s: %s may no longer publish; unpublished %s", room_name, identity, revoked_tracks)
            self._announce_unpublished(p, revoked_tracks)
        return info

    # ---- media ---------------------------------------------------------------------------------
    async def publish_track(self, p: Participant, track: proto_models.TrackInfo, media: Any) -> None:
        """Record the track, send everyone the updated ParticipantInfo (before any media arrives,
        which the Rust SDK needs), then offer the media to the other endpoints."""
        if not p.active:
            return
        p.record.tracks = [t for t in p.record.tracks if t.sid != track.sid] + [track]
        p.media[track.sid] = media
        p.record.version += 1
        await self.store.save_participant(p.record)
        log.info("room %s: %s (%s) published %s track %s", p.room_name, p.identity, p.sid,
                 proto_models.TrackType.Name(track.type).lower(), track.sid)
        if not p.record.permission.hidden:
            self._broadcast_update(p.room_name, [p.record.to_proto()], exclude=None)
        for other in self._members(p.room_name):
            if other is not p:
                hook = getattr(other.endpoint, "track_published", None)
                if hook is not None:
                    self._call(other, hook, p, track, media)

    async def unpublish_track(self, p: Participant, track_sid: str) -> None:
        if track_sid not in p.media and not any(t.sid == track_sid for t in p.record.tracks):
            return
        p.record.tracks = [t for t in p.record.tracks if t.sid != track_sid]
        p.media.pop(track_sid, None)
        p.record.version += 1
        await self.store.save_participant(p.record)
        if not p.record.permission.hidden:
            self._broadcast_update(p.room_name, [p.record.to_proto()], exclude=None)
        self._announce_unpublished(p, [track_sid])

    def _announce_unpublished(self, p: Participant, track_sids: list[str]) -> None:
        for other in self._members(p.room_name):
            if other is not p:
                hook = getattr(other.endpoint, "track_unpublished", None)
                if hook is not None:
                    for sid in track_sids:
                        self._call(other, hook, p, sid)

    def published_tracks(self, room_name: str) -> list[tuple[Participant, proto_models.TrackInfo, Any]]:
        """Every track with media on this node: what a newly joined subscriber should receive."""
        return [
            (p, t, p.media[t.sid])
            for p in self._members(room_name)
            for t in p.record.tracks
            if t.sid in p.media
        ]

    # ---- data ----------------------------------------------------------------------------------
    async def send_data(
        self,
        room_name: str,
        payload: bytes,
        *,
        reliable: bool = True,
        destination_identities: Iterable[str] = (),
        topic: str | None = None,
    ) -> RoutedPacket:
        """Server-originated user data (RoomService.SendData): no sender identity is stamped."""
        user = proto_models.UserPacket(payload=payload, destination_identities=list(destination_identities))
        if topic is not None:
            user.topic = topic
        packet = proto_models.DataPacket(user=user, destination_identities=list(destination_identities))
        return await self.send_packet(room_name, packet, reliable=reliable)

    async def send_packet(
        self, room_name: str, packet: proto_models.DataPacket, *, reliable: bool = True
    ) -> RoutedPacket:
        """Route any server-originated packet (for example ``sip_dtmf``) into a room."""
        if await self.store.get_room(room_name) is None:
            raise RoomNotFound()
        return self._route(None, packet, reliable, room_name=room_name)

    def _route(
        self,
        sender: Participant | None,
        packet: proto_models.DataPacket,
        reliable: bool,
        room_name: str | None = None,
    ) -> RoutedPacket:
        room_name = sender.room_name if sender else room_name
        assert room_name is not None
        if sender is not None and not sender.active:
            return RoutedPacket(dropped="sender has left the room")
        members = [p.record for p in self._members(room_name)]
        routed = route_packet(
            sender.record if sender else None,
            packet,
            members,
            reliable=reliable,
            last_sequence=sender.last_reliable_sequence if sender else 0,
            max_bytes=self.max_packet_bytes,
        )
        if routed.dropped:
            who = f"{sender.identity} ({sender.sid})" if sender else "the server"
            # One line per drop for the first ones, then one per 100: a misbehaving client must
            # not flood the log, and the count still tells how much was lost.
            count = 1
            if sender is not None:
                sender.dropped_packets += 1
                count = sender.dropped_packets
            if count <= 20 or count % 100 == 0:
                log.warning(
                    "room %s: dropped data from %s: %s%s",
                    room_name,
                    who,
                    routed.dropped,
                    f" ({count} packets dropped so far)" if count > 20 else "",
                )
            return routed
        assert routed.packet is not None
        if sender is not None and reliable and routed.packet.sequence > 0:
            sender.last_reliable_sequence = routed.packet.sequence
        by_sid = self._local.get(room_name, {})
        which = routed.kind
        from_sip = sender is not None and sender.record.kind == ParticipantKind.SIP
        for record in routed.recipients:
            target = by_sid.get(record.sid)
            if target is None:
                continue
            endpoint = target.endpoint
            kinds = getattr(endpoint, "data_kinds", None)
            if (kinds is not None and which not in kinds) or (from_sip and not getattr(endpoint, "data_from_sip", True)):
                continue
            self._call(target, endpoint.deliver_data, routed.packet, routed.payload, reliable)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "room %s: %s from %s -> %s",
                room_name,
                routed.packet.WhichOneof("value"),
                f"{sender.identity} ({sender.sid})" if sender else "the server",
                [r.identity for r in routed.recipients],
            )
        return routed

    # ---- leaving and closing -------------------------------------------------------------------
    async def _leave(self, p: Participant, reason: int, *, notify_endpoint: bool) -> None:
        async with self._lock:
            await self._leave_locked(p, reason, notify_endpoint=notify_endpoint)

    async def _leave_locked(
        self, p: Participant, reason: int, *, notify_endpoint: bool, broadcast: bool = True
    ) -> None:
        if not p.active:
            return
        p.active = False
        room_name = p.room_name
        self._local.get(room_name, {}).pop(p.sid, None)
        current = await self.store.get_participant(room_name, p.identity)
        if current is not None and current.sid == p.sid:
            await self.store.delete_participant(room_name, p.identity)
        p.record.state = ParticipantState.DISCONNECTED
        p.record.disconnect_reason = int(reason)
        p.record.version += 1
        log.info(
            "room %s: %s (%s) left: %s",
            room_name,
            p.identity,
            p.sid,
            DisconnectReason.Name(reason) if reason in DisconnectReason.values() else reason,
        )
        if notify_endpoint:
            self._call(p, p.endpoint.closed, reason)
        if p.media:
            self._announce_unpublished(p, list(p.media))
            p.media.clear()
        if broadcast and not p.record.permission.hidden:
            self._broadcast_update(room_name, [p.record.to_proto()], exclude=p)
        if not self._members(room_name):
            room = await self.store.get_room(room_name)
            if room is not None:
                self._schedule_close(room_name, room.departure_timeout)

    def _schedule_close(self, name: str, delay: float) -> None:
        self._cancel_close(name)
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._close_timers.pop(name, None)
            self.spawn(self._close_if_empty(name))

        self._close_timers[name] = loop.call_later(max(0.0, delay), fire)

    def _cancel_close(self, name: str) -> None:
        timer = self._close_timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    async def _close_if_empty(self, name: str) -> None:
        async with self._lock:
            if self._members(name) or await self.store.get_room(name) is None:
                return
            await self.store.delete_room(name)
            self._local.pop(name, None)
        log.info("room %s closed: empty", name)

    async def close(self) -> None:
        """Shut down: every participant is told SERVER_SHUTDOWN; timers stop."""
        async with self._lock:
            for name in list(self._local):
                for p in list(self._members(name)):
                    await self._leave_locked(p, DisconnectReason.SERVER_SHUTDOWN, notify_endpoint=True, broadcast=False)
            for name in list(self._close_timers):
                self._cancel_close(name)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ---- helpers -------------------------------------------------------------------------------
    def _members(self, room_name: str) -> list[Participant]:
        return list(self._local.get(room_name, {}).values())

    def _room_proto(self, room: RoomRecord) -> proto_models.Room:
        members = self._members(room.name)
        return room.to_proto(
            num_participants=sum(1 for p in members if not p.record.permission.hidden),
            num_publishers=sum(1 for p in members if p.record.tracks),
        )

    def _broadcast_update(
        self, room_name: str, infos: list[proto_models.ParticipantInfo], exclude: Participant | None
    ) -> None:
        for p in self._members(room_name):
            if p is not exclude:
                self._call(p, p.endpoint.participants_changed, infos)

    def _call(self, p: Participant, fn: Callable[..., Any], *args: Any) -> None:
        try:
            result = fn(*args)
        except Exception:
            log.exception("room %s: endpoint of %s (%s) failed in %s", p.room_name, p.identity, p.sid, fn.__name__)
            return
        if result is not None and inspect.isawaitable(result):
            self.spawn(result, f"endpoint of {p.identity} ({p.sid}) in {fn.__name__}")

    def spawn(self, coro: Awaitable[Any], what: str = "room task") -> None:
        """Run ``coro`` as a task the manager keeps (and awaits on close); errors are logged."""
        task = asyncio.ensure_future(_logged(coro, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _logged(awaitable: Awaitable[Any], what: str) -> None:
    try:
        await awaitable
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s failed", what)
