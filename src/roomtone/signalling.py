"""LiveKit signalling over aiohttp WebSockets: ``/rtc`` (v0, two PCs) and ``/rtc/v1`` (one PC).

Wire facts (see shared/reference/livekit-signal-protocol.md): binary protobuf ``SignalRequest``
in, ``SignalResponse`` out; the JoinResponse must carry non-zero ping interval/timeout (the Rust
SDKs abort on 0) and a server version (livekit-client refuses without one); other participants
learn of joins and leaves through ``ParticipantUpdate``; the server stamps the sender on every data
packet (the rules live in :mod:`roomtone.rooms.routing`).

A session is a :class:`~roomtone.rooms.manager.ParticipantEndpoint`: the room calls it to deliver
data (on a data channel) and updates (on the WebSocket). Outgoing signalling goes through one
queue and one writer task, so messages keep their order and the room never waits on a socket.

Audio: a published audio track is announced to the room (ParticipantUpdate first, as the Rust SDK
needs) and relayed through aiortc (:mod:`roomtone.rtc.media`) to every v0 subscriber PC, with
msid ``PA_sid|TR_sid`` and a server re-offer; negotiation is serialised per PC.

Single-PC (v1) clients receive audio on the recvonly sections their offer carries: the server
attaches tracks to free sections when answering, names them in ``mid_to_track_id``, and when it
needs a section or a new answer it sends ``MediaSectionsRequirement`` so the client re-offers.

Not implemented (documented, not faked): video relay (``add_track`` for video is answered but the
track is not announced), real
ICE-restart resume (a resume attempt gets ``LeaveRequest{action: RECONNECT}`` and the client
rejoins at once, which the SDKs handle), data tracks.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from aiohttp import WSMsgType, web
from livekit.protocol import models as proto_models
from livekit.protocol import rtc as proto_rtc

import roomtone
from roomtone.config import Config
from roomtone.rooms import ParticipantKind, Permission, RoomError, RoomManager
from roomtone.rooms.manager import Participant
from roomtone.rooms.model import new_sid
from roomtone.rtc import media as media_mod
from roomtone.rtc.auth import AuthFailure, authorize_join, token_from_request
from roomtone.rtc.peer import LOSSY, RELIABLE, Peer, sending_mids
from roomtone.rtc.tokens import Claims, TokenVerifier

log = logging.getLogger(__name__)

#: The LiveKit server version we claim: clients gate features on it (1.9.0 is accepted by all
#: tested SDKs). Our own version goes in ``server_info.node_id``.
COMPAT_VERSION = "1.9.0"
COMPAT_PROTOCOL = 16
PENDING_DATA_LIMIT = 1000  # packets held per session while its data channels are not open yet
MAX_JOIN_REQUEST = 1 << 20
SLOW_LOSSY_BYTES = 1 << 20  # queued bytes on a receiver's channel beyond which data is dropped
SLOW_RELIABLE_BYTES = 16 << 20
REQUEST_RESPONSE_DELAY = 0.05  # seconds; see SignalSession._respond

DisconnectReason = proto_models.DisconnectReason
LeaveRequest = proto_rtc.LeaveRequest

_SOURCES = {name.lower(): value for name, value in proto_models.TrackSource.items()}


def permission_from(claims: Claims) -> Permission:
    v = claims.video
    return Permission(
        can_subscribe=v.can_subscribe,
        can_publish=v.can_publish,
        can_publish_data=v.can_publish_data,
        can_publish_sources=tuple(_SOURCES[s.lower()] for s in v.can_publish_sources if s.lower() in _SOURCES),
        hidden=v.hidden,
        recorder=v.recorder,
        can_update_metadata=v.can_update_own_metadata,
        agent=v.agent,
    )


def kind_from(claims: Claims) -> ParticipantKind:
    kind = ParticipantKind.from_claim(claims.kind)
    if kind == ParticipantKind.STANDARD and claims.video.agent:
        return ParticipantKind.AGENT
    return kind


def room_config_from(claims: Claims) -> dict[str, Any]:
    """The token's ``roomConfig`` (used when this join creates the room), in our names."""
    raw = claims.raw.get("roomConfig")
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Any] = {}
    for claim, name in (("emptyTimeout", "empty_timeout"), ("departureTimeout", "departure_timeout"),
                        ("maxParticipants", "max_participants")):
        try:
            if raw.get(claim) is not None:
                out[name] = int(raw[claim])
        except (TypeError, ValueError):
            log.warning("token roomConfig.%s is not a number: %r", claim, raw.get(claim))
    if raw.get("metadata"):
        out["metadata"] = str(raw["metadata"])
    return out


