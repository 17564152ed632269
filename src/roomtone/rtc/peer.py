"""One aiortc PeerConnection in a LiveKit session: publisher, subscriber, or the single v1 PC.

Negotiation is serialised per PC (an ``asyncio.Lock``) because offers, answers and trickled
candidates arrive on one WebSocket but aiortc's descriptions must not interleave. Remote
candidates that arrive before the remote description are held and added afterwards. aiortc does
not trickle: it gathers everything during ``setLocalDescription``; :meth:`local_candidates`
extracts them from our SDP so the session can also send them as ``trickle`` messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcicetransport import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp

from roomtone.rtc import ice, sctp

log = logging.getLogger(__name__)

RELIABLE = "_reliable"
LOSSY = "_lossy"
DATA_TRACK = "_data_track"


class Peer:
    """A PeerConnection plus the data channels we can send on, by label."""

    def __init__(
        self,
        role: str,
        who: str,
        on_message: Callable[[str, bytes], None],
        on_channel_open: Callable[[], None],
        on_track: Callable[[str, str, Any], None] | None = None,
    ) -> None:
        self.role = role
        self.who = who
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice.ice_servers()))
        self.lock = asyncio.Lock()
        self.channels: dict[str, RTCDataChannel] = {}  # client-created (publisher/single)
        self.own_channels: dict[str, RTCDataChannel] = {}  # server-created (subscriber)
        self._pending: list[RTCIceCandidate | None] = []
        self._on_message = on_message
        self._on_channel_open = on_channel_open
        self._on_track = on_track
        self.remote_msids: dict[str, str] = {}  # mid -> msid track id (= the client's cid)
        self.pc.on("datachannel", self._adopt)
        self.pc.on("connectionstatechange", self._state)
        self.pc.on("track", self._track)

    def _track(self, track: Any) -> None:
        # aiortc honours a=msid only with a matching msid-semantic, which libwebrtc leaves empty,
        # so the cid comes from our own mid -> msid map of the offer.
        mid = next((t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        cid = self.remote_msids.get(mid or "", "")
        log.info("%s %s PC: remote %s track mid %s cid %s", self.who, self.role, track.kind, mid, cid)
        if self._on_track is not None and mid is not None:
            self._on_track(cid, mid, track)

    def _state(self) -> None:
        log.info("%s %s PC: %s", self.who, self.role, self.pc.connectionState)

    def _adopt(self, channel: RTCDataChannel) -> None:
        sctp.tune(self.pc)
        label = channel.label
        log.debug("%s %s PC: data channel %s (id %s) from client", self.who, self.role, label, channel.id)
        if label in (RELIABLE, LOSSY):
            self.channels[label] = channel
        elif label != DATA_TRACK:
            log.info("%s: ignoring unlabeled data channel %r", self.who, label)
        self._wire(channel)
        if channel.readyState == "open":
            self._on_channel_open()

    def _wire(self, channel: RTCDataChannel) -> None:
        label = channel.label

        @channel.on("message")
        def on_message(message: Any) -> None:
            if label == DATA_TRACK:
                return  # data tracks are not supported; the client copes without them
            if isinstance(message, str):
                message = message.encode()
            try:
                self._on_message(label, message)
            except Exception:
                # pyee re-raises handler errors into aiortc's SCTP receive path, which would
                # take the whole connection down for one bad packet.
                log.exception("%s: failed to handle a %d-byte message on %s", self.who, len(message), label)

        @channel.on("open")
        def on_open() -> None:
            self._on_channel_open()

    def create_own_channels(self) -> None:
        """Server-created ``_reliable``/``_lossy`` (the subscriber PC's, as LiveKit does)."""
        reliable = self.pc.createDataChannel(RELIABLE, ordered=True)
        lossy = self.pc.createDataChannel(LOSSY, ordered=False, maxRetransmits=0)
        sctp.tune(self.pc)
        for ch in (reliable, lossy):
            self.own_channels[ch.label] = ch
            self._wire(ch)

    def sendable(self, label: str) -> RTCDataChannel | None:
        for table in (self.own_channels, self.channels):
            ch = table.get(label)
            if ch is not None and ch.readyState == "open":
                return ch
        return None

    async def answer(self, sdp: str, before_answer: Callable[[], None] | None = None) -> str:
        """Answer a client offer; ``before_answer`` may attach tracks to the offered transceivers."""
        async with self.lock:
            self.remote_msids.update(msids_by_mid(sdp))
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            sctp.tune(self.pc)
            drop_video_bandwidth_estimators(self.pc)
            await self._flush_candidates()
            if before_answer is not None:
                before_answer()
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            return self.pc.localDescription.sdp

    def free_receive_sections(self, kind: str) -> list[Any]:
        """Transceivers the client offered to receive on (recvonly) that carry nothing yet."""
        return [
            t
            for t in self.pc.getTransceivers()
            if t.kind == kind
            and t.mid is not None
            and t.sender.track is None
            # aiortc keeps the offer's direction reversed: the client's recvonly is our sendonly
            and getattr(t, "_offerDirection", None) in ("sendonly", "sendrecv")
            and t.direction != "sendonly"
        ]

    async def offer(self) -> str:
        async with self.lock:
            await self.pc.setLocalDescription(await self.pc.createOffer())
            return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        async with self.lock:
            if self.pc.signalingState != "have-local-offer":
                log.warning("%s %s PC: unexpected answer in state %s; ignored", self.who, self.role, self.pc.signalingState)
                return
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
                sctp.tune(self.pc)
                drop_video_bandwidth_estimators(self.pc)
            except Exception as exc:  # aiortc raises ValueError and others for unusable SDP
                log.warning("%s %s PC: cannot apply the client's answer: %s: %s", self.who, self.role, type(exc).__name__, exc)
                return
            await self._flush_candidates()

    async def add_candidate(self, candidate_init: str) -> None:
        """A ``TrickleRequest.candidateInit`` (JSON). TCP candidates are skipped (aioice: UDP only)."""
        try:
            data = json.loads(candidate_init) if candidate_init else {}
        except ValueError:
            log.warning("%s: bad trickle candidate JSON %r", self.who, candidate_init[:200])
            return
        line = str(data.get("candidate") or "")
        cand: RTCIceCandidate | None
        if not line:
            cand = None  # end of candidates
        else:
            if line.startswith("candidate:"):
                line = line[len("candidate:"):]
            try:
                cand = candidate_from_sdp(line)
            except (ValueError, IndexError, AssertionError):  # aiortc asserts on short lines
                log.warning("%s: unparseable ICE candidate %r", self.who, line[:200])
                return
            if cand.protocol.lower() != "udp":
                return
            cand.sdpMid = data.get("sdpMid")
            cand.sdpMLineIndex = data.get("sdpMLineIndex")
            if cand.sdpMid is None and cand.sdpMLineIndex is None:
                cand.sdpMLineIndex = 0
        async with self.lock:
            if self.pc.remoteDescription is None:
                self._pending.append(cand)
                return
            await self._add(cand)

    async def _flush_candidates(self) -> None:
        pending, self._pending = self._pending, []
        for cand in pending:
            await self._add(cand)

    async def _add(self, cand: RTCIceCandidate | None) -> None:
        try:
            await self.pc.addIceCandidate(cand)
        except Exception as exc:  # aiortc raises assorted errors for candidates it cannot use
            log.info("%s %s PC: candidate not added: %s", self.who, self.role, exc)

    def local_candidates(self) -> list[dict[str, Any]]:
        """Our gathered candidates as ``candidateInit`` dicts (first media section: BUNDLE)."""
        desc = self.pc.localDescription
        if desc is None:
            return []
        out: list[dict[str, Any]] = []
        mid: str | None = None
        index = -1
        ufrag = ""
        for raw in desc.sdp.splitlines():
            if raw.startswith("m="):
                index += 1
                if index > 0:
                    break
            elif raw.startswith("a=mid:"):
                mid = raw[6:]
            elif raw.startswith("a=ice-ufrag:"):
                ufrag = raw[12:]
            elif raw.startswith("a=candidate:"):
                out.append({"candidate": raw[2:], "sdpMLineIndex": 0})
        for c in out:
            c["sdpMid"] = mid
            c["usernameFragment"] = ufrag
        return out

    async def close(self) -> None:
        try:
            await self.pc.close()
        except Exception:
            log.debug("%s %s PC: error while closing", self.who, self.role, exc_info=True)


def msids_by_mid(sdp: str) -> dict[str, str]:
    """``a=mid`` -> the track id of ``a=msid:<stream> <track>`` for each media section."""
    out: dict[str, str] = {}
    mid: str | None = None
    track = ""
    for line in sdp.splitlines() + ["m="]:
        if line.startswith("m="):
            if mid is not None and track:
                out[mid] = track
            mid, track = None, ""
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif line.startswith("a=msid:"):
            parts = line[7:].split()
            if len(parts) >= 2:
                track = parts[1]
    return out


def sending_mids(sdp: str) -> set[str]:
    """Mids of the media sections in which the offerer sends (sendrecv/sendonly, port not 0)."""
    out: set[str] = set()
    mid: str | None = None
    sending = False
    for line in sdp.splitlines() + ["m="]:
        if line.startswith("m="):
            if mid is not None and sending:
                out.add(mid)
            parts = line.split()
            mid, sending = None, len(parts) > 1 and parts[1] != "0"
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            sending = sending and line in ("a=sendrecv", "a=sendonly")
    return out


_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"  # aiortc 1.x, name-mangled private


def drop_video_bandwidth_estimators(pc: RTCPeerConnection) -> int:
    """Remove aiortc's receive-side bandwidth estimator from every video receiver; returns how many.

    Why: aiortc gives each video ``RTCRtpReceiver`` a ``RemoteBitrateEstimator`` whose rate
    counter is 1,000 Python objects (one per millisecond bucket), all tracked by the cyclic
    garbage collector. The Rust SDK offers three receive-only video sections per connection, so
    100 SDK participants meant 300,000 such objects and full collections of 110-120 ms in
    ``roomtone serve`` (measured by ``benchmarks/bridge_sdk.py``: every call's audio and DTMF
    stalled with it). roomtone relays no video (see ``roomtone.signalling``), so the estimator,
    which only feeds REMB feedback for received video, has nothing to do; with it ``None`` aiortc
    skips REMB, as it does for audio receivers."""
    dropped = 0
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if transceiver.kind == "video" and getattr(receiver, _ESTIMATOR, None) is not None:
            setattr(receiver, _ESTIMATOR, None)
            dropped += 1
    return dropped
