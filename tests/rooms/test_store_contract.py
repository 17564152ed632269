"""The RoomStore contract. A new backend (Redis, ...) joins ``BACKENDS`` and must pass unchanged."""

from __future__ import annotations

import pytest

from roomtone.rooms import MemoryRoomStore, ParticipantRecord, Permission, RoomRecord

BACKENDS = {"memory": MemoryRoomStore}


@pytest.fixture(params=sorted(BACKENDS))
def store(request):
    return BACKENDS[request.param]()


async def test_rooms_round_trip_and_copies(store):
    room = RoomRecord(name="r", metadata="m", max_participants=3)
    await store.save_room(room)
    got = await store.get_room("r")
    assert (got.name, got.sid, got.metadata, got.max_participants) == ("r", room.sid, "m", 3)
    got.metadata = "changed locally"
    assert (await store.get_room("r")).metadata == "m"  # callers get copies
    assert [r.name for r in await store.list_rooms()] == ["r"]
    assert await store.get_room("missing") is None


async def test_participants_in_join_order_and_deleted_with_room(store):
    await store.save_room(RoomRecord(name="r"))
    for i, name in enumerate(["b", "a", "c"]):
        await store.save_participant(ParticipantRecord(sid=f"PA_{name}", identity=name, room_name="r", joined_at_ms=1000 + i,
                                                       attributes={"k": name}, permission=Permission(hidden=name == "c")))
    assert [p.identity for p in await store.list_participants("r")] == ["b", "a", "c"]
    a = await store.get_participant("r", "a")
    assert a.attributes == {"k": "a"} and a.permission.hidden is False
    a.attributes["k"] = "mutated"
    assert (await store.get_participant("r", "a")).attributes == {"k": "a"}
    await store.delete_participant("r", "a")
    assert await store.get_participant("r", "a") is None
    await store.delete_room("r")
    assert await store.list_participants("r") == [] and await store.get_room("r") is None