def decode_join_request(value: str) -> proto_rtc.JoinRequest:
    """``/rtc/v1?join_request=``: base64url(WrappedJoinRequest{compression, join_request})."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise AuthFailure(400, "cannot base64 decode wrapped join request") from None
    wrapped = proto_rtc.WrappedJoinRequest()
    try:
        wrapped.ParseFromString(raw)
    except Exception:
        raise AuthFailure(400, "cannot unmarshal wrapped join request") from None
    data = wrapped.join_request
    if wrapped.compression == proto_rtc.WrappedJoinRequest.GZIP:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            raise AuthFailure(400, "cannot read decompressed join request") from None
    if len(data) > MAX_JOIN_REQUEST:
        raise AuthFailure(400, "join request too large")
    request = proto_rtc.JoinRequest()
    try:
        request.ParseFromString(data)
    except Exception:
        raise AuthFailure(400, "cannot unmarshal join request") from None
    return request


class SignalSession:
    """One participant's signalling connection (see the module docstring)."""

    def __init__(
        self,
        service: RtcService,
        claims: Claims,
        room_name: str,
        *,
        single_pc: bool,
        query: Mapping[str, str],
        join_request: proto_rtc.JoinRequest | None,
    ) -> None:
        self.service = service
        self.config = service.config
        self.claims = claims
        self.room_name = room_name
        self.single_pc = single_pc
        self.query = query
        self.join_request = join_request
        self.participant: Participant | None = None
        self.ws: web.WebSocketResponse | None = None
        self.publisher: Peer | None = None
        self.subscriber: Peer | None = None
        self.subscriber_primary = (
            not single_pc and self.config.rtc.subscriber_primary and claims.video.can_subscribe
        )
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._held: list[proto_rtc.SignalResponse] | None = []  # updates that arrive before `join`
        self._pending_data: dict[str, deque[bytes]] = {RELIABLE: deque(), LOSSY: deque()}
        self._closing = False
        self._leave_reason: int | None = None
        self._data_drops_logged = 0
        self._slow_drops = 0
        self._sending: dict[str, Any] = {}  # label -> the data channel that carries it
        self._pending_tracks: dict[str, proto_models.TrackInfo] = {}  # cid -> announced by add_track
        self._orphan_media: dict[str, tuple[str, Any]] = {}  # cid -> (mid, track) before add_track
        self._subscribed: dict[str, Any] = {}  # track sid -> our sending transceiver
        self._v1_wanted: dict[str, tuple[Participant, proto_models.TrackInfo, Any]] = {}  # waiting for a section
        self._mid_to_track: dict[str, str] = {}
        self._published_mids: dict[str, str] = {}  # our publisher PC mid -> the client's track sid
        self._negotiating = False
        self._renegotiate_again = False
        self.auto_subscribe = (
            bool(join_request.connection_settings.auto_subscribe)
            if join_request is not None and join_request.HasField("connection_settings")
            else query.get("auto_subscribe", "1") not in ("0", "false")
        )
        self.who = f"{claims.identity}@{room_name}"

    # ---- lifecycle -----------------------------------------------------------------------------
    async def join(self) -> None:
        """Join the room before the WebSocket upgrade, so a refusal is still an HTTP error."""
        c = self.claims
        metadata, attributes = c.metadata, dict(c.attributes)
        jr = self.join_request
        if jr is not None and (jr.metadata or jr.participant_attributes):
            if not c.video.can_update_own_metadata:
                raise AuthFailure(401, "no permissions to access the room", "join request sets metadata without canUpdateOwnMetadata")
            metadata = jr.metadata or metadata
            attributes.update(jr.participant_attributes)
        protocol = jr.client_info.protocol if jr is not None else _int(self.query.get("protocol"))
        self.participant = await self.service.rooms.join(
            self.room_name,
            c.identity,
            endpoint=self,
            name=c.name,
            metadata=metadata,
            attributes=attributes,
            kind=kind_from(c),
            permission=permission_from(c),
            client_protocol=protocol,
            room_config=room_config_from(c),
        )
        self.who = f"{c.identity}({self.participant.sid})@{self.room_name}"

    async def run(self, ws: web.WebSocketResponse) -> None:
        assert self.participant is not None
        self.ws = ws
        writer = asyncio.ensure_future(self._writer(ws))
        try:
            await self._send_join()
            if self.single_pc:
                assert self.join_request is not None
                for publisher, track, media in self.service.rooms.published_tracks(self.room_name):
                    if self._may_subscribe(publisher, track):
                        self._v1_wanted[track.sid] = (publisher, track, media)
                for req in self.join_request.add_track_requests:  # tracks published with the join
                    self._add_track(req)
                if self.join_request.HasField("publisher_offer"):
                    await self._on_offer(self.join_request.publisher_offer)
            elif self.subscriber_primary:
                await self._offer_subscriber()
            # A client gone without closing (network loss) leaves instead of lingering: the
            # WebSocket heartbeat (see RtcService._serve) ends receive() with a TimeoutError.
            idle = self.config.rtc.ping_interval + self.config.rtc.ping_timeout
            while not self._closing:
                msg = await ws.receive()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                if msg.type == WSMsgType.BINARY:
                    await self._on_message(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await self._on_message(msg.data.encode(), text=True)
                elif msg.type == WSMsgType.ERROR:
                    if isinstance(ws.exception(), TimeoutError):
                        log.warning("%s: nothing from the client for %d s and no answer to a WebSocket ping; "
                                    "closing the session", self.who, idle)
                        self._leave_reason = DisconnectReason.CONNECTION_TIMEOUT
                    else:
                        log.info("%s: WebSocket error %s", self.who, ws.exception())
                    break
                if self._closing:
                    break
        finally:
            await self._teardown(writer)

    async def _teardown(self, writer: asyncio.Future[Any]) -> None:
        self._closing = True
        if self.participant is not None and self.participant.active:
            reason = self._leave_reason if self._leave_reason is not None else DisconnectReason.SIGNAL_CLOSE
            await self.participant.leave(reason)
        self._out.put_nowait(None)
        try:
            await asyncio.wait_for(writer, 5)
        except (TimeoutError, asyncio.CancelledError):
            writer.cancel()
        for peer in (self.publisher, self.subscriber):
            if peer is not None:
                await peer.close()

    async def _writer(self, ws: web.WebSocketResponse) -> None:
        while True:
            item = await self._out.get()
            if item is None:
                break
            try:
                await ws.send_bytes(item)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("%s: cannot send signal message: %s", self.who, exc)
                break
        await ws.close()

    def _send(self, response: proto_rtc.SignalResponse) -> None:
        if self._held is not None:
            self._held.append(response)
        elif not self._closing or response.WhichOneof("message") == "leave":
            self._out.put_nowait(response.SerializeToString())

    async def _send_join(self) -> None:
        assert self.participant is not None
        p = self.participant
        room = await p.room()
        cfg = self.config.rtc
        join = proto_rtc.JoinResponse(
            room=room,
            participant=p.info(),
            other_participants=p.others(),
            server_version=COMPAT_VERSION,
            server_info=proto_models.ServerInfo(
                edition=proto_models.ServerInfo.Standard,
                version=COMPAT_VERSION,
                protocol=COMPAT_PROTOCOL,
                node_id=f"roomtone-{roomtone.__version__}",
            ),
            ice_servers=[proto_rtc.ICEServer(urls=[u if u.startswith("stun") else f"stun:{u}"]) for u in cfg.stun_servers],
            subscriber_primary=self.subscriber_primary,
            fast_publish=self.claims.video.can_publish and not self.single_pc,
            ping_interval=cfg.ping_interval,
            ping_timeout=cfg.ping_timeout,
        )
        held, self._held = self._held or [], None
        self._out.put_nowait(proto_rtc.SignalResponse(join=join).SerializeToString())
        for response in held:
            self._send(response)
        log.info(
            "%s: joined via %s (sdk %s %s, protocol %s, subscriber_primary %s, auto_subscribe %s)",
            self.who,
            "v1 single PC" if self.single_pc else "v0",
            self._client_sdk(),
            self.query.get("version") or (self.join_request.client_info.version if self.join_request else ""),
            p.record.client_protocol,
            self.subscriber_primary,
            self.auto_subscribe,
        )

    def _client_sdk(self) -> str:
        if self.join_request is not None:
            sdk = self.join_request.client_info.sdk
            return proto_models.ClientInfo.SDK.Name(sdk).lower() if sdk in proto_models.ClientInfo.SDK.values() else str(sdk)
        return self.query.get("sdk", "")

    # ---- ParticipantEndpoint -------------------------------------------------------------------
    def deliver_data(self, packet: proto_models.DataPacket, payload: bytes, reliable: bool) -> None:
        label = RELIABLE if reliable else LOSSY
        channel = self._channel(label)
        if channel is not None:
            # A receiver that cannot keep up must not grow our memory without bound: lossy data
            # is dropped early (as LiveKit does), reliable data only when far behind (and logged).
            limit = SLOW_RELIABLE_BYTES if reliable else SLOW_LOSSY_BYTES
            if channel.bufferedAmount > limit:
                self._slow_drops += 1
                if self._slow_drops <= 10 or self._slow_drops % 1000 == 0:
                    log.warning("%s: %s channel has %d bytes queued; dropped a packet (%d so far)",
                                self.who, label, channel.bufferedAmount, self._slow_drops)
                return
            channel.send(payload)
            return
        pending = self._pending_data[label]
        if len(pending) >= PENDING_DATA_LIMIT:
            pending.popleft()
            if self._data_drops_logged < 10:
                self._data_drops_logged += 1
                log.warning("%s: no open %s data channel; dropped the oldest held packet", self.who, label)
        pending.append(payload)

    def participants_changed(self, infos: list[proto_models.ParticipantInfo]) -> None:
        self._send(proto_rtc.SignalResponse(update=proto_rtc.ParticipantUpdate(participants=infos)))
        me = self.participant
        mine = next((i for i in infos if me is not None and i.sid == me.sid), None)
        if mine is not None and self._published_mids:
            kept = {t.sid for t in mine.tracks}
            for mid, sid in list(self._published_mids.items()):
                if sid not in kept:  # the server unpublished it (permission revoked)
                    del self._published_mids[mid]
                    self._send(proto_rtc.SignalResponse(track_unpublished=proto_rtc.TrackUnpublishedResponse(track_sid=sid)))
        if me is not None and not me.record.permission.can_subscribe and (self._subscribed or self._v1_wanted):
            if any(i.sid == me.sid for i in infos):
                log.info("%s: may no longer subscribe; dropping %d tracks", self.who, len(self._subscribed))
                for sid in list(self._subscribed) + list(self._v1_wanted):
                    self.track_unpublished(None, sid)

    def room_changed(self, room: proto_models.Room) -> None:
        self._send(proto_rtc.SignalResponse(room_update=proto_rtc.RoomUpdate(room=room)))

    def closed(self, reason: int) -> None:
        """The server removed us: tell the client (DISCONNECT) and end the session."""
        self._leave_reason = reason
        self._send(
            proto_rtc.SignalResponse(
                leave=LeaveRequest(can_reconnect=False, reason=reason, action=LeaveRequest.DISCONNECT)  # type: ignore[arg-type]
            )
        )
        self._closing = True
        self._out.put_nowait(None)

    # ---- data channels -------------------------------------------------------------------------
    def _channel(self, label: str) -> Any:
        # Sticky: once a channel carries a label's packets it keeps carrying them while open, so
        # that packets cannot overtake each other across two channels (receivers drop reliable
        # packets whose sequence is not above the last one seen).
        current = self._sending.get(label)
        if current is not None and current.readyState == "open":
            return current
        for peer in (self.subscriber, self.publisher):
            if peer is not None:
                ch = peer.sendable(label)
                if ch is not None:
                    self._sending[label] = ch
                    return ch
        return None

    def _flush_data(self) -> None:
        for label, pending in self._pending_data.items():
            if not pending:
                continue
            channel = self._channel(label)
            while channel is not None and pending:
                channel.send(pending.popleft())

    def _on_data(self, label: str, data: bytes) -> None:
        if self.participant is not None:
            self.participant.publish(data, reliable=(label == RELIABLE))

    def _peer(self, role: str) -> Peer:
        on_track = None if role == "subscriber" else self._on_remote_track
        return Peer(role, self.who, self._on_data, self._flush_data, on_track)

    # ---- media ---------------------------------------------------------------------------------
    def _on_remote_track(self, cid: str, mid: str, track: Any) -> None:
        info = self._pending_tracks.pop(cid, None)
        if info is None:
            self._orphan_media[cid] = (mid, track)
            return
        self._publish_media(info, mid, track)

    def _check_unpublished(self, sdp: str) -> None:
        """A client unpublishes by renegotiating the track's section to not sending."""
        if not self._published_mids or self.participant is None:
            return
        still = sending_mids(sdp)
        for mid, sid in list(self._published_mids.items()):
            if mid not in still:
                del self._published_mids[mid]
                log.info("%s: unpublished %s (section %s no longer sends)", self.who, sid, mid)
                self.service.rooms.spawn(self.participant.unpublish_track(sid))

    def _publish_media(self, info: proto_models.TrackInfo, mid: str, track: Any) -> None:
        assert self.participant is not None
        if track.kind != "audio":
            log.info("%s: %s track %s is not relayed (audio only)", self.who, track.kind, info.sid)
            return
        info.mid = mid
        media_mod.keep_draining(track)
        participant = self.participant

        async def publish() -> None:
            await participant.publish_track(info, track)
            if participant.active:
                self._published_mids[mid] = info.sid

        self.service.rooms.spawn(publish())

    def track_published(self, publisher: Participant, track: proto_models.TrackInfo, media: Any) -> None:
        if self.single_pc:
            if self._may_subscribe(publisher, track) and track.sid not in self._v1_wanted:
                self._v1_wanted[track.sid] = (publisher, track, media)
                self._request_sections()
            return
        if self._subscribe(publisher, track, media):
            self._spawn_renegotiation()

    def _update_subscription(self, req: proto_rtc.UpdateSubscription) -> None:
        """Manual (un)subscription, for clients with auto_subscribe off or that unsubscribe."""
        sids = set(req.track_sids) | {sid for pt in req.participant_tracks for sid in pt.track_sids}
        if req.subscribe:
            for publisher, track, media in self.service.rooms.published_tracks(self.room_name):
                if track.sid in sids:
                    if self.single_pc:
                        if self._may_subscribe(publisher, track, manual=True) and track.sid not in self._v1_wanted:
                            self._v1_wanted[track.sid] = (publisher, track, media)
                            self._request_sections()
                    elif self._subscribe(publisher, track, media, manual=True):
                        self._spawn_renegotiation()
        else:
            for sid in sids:
                if sid in self._subscribed or sid in self._v1_wanted:
                    log.info("%s: unsubscribes from %s", self.who, sid)
                    self.track_unpublished(None, sid)

    def _may_subscribe(self, publisher: Participant, track: proto_models.TrackInfo, manual: bool = False) -> bool:
        return (
            not self._closing
            and (self.auto_subscribe or manual)
            and publisher is not self.participant
            and track.sid not in self._subscribed
            and self.participant is not None
            and self.participant.record.permission.can_subscribe
        )

    def _request_sections(self) -> None:
        """v1: ask the client for one more receive section, which also makes it re-offer."""
        log.debug("%s: media sections requirement (waiting: %s)", self.who, list(self._v1_wanted))
        self._send(
            proto_rtc.SignalResponse(
                media_sections_requirement=proto_rtc.MediaSectionsRequirement(num_audios=1, num_videos=0)
            )
        )

    def _attach_v1_tracks(self) -> None:
        """Between the client's offer and our answer: put wanted tracks on free receive sections."""
        if self.publisher is None:
            return
        free = self.publisher.free_receive_sections("audio")
        for sid, (publisher, track, media) in list(self._v1_wanted.items()):
            if not publisher.active or sid not in publisher.media:
                del self._v1_wanted[sid]
                continue
            if not free:
                break
            transceiver = free.pop(0)
            transceiver.sender.replaceTrack(media_mod.subscribe(media))
            transceiver.sender._stream_id = f"{publisher.sid}|{track.sid}"
            transceiver.sender._track_id = track.sid
            transceiver.direction = "sendonly"
            self._subscribed[sid] = transceiver
            self._mid_to_track[transceiver.mid] = sid
            del self._v1_wanted[sid]
            log.info("%s: subscribed to %s of %s (section %s)", self.who, sid, publisher.identity, transceiver.mid)

    def track_unpublished(self, publisher: Participant | None, track_sid: str) -> None:
        self._v1_wanted.pop(track_sid, None)
        transceiver = self._subscribed.pop(track_sid, None)
        if transceiver is None:
            return
        old = transceiver.sender.track
        transceiver.sender.replaceTrack(None)
        if old is not None:
            old.stop()
        if self.single_pc:
            transceiver.direction = "recvonly"  # the section is free again after the next offer
            self._mid_to_track.pop(transceiver.mid, None)
            return
        transceiver.direction = "inactive"
        self._spawn_renegotiation()

    def _subscribe(self, publisher: Participant, track: proto_models.TrackInfo, media: Any, manual: bool = False) -> bool:
        if self.subscriber is None or not self._may_subscribe(publisher, track, manual):
            return False
        transceiver = self.subscriber.pc.addTransceiver(media_mod.subscribe(media), direction="sendonly")
        # The Rust SDK finds the publisher and track from the stream id "PA_sid|TR_sid".
        transceiver.sender._stream_id = f"{publisher.sid}|{track.sid}"
        transceiver.sender._track_id = track.sid
        self._subscribed[track.sid] = transceiver
        log.info("%s: subscribed to %s of %s%s", self.who, track.sid, publisher.identity, " (requested)" if manual else "")
        return True

    def _spawn_renegotiation(self) -> None:
        if self._negotiating:
            self._renegotiate_again = True
            return
        self.service.rooms.spawn(self._offer_subscriber())

    # ---- negotiation ---------------------------------------------------------------------------
    async def _offer_subscriber(self) -> None:
        if self.subscriber is None:
            self.subscriber = self._peer("subscriber")
            self.subscriber.create_own_channels()
            for publisher, track, media in self.service.rooms.published_tracks(self.room_name):
                self._subscribe(publisher, track, media)
        if self._closing:
            return
        self._negotiating = True
        self._renegotiate_again = False
        sdp = await self.subscriber.offer()
        self._send(proto_rtc.SignalResponse(offer=proto_rtc.SessionDescription(type="offer", sdp=sdp)))
        self._trickle_out(self.subscriber, proto_rtc.SUBSCRIBER)

    async def _on_offer(self, offer: proto_rtc.SessionDescription) -> None:
        log.debug("%s: client offer id %d (%d media sections)", self.who, offer.id, offer.sdp.count("\nm="))
        if self.publisher is None:
            self.publisher = self._peer("single" if self.single_pc else "publisher")
        try:
            sdp = await self.publisher.answer(offer.sdp, self._attach_v1_tracks if self.single_pc else None)
        except Exception as exc:
            log.warning("%s: cannot answer the client's offer: %s: %s", self.who, type(exc).__name__, exc)
            return
        self._check_unpublished(offer.sdp)
        answer = proto_rtc.SessionDescription(type="answer", sdp=sdp, id=offer.id)
        if self.single_pc:
            answer.mid_to_track_id.update(self._mid_to_track)
        self._send(proto_rtc.SignalResponse(answer=answer))
        if self.single_pc and self._v1_wanted:
            self._request_sections()  # more tracks than free sections: ask for another offer
        self._trickle_out(self.publisher, proto_rtc.PUBLISHER)

    def _trickle_out(self, peer: Peer, target: int) -> None:
        if not self.config.rtc.trickle_server_candidates:
            return
        for cand in peer.local_candidates():
            self._send(
                proto_rtc.SignalResponse(
                    trickle=proto_rtc.TrickleRequest(candidateInit=json.dumps(cand), target=target)  # type: ignore[arg-type]
                )
            )

    # ---- requests ------------------------------------------------------------------------------
    async def _on_message(self, data: bytes, text: bool = False) -> None:
        request = proto_rtc.SignalRequest()
        try:
            if text:
                from google.protobuf import json_format

                json_format.Parse(data.decode(), request, ignore_unknown_fields=True)
            else:
                request.ParseFromString(data)
        except Exception as exc:
            log.warning("%s: unparseable signal request (%d bytes): %s", self.who, len(data), exc)
            return
        kind = request.WhichOneof("message")
        try:
            await self._dispatch(kind, request)
        except Exception:
            log.exception("%s: error handling %s", self.who, kind)

    async def _dispatch(self, kind: str | None, r: proto_rtc.SignalRequest) -> None:
        assert self.participant is not None
        if kind == "ping_req":
            self._send(
                proto_rtc.SignalResponse(
                    pong_resp=proto_rtc.Pong(last_ping_timestamp=r.ping_req.timestamp, timestamp=_now_ms())
                )
            )
        elif kind == "ping":
            self._send(proto_rtc.SignalResponse(pong=_now_ms()))
        elif kind == "offer":
            await self._on_offer(r.offer)
        elif kind == "answer":
            if self.subscriber is not None:
                await self.subscriber.accept_answer(r.answer.sdp)
                self._negotiating = False
                if self._renegotiate_again:
                    self._spawn_renegotiation()
        elif kind == "trickle":
            peer = self.publisher if (self.single_pc or r.trickle.target == proto_rtc.PUBLISHER) else self.subscriber
            if peer is None and r.trickle.target == proto_rtc.PUBLISHER:
                self.publisher = peer = self._peer("single" if self.single_pc else "publisher")
            if peer is not None:
                await peer.add_candidate(r.trickle.candidateInit)
        elif kind == "leave":
            log.info("%s: client leaves (%s)", self.who, DisconnectReason.Name(r.leave.reason) if r.leave.reason in DisconnectReason.values() else r.leave.reason)
            self._leave_reason = DisconnectReason.CLIENT_INITIATED
            self._closing = True
        elif kind == "add_track":
            self._add_track(r.add_track)
        elif kind == "mute":
            await self._mute(r.mute.sid, r.mute.muted)
        elif kind == "subscription":
            self._update_subscription(r.subscription)
        elif kind == "update_metadata":
            await self._update_metadata(r.update_metadata)
        else:
            log.debug("%s: ignoring %s", self.who, kind)

    def _add_track(self, req: proto_rtc.AddTrackRequest) -> None:
        assert self.participant is not None
        perm = self.participant.record.permission
        refusal = ""
        if not perm.can_publish:
            refusal = "does not have permission to publish"
        elif perm.can_publish_sources and req.source not in perm.can_publish_sources:
            refusal = f"does not have permission to publish source {proto_models.TrackSource.Name(req.source)}"
        if refusal:
            log.warning("%s: add_track %s refused: %s", self.who, req.cid, refusal)
            self._respond(
                proto_rtc.RequestResponse(reason=proto_rtc.RequestResponse.NOT_ALLOWED, message=refusal, add_track=req)
            )
            return
        track = proto_models.TrackInfo(
            sid=new_sid("TR_"),
            type=req.type,
            name=req.name,
            source=req.source,
            muted=req.muted,
            stereo=req.stereo,
            disable_dtx=req.disable_dtx,
            mime_type="audio/opus" if req.type == proto_models.AUDIO else "",
        )
        log.info("%s: add_track %s %s cid %s -> %s", self.who, proto_models.TrackType.Name(req.type), req.name, req.cid, track.sid)
        self._send(proto_rtc.SignalResponse(track_published=proto_rtc.TrackPublishedResponse(cid=req.cid, track=track)))
        orphan = self._orphan_media.pop(req.cid, None)
        if orphan is not None:
            self._publish_media(track, *orphan)
        else:
            self._pending_tracks[req.cid] = track

    async def _mute(self, sid: str, muted: bool) -> None:
        assert self.participant is not None
        for t in self.participant.record.tracks:
            if t.sid == sid and t.muted != muted:
                t.muted = muted
                await self.participant.update()  # version bump + ParticipantUpdate to everyone

    async def _update_metadata(self, req: proto_rtc.UpdateParticipantMetadata) -> None:
        assert self.participant is not None
        if not self.participant.record.permission.can_update_metadata:
            log.warning("%s: metadata update refused: no canUpdateOwnMetadata permission", self.who)
            self._respond(
                proto_rtc.RequestResponse(
                    request_id=req.request_id,
                    reason=proto_rtc.RequestResponse.NOT_ALLOWED,
                    message="does not have permission to update own metadata",
                )
            )
            return
        await self.participant.update(
            name=req.name or None, metadata=req.metadata or None, attributes=dict(req.attributes) or None
        )
        self._respond(proto_rtc.RequestResponse(request_id=req.request_id))

    def _respond(self, response: proto_rtc.RequestResponse) -> None:
        """Send a RequestResponse a little later. The Rust SDKs register their wait for it only
        after the request is written (rust-sdks rtc_session.rs get_response), so an answer that
        arrives within a millisecond or two is dropped and the call times out after seconds."""
        asyncio.get_running_loop().call_later(
            REQUEST_RESPONSE_DELAY, self._send, proto_rtc.SignalResponse(request_response=response)
        )


class RtcService:
    """The ``/rtc`` routes. ``install(app)`` adds them; ``close()`` ends every session."""

    def __init__(self, config: Config, rooms: RoomManager, verifier: TokenVerifier) -> None:
        self.config = config
        self.rooms = rooms
        self.verifier = verifier
        self.sessions: set[SignalSession] = set()

    def install(self, app: web.Application) -> None:
        app.router.add_get("/rtc", self.v0)
        app.router.add_get("/rtc/validate", self.v0_validate)
        app.router.add_get("/rtc/v1", self.v1)
        app.router.add_get("/rtc/v1/validate", self.v1_validate)

    async def v0(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, single_pc=False)

    async def v1(self, request: web.Request) -> web.StreamResponse:
        if not self.config.rtc.single_pc:
            return web.Response(status=404, text="404 page not found\n")
        return await self._serve(request, single_pc=True)

    async def v0_validate(self, request: web.Request) -> web.StreamResponse:
        return await self._validate(request, single_pc=False)

    async def v1_validate(self, request: web.Request) -> web.StreamResponse:
        if not self.config.rtc.single_pc:
            return web.Response(status=404, text="404 page not found\n")
        return await self._validate(request, single_pc=True)

    def _authorize(self, request: web.Request, single_pc: bool) -> tuple[Claims, str, proto_rtc.JoinRequest | None]:
        token = token_from_request(request.headers, request.query)
        claims, room = authorize_join(self.verifier, token, request.query.get("room", ""))
        join_request = None
        if single_pc:
            value = request.query.get("join_request")
            if not value:
                raise AuthFailure(400, "join_request is required")
            join_request = decode_join_request(value)
        return claims, room, join_request

    def _refuse(self, request: web.Request, failure: AuthFailure) -> web.Response:
        log.warning(
            "refused %s from %s: %d %s%s",
            request.path,
            request.remote,
            failure.status,
            failure.message,
            f" ({failure.detail})" if failure.detail else "",
        )
        headers = {"Access-Control-Allow-Origin": "*"}
        return web.Response(status=failure.status, text=failure.message, headers=headers)

    async def _validate(self, request: web.Request, single_pc: bool) -> web.StreamResponse:
        try:
            _, room, _ = self._authorize(request, single_pc)
        except AuthFailure as failure:
            return self._refuse(request, failure)
        if not self.config.room.auto_create:
            try:
                await self.rooms.get_room(room)
            except RoomError as exc:
                return self._refuse(request, AuthFailure(exc.status, exc.message))
        return web.Response(text="success", headers={"Access-Control-Allow-Origin": "*"})

    async def _serve(self, request: web.Request, single_pc: bool) -> web.StreamResponse:
        # Liveness: after ping_interval + ping_timeout without any frame from the client, aiohttp
        # sends a WebSocket ping and closes the connection when no pong comes within half that
        # (SignalSession.run). The Rust and JS SDKs send a signal ping every ping_interval, so they
        # are never silent that long; the Go SDK (server-sdk-go 2.19) sends no signal pings at
        # all and only answers WebSocket pings, as livekit-server's own liveness check expects.
        idle = self.config.rtc.ping_interval + self.config.rtc.ping_timeout
        ws = web.WebSocketResponse(max_msg_size=4 << 20, autoping=True, heartbeat=idle)
        if not ws.can_prepare(request).ok:
            return web.Response(status=404, text="404 page not found\n")
        try:
            claims, room, join_request = self._authorize(request, single_pc)
        except AuthFailure as failure:
            return self._refuse(request, failure)
        session = SignalSession(
            self, claims, room, single_pc=single_pc, query=request.query, join_request=join_request
        )
        reconnect = request.query.get("reconnect") in ("1", "true") or bool(join_request and join_request.reconnect)
        if reconnect:
            # No real resume: tell the client to rejoin from scratch (it does so within ~250 ms).
            await ws.prepare(request)
            log.info("%s: resume attempt answered with leave(RECONNECT)", session.who)
            leave = LeaveRequest(
                can_reconnect=True, reason=DisconnectReason.STATE_MISMATCH, action=LeaveRequest.RECONNECT
            )
            await ws.send_bytes(proto_rtc.SignalResponse(leave=leave).SerializeToString())
            await ws.close()
            return ws
        try:
            await session.join()
        except AuthFailure as failure:
            return self._refuse(request, failure)
        except RoomError as exc:
            return self._refuse(request, AuthFailure(exc.status, exc.message))
        try:
            await ws.prepare(request)
        except Exception:
            assert session.participant is not None
            await session.participant.leave(DisconnectReason.JOIN_FAILURE)
            raise
        self.sessions.add(session)
        try:
            await session.run(ws)
        finally:
            self.sessions.discard(session)
        return ws

    async def close(self) -> None:
        await self.rooms.close()  # tells each session SERVER_SHUTDOWN; their writers send it
        for _ in range(100):
            if not self.sessions:
                break
            await asyncio.sleep(0.02)
        for s in list(self.sessions):
            if s.ws is not None and not s.ws.closed:
                await s.ws.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
