"""Room and participant records: plain, serialisable state (what a multi-node store would persist).

The wire shapes are livekit-protocol's ``Room`` and ``ParticipantInfo``; these records convert to
them with ``to_proto()``. Connection objects (WebSockets, PeerConnections, SIP calls) never live
here: they are :class:`~roomtone.rooms.manager.ParticipantEndpoint` objects held by the node that
owns the connection.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass, field, replace
from enum import IntEnum

from livekit.protocol import models as proto_models

_ALPHABET = string.ascii_letters + string.digits


def new_sid(prefix: str) -> str:
    """LiveKit-style ids: ``PA_`` participants, ``RM_`` rooms, ``TR_`` tracks (12 random chars)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(12))


class ParticipantKind(IntEnum):
    """``ParticipantInfo.Kind`` values."""

    STANDARD = 0
    INGRESS = 1
    EGRESS = 2
    SIP = 3
    AGENT = 4
    CONNECTOR = 7
    BRIDGE = 8

    @classmethod
    def from_claim(cls, value: str | int | None) -> ParticipantKind:
        """The token's ``kind`` claim ("standard", "sip", "agent", ...); unknown values are STANDARD."""
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                return cls.STANDARD
        name = (value or "").strip().upper()
        return cls.__members__.get(name, cls.STANDARD)


class ParticipantState(IntEnum):
    JOINING = 0
    JOINED = 1
    ACTIVE = 2
    DISCONNECTED = 3


@dataclass(frozen=True)
class Permission:
    """What a participant may do; from the token's video grant, changeable through the API."""

    can_subscribe: bool = True
    can_publish: bool = True
    can_publish_data: bool = True
    can_publish_sources: tuple[int, ...] = ()
    hidden: bool = False
    recorder: bool = False
    can_update_metadata: bool = False
    agent: bool = False

    def to_proto(self) -> proto_models.ParticipantPermission:
        return proto_models.ParticipantPermission(
            can_subscribe=self.can_subscribe,
            can_publish=self.can_publish,
            can_publish_data=self.can_publish_data,
            can_publish_sources=list(self.can_publish_sources),  # type: ignore[arg-type]
            hidden=self.hidden,
            recorder=self.recorder,
            can_update_metadata=self.can_update_metadata,
            agent=self.agent,
        )

    @classmethod
    def from_proto(cls, p: proto_models.ParticipantPermission) -> Permission:
        return cls(
            can_subscribe=p.can_subscribe,
            can_publish=p.can_publish,
            can_publish_data=p.can_publish_data,
            can_publish_sources=tuple(p.can_publish_sources),
            hidden=p.hidden,
            recorder=p.recorder,
            can_update_metadata=p.can_update_metadata,
            agent=p.agent,
        )


@dataclass
class ParticipantRecord:
    """One participant's state. ``version`` grows on every change clients must learn about."""

    sid: str
    identity: str
    room_name: str
    name: str = ""
    metadata: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    kind: ParticipantKind = ParticipantKind.STANDARD
    permission: Permission = field(default_factory=Permission)
    state: ParticipantState = ParticipantState.ACTIVE
    joined_at_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    version: int = 1
    tracks: list[proto_models.TrackInfo] = field(default_factory=list)
    client_protocol: int = 0
    disconnect_reason: int = 0

    def to_proto(self) -> proto_models.ParticipantInfo:
        return proto_models.ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.name,
            metadata=self.metadata,
            attributes=dict(self.attributes),
            kind=int(self.kind),  # type: ignore[arg-type]
            state=int(self.state),  # type: ignore[arg-type]
            joined_at=self.joined_at_ms // 1000,
            joined_at_ms=self.joined_at_ms,
            version=self.version,
            permission=self.permission.to_proto(),
            is_publisher=bool(self.tracks),
            tracks=list(self.tracks),
            client_protocol=self.client_protocol,
            disconnect_reason=self.disconnect_reason,  # type: ignore[arg-type]
        )

    def copy(self) -> ParticipantRecord:
        tracks = []
        for t in self.tracks:  # protobuf messages are mutable: copy them too
            clone = proto_models.TrackInfo()
            clone.CopyFrom(t)
            tracks.append(clone)
        return replace(self, attributes=dict(self.attributes), tracks=tracks)


@dataclass
class RoomRecord:
    """One room's state. ``empty_timeout``: seconds a never-joined room lives; ``departure_timeout``:
    seconds a room lives after its last participant left (LiveKit's defaults: 300 and 20)."""

    name: str
    sid: str = field(default_factory=lambda: new_sid("RM_"))
    metadata: str = ""
    empty_timeout: int = 300
    departure_timeout: int = 20
    max_participants: int = 0  # 0 = unlimited
    creation_time_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    version: int = 1

    def to_proto(self, num_participants: int = 0, num_publishers: int = 0) -> proto_models.Room:
        return proto_models.Room(
            sid=self.sid,
            name=self.name,
            metadata=self.metadata,
            empty_timeout=self.empty_timeout,
            departure_timeout=self.departure_timeout,
            max_participants=self.max_participants,
            creation_time=self.creation_time_ms // 1000,
            creation_time_ms=self.creation_time_ms,
            num_participants=num_participants,
            num_publishers=num_publishers,
        )

    def copy(self) -> RoomRecord:
        return replace(self)
