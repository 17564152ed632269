"""Rooms, participants and data routing: the seam where more than one node plugs in.

Layout:

* :mod:`.model`: serialisable records (``RoomRecord``, ``ParticipantRecord``, ``Permission``,
  ``ParticipantKind``) that convert to livekit-protocol ``Room`` / ``ParticipantInfo``.
* :mod:`.routing`: the pure data-packet rules (stamping, destinations, canPublishData, sizes,
  sequence), unit-tested without WebRTC.
* :mod:`.store`: ``RoomStore`` (abstract, async) and ``MemoryRoomStore``. A Redis backend
  implements ``RoomStore``; live connections never enter the store.
* :mod:`.manager`: ``RoomManager``, the asyncio adapter every transport uses.

API for other transports (telephony, the HTTP API), all on one ``RoomManager`` (the server's is
``app[roomtone.server.ROOMS]``)::

    from roomtone.rooms import RoomManager, RoomError, RoomNotFound, ParticipantNotFound, Permission

    # (a) a server-side SIP participant
    p = await rooms.add_sip_participant(
        "room", "sip_+15550100", name="Caller", attributes={"sip.callStatus": "active"},
        on_data=lambda pkt: ...,            # every DataPacket routed to it; pkt.sip_dtmf.code/.digit,
                                            # pkt.participant_identity = the sender (stamped)
        on_participants=lambda infos: ...,  # optional: ParticipantInfo updates of the others
        on_close=lambda reason: ...,        # optional: removed by the server (DisconnectReason int)
    )
    p.publish_dtmf(5)                              # SipDTMF{code 5, digit "5"} to everyone else
    p.publish_dtmf(11, "#", destination_identities=["agent"])
    p.publish_data(b"...", topic="t", reliable=True, destination_identities=[])
    await p.update(metadata="...", attributes={"sip.callStatus": "hangup"})
    await p.leave()                                # DISCONNECTED update to the others
    p.sid, p.identity, p.room_name, p.info(), p.others()

    # media (audio): publish an aiortc MediaStreamTrack; WebRTC subscribers get it relayed
    await p.publish_track(models.TrackInfo(sid=new_sid("TR_"), type=models.AUDIO,
                                           source=models.TrackSource.MICROPHONE, name="phone"), track)
    await p.unpublish_track(track_sid)
    # receive others' audio: pass on_track=(publisher, TrackInfo, media) and on_track_removed=
    # (publisher, track_sid) to add_sip_participant; read your own copy with
    # roomtone.rtc.media.subscribe(media) (a MediaStreamTrack of av.AudioFrame; from WebRTC
    # publishers: Opus decoded to 48 kHz s16 stereo, 20 ms);
    # rooms.published_tracks(room) lists what is already published.

    # (b) room administration (RoomService)
    await rooms.create_room(name, empty_timeout=..., departure_timeout=..., max_participants=..., metadata="")
    await rooms.list_rooms(names=None) -> list[models.Room];  await rooms.get_room(name)
    await rooms.delete_room(name)                           # everyone removed (ROOM_DELETED)
    await rooms.update_room_metadata(name, metadata) -> models.Room
    await rooms.list_participants(room) -> list[models.ParticipantInfo]
    await rooms.get_participant(room, identity) -> models.ParticipantInfo
    await rooms.remove_participant(room, identity)          # PARTICIPANT_REMOVED
    await rooms.update_participant(room, identity, name=, metadata=, attributes=, permission=)
    await rooms.send_data(room, payload, reliable=True, destination_identities=(), topic=None)
    await rooms.send_packet(room, models.DataPacket(sip_dtmf=...))   # server-originated, any kind
    rooms.participant(room, identity) -> Participant | None          # local handle

Errors are :class:`RoomError` subclasses with ``.status`` (HTTP) and ``.code`` (twirp):
``RoomNotFound`` ("requested room does not exist"), ``ParticipantNotFound`` ("participant does
not exist"), ``RoomFull``. Publishing returns a ``RoutedPacket``: ``.dropped`` is the reason when
the rules refused it (also logged at WARNING), else ``.recipients`` lists who got it.

Callbacks may be plain functions (called in routing order, must not block) or return an
awaitable (run as a task). A callback that raises is logged and does not disturb the room.
Rooms are created on first join (``auto_create``) and closed ``departure_timeout`` seconds after
the last participant leaves, or ``empty_timeout`` seconds after creation if nobody joins.
"""

from roomtone.rooms.manager import (
    CallbackEndpoint,
    Participant,
    ParticipantEndpoint,
    ParticipantNotFound,
    RoomError,
    RoomFull,
    RoomManager,
    RoomNotFound,
)
from roomtone.rooms.model import (
    ParticipantKind,
    ParticipantRecord,
    ParticipantState,
    Permission,
    RoomRecord,
    new_sid,
)
from roomtone.rooms.routing import RoutedPacket
from roomtone.rooms.store import MemoryRoomStore, RoomStore

__all__ = [
    "CallbackEndpoint",
    "MemoryRoomStore",
    "Participant",
    "ParticipantEndpoint",
    "ParticipantKind",
    "ParticipantNotFound",
    "ParticipantRecord",
    "ParticipantState",
    "Permission",
    "RoomError",
    "RoomFull",
    "RoomManager",
    "RoomNotFound",
    "RoomRecord",
    "RoomStore",
    "RoutedPacket",
    "new_sid",
]
