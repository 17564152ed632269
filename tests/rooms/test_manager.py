"""RoomManager: membership, updates, data delivery to server-side (SIP-style) participants."""

import asyncio
import logging

import pytest
from livekit.protocol import models as pm

from roomtone.rooms import (
    CallbackEndpoint,
    ParticipantKind,
    ParticipantNotFound,
    Permission,
    RoomFull,
    RoomManager,
    RoomNotFound,
)


class Recorder:
    def __init__(self):
        self.data, self.updates, self.closed, self.rooms = [], [], [], []

    def endpoint(self):
        return CallbackEndpoint(
            on_data=self.data.append,
            on_participants=self.updates.extend,
            on_close=self.closed.append,
            on_room=self.rooms.append,
        )


async def test_dtmf_between_sip_and_standard_participants_in_order():
    rooms = RoomManager()
    ra, rb = Recorder(), Recorder()
    a = await rooms.join("r", "alice", endpoint=ra.endpoint())
    b = await rooms.add_sip_participant("r", "phone", on_data=rb.data.append)
    assert b.info().kind == ParticipantKind.SIP
    assert [u.identity for u in ra.updates] == ["phone"] and ra.updates[0].state == pm.ParticipantInfo.ACTIVE
    for code in range(17):
        b.publish_dtmf(code)
    assert [(p.sip_dtmf.code, p.participant_identity) for p in ra.data] == [(c, "phone") for c in range(17)]
    assert ra.data[16].sip_dtmf.digit == "R" and [p.sequence for p in ra.data] == list(range(1, 18))
    a.publish_dtmf(5)
    assert rb.data[-1].sip_dtmf.code == 5 and rb.data[-1].participant_sid == a.sid
    await rooms.close()


async def test_a_listener_gets_only_the_data_kinds_it_asked_for():
    rooms = RoomManager()
    agent, everything, tones_only = Recorder(), Recorder(), Recorder()
    a = await rooms.join("r", "agent", endpoint=agent.endpoint())
    await rooms.add_sip_participant("r", "phone1", on_data=everything.data.append)
    await rooms.add_sip_participant("r", "phone2", on_data=tones_only.data.append, data_kinds={"sip_dtmf"})
    a.publish_data(b"hello", topic="chat")
    a.publish_dtmf(7)
    a.publish_data(b"again")
    assert [p.WhichOneof("value") for p in everything.data] == ["user", "sip_dtmf", "user"]
    assert [p.WhichOneof("value") for p in tones_only.data] == ["sip_dtmf"]
    assert tones_only.data[0].sip_dtmf.code == 7
    await rooms.close()


async def test_a_listener_can_refuse_data_from_sip_participants():
    rooms = RoomManager()
    agent, open_phone, closed_phone = Recorder(), Recorder(), Recorder()
    a = await rooms.join("r", "agent", endpoint=agent.endpoint())
    p1 = await rooms.add_sip_participant("r", "phone1", on_data=open_phone.data.append)
    await rooms.add_sip_participant("r", "phone2", on_data=closed_phone.data.append, data_from_sip=False)
    p1.publish_dtmf(3)
    a.publish_dtmf(4)
    assert [p.sip_dtmf.code for p in agent.data] == [3]
    assert [p.sip_dtmf.code for p in closed_phone.data] == [4]
    assert [p.sip_dtmf.code for p in open_phone.data] == [4]
    await rooms.close()


async def test_destinations_and_permission_drop_logged(caplog):
    rooms = RoomManager()
    recs = {n: Recorder() for n in "abc"}
    parts = {n: await rooms.join("r", n, endpoint=recs[n].endpoint()) for n in "ab"}
    parts["c"] = await rooms.join("r", "c", endpoint=recs["c"].endpoint(), permission=Permission(can_publish_data=False))
    parts["a"].publish_dtmf(1, destination_identities=["c"])
    assert len(recs["c"].data) == 1 and recs["b"].data == []
    with caplog.at_level(logging.WARNING, logger="roomtone.rooms"):
        routed = parts["c"].publish_dtmf(2)
    assert routed.dropped and recs["a"].data == [] and recs["b"].data == []
    assert "no canPublishData permission" in caplog.text and "'c'" in caplog.text
    await rooms.close()


async def test_duplicate_identity_replaces_older_and_leave_updates():
    rooms = RoomManager()
    r1, r2, watcher = Recorder(), Recorder(), Recorder()
    await rooms.join("r", "w", endpoint=watcher.endpoint())
    old = await rooms.join("r", "x", endpoint=r1.endpoint())
    new = await rooms.join("r", "x", endpoint=r2.endpoint())
    assert r1.closed == [pm.DisconnectReason.DUPLICATE_IDENTITY]
    assert old.sid != new.sid
    states = [(u.sid, u.state) for u in watcher.updates]
    assert states == [(old.sid, 2), (old.sid, 3), (new.sid, 2)]
    assert [p.sid for p in await rooms.list_participants("r") if p.identity == "x"] == [new.sid]
    await new.leave()
    assert watcher.updates[-1].state == pm.ParticipantInfo.DISCONNECTED and watcher.updates[-1].sid == new.sid
    assert r2.closed == []  # it asked to leave: not told again
    await rooms.close()


