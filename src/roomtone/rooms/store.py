"""Where room state lives: the :class:`RoomStore` interface and its in-memory implementation.

The store holds only serialisable records (:mod:`roomtone.rooms.model`). Live connections stay on
the node that owns them (see :class:`roomtone.rooms.manager.RoomManager`). A multi-node backend
(Redis: hashes per room for records, pub/sub per room for packets and updates) implements this
interface and the manager's ``_fanout`` hook; nothing above the manager changes.
"""

from __future__ import annotations

import abc

from roomtone.rooms.model import ParticipantRecord, RoomRecord


class RoomStore(abc.ABC):
    """Async so that networked backends fit; every method returns copies, never shared objects."""

    @abc.abstractmethod
    async def get_room(self, name: str) -> RoomRecord | None: ...

    @abc.abstractmethod
    async def save_room(self, room: RoomRecord) -> None: ...

    @abc.abstractmethod
    async def delete_room(self, name: str) -> None:
        """Remove the room and all its participant records."""

    @abc.abstractmethod
    async def list_rooms(self) -> list[RoomRecord]: ...

    @abc.abstractmethod
    async def get_participant(self, room: str, identity: str) -> ParticipantRecord | None: ...

    @abc.abstractmethod
    async def save_participant(self, record: ParticipantRecord) -> None: ...

    @abc.abstractmethod
    async def delete_participant(self, room: str, identity: str) -> None: ...

    @abc.abstractmethod
    async def list_participants(self, room: str) -> list[ParticipantRecord]:
        """In join order."""


class MemoryRoomStore(RoomStore):
    """Single-node store: dicts in this process."""

    def __init__(self) -> None:
        self._rooms: dict[str, RoomRecord] = {}
        self._participants: dict[str, dict[str, ParticipantRecord]] = {}

    async def get_room(self, name: str) -> RoomRecord | None:
        room = self._rooms.get(name)
        return room.copy() if room else None

    async def save_room(self, room: RoomRecord) -> None:
        self._rooms[room.name] = room.copy()
        self._participants.setdefault(room.name, {})

    async def delete_room(self, name: str) -> None:
        self._rooms.pop(name, None)
        self._participants.pop(name, None)

    async def list_rooms(self) -> list[RoomRecord]:
        return [r.copy() for r in self._rooms.values()]

    async def get_participant(self, room: str, identity: str) -> ParticipantRecord | None:
        p = self._participants.get(room, {}).get(identity)
        return p.copy() if p else None

    async def save_participant(self, record: ParticipantRecord) -> None:
        self._participants.setdefault(record.room_name, {})[record.identity] = record.copy()

    async def delete_participant(self, room: str, identity: str) -> None:
        self._participants.get(room, {}).pop(identity, None)

    async def list_participants(self, room: str) -> list[ParticipantRecord]:
        return sorted((p.copy() for p in self._participants.get(room, {}).values()), key=lambda p: p.joined_at_ms)