async def test_admin_api_update_remove_metadata_and_errors():
    rooms = RoomManager()
    ra, rb = Recorder(), Recorder()
    await rooms.create_room("r", max_participants=2, metadata="m0")
    await rooms.join("r", "a", endpoint=ra.endpoint())
    await rooms.join("r", "b", endpoint=rb.endpoint(), attributes={"k": "v", "gone": "1"})
    with pytest.raises(RoomFull):
        await rooms.join("r", "c", endpoint=Recorder().endpoint())
    info = await rooms.update_participant("r", "b", metadata="hello", attributes={"gone": "", "n": "2"})
    assert info.metadata == "hello" and dict(info.attributes) == {"k": "v", "n": "2"} and info.version == 2
    assert ra.updates[-1].metadata == "hello" and rb.updates[-1].metadata == "hello"  # self too
    room = await rooms.update_room_metadata("r", "m1")
    assert room.metadata == "m1" and ra.rooms[-1].metadata == "m1" and room.num_participants == 2
    await rooms.remove_participant("r", "b")
    assert rb.closed == [pm.DisconnectReason.PARTICIPANT_REMOVED]
    with pytest.raises(ParticipantNotFound):
        await rooms.get_participant("r", "b")
    with pytest.raises(RoomNotFound):
        await rooms.list_participants("nope")
    routed = await rooms.send_data("r", b"hi", topic="t")
    assert [r.identity for r in routed.recipients] == ["a"] and ra.data[-1].user.payload == b"hi"
    await rooms.delete_room("r")
    assert ra.closed == [pm.DisconnectReason.ROOM_DELETED]
    assert await rooms.list_rooms() == []
    await rooms.close()


async def test_room_closes_after_departure_timeout_and_empty_timeout():
    rooms = RoomManager(departure_timeout=0, empty_timeout=0)
    p = await rooms.join("r", "a", endpoint=Recorder().endpoint())
    await p.leave()
    for _ in range(50):
        if not await rooms.list_rooms():
            break
        await asyncio.sleep(0.01)
    assert await rooms.list_rooms() == []
    await rooms.create_room("never-joined")
    for _ in range(50):
        if not await rooms.list_rooms():
            break
        await asyncio.sleep(0.01)
    assert await rooms.list_rooms() == []
    await rooms.close()


async def test_failing_endpoint_does_not_break_the_room(caplog):
    rooms = RoomManager()

    def boom(_pkt):
        raise RuntimeError("endpoint broke")

    ok = Recorder()
    a = await rooms.join("r", "a", endpoint=Recorder().endpoint())
    await rooms.add_sip_participant("r", "bad", on_data=boom)
    await rooms.join("r", "good", endpoint=ok.endpoint())
    a.publish_dtmf(9)
    assert ok.data[-1].sip_dtmf.code == 9
    assert "endpoint broke" in caplog.text
    await rooms.close()


async def test_drop_warnings_are_rate_limited_but_counted(caplog):
    rooms = RoomManager()
    r = Recorder()
    await rooms.join("r", "ok", endpoint=r.endpoint())
    bad = await rooms.join("r", "bad", endpoint=Recorder().endpoint(), permission=Permission(can_publish_data=False))
    with caplog.at_level(logging.WARNING, logger="roomtone.rooms"):
        for _ in range(250):
            bad.publish_dtmf(1)
    lines = [rec for rec in caplog.records if "dropped data from bad" in rec.getMessage()]
    assert len(lines) == 22 and "(200 packets dropped so far)" in lines[-1].getMessage()
    assert bad.dropped_packets == 250 and r.data == []
    await rooms.close()


async def test_media_publication_reaches_present_and_late_endpoints():
    rooms = RoomManager()
    seen, removed = [], []
    ep = CallbackEndpoint(on_track=lambda p, t, m: seen.append((p.identity, t.sid, m)),
                          on_track_removed=lambda p, sid: removed.append((p.identity, sid)))
    await rooms.join("r", "listener", endpoint=ep)
    phone = await rooms.add_sip_participant("r", "phone", on_data=lambda pkt: None)
    track = pm.TrackInfo(sid="TR_x", type=pm.AUDIO, source=pm.TrackSource.MICROPHONE)
    media = object()
    await phone.publish_track(track, media)
    assert seen == [("phone", "TR_x", media)]
    assert [(p.identity, t.sid) for p, t, _ in rooms.published_tracks("r")] == [("phone", "TR_x")]
    assert (await rooms.get_participant("r", "phone")).tracks[0].sid == "TR_x"
    await phone.leave()
    assert removed == [("phone", "TR_x")] and rooms.published_tracks("r") == []
    await rooms.close()


async def test_revoking_can_publish_unpublishes_tracks():
    rooms = RoomManager()
    removed = []
    await rooms.join("r", "l", endpoint=CallbackEndpoint(on_track_removed=lambda p, sid: removed.append(sid)))
    pub = await rooms.join("r", "p", endpoint=Recorder().endpoint())
    await pub.publish_track(pm.TrackInfo(sid="TR_1", type=pm.AUDIO), object())
    info = await rooms.update_participant("r", "p", permission=Permission(can_publish=False))
    assert removed == ["TR_1"] and list(info.tracks) == [] and rooms.published_tracks("r") == []
    await rooms.close()
