"""Data packet rules, sans-IO: who may send, what gets stamped, who receives.

Pure functions over records and bytes, so the rules are unit-tested without WebRTC and shared by
every transport (WebRTC data channels, SIP participants, the HTTP API). They follow LiveKit
(livekit/livekit ``pkg/rtc/participant.go`` handleReceivedDataMessage and ``pkg/rtc/room.go``
BroadcastDataPacket):

* the sender needs ``can_publish_data``; otherwise the packet is dropped (and the caller logs why);
* the packet must parse and fit the size limit;
* ``participant_sid`` and ``participant_identity`` are overwritten with the sender's (blank
  identity for hidden senders), also inside a ``user`` payload; ``sequence`` is kept;
* reliable packets with ``sequence`` not above the sender's last one are dropped as replays
  (receivers would drop them anyway; the SDKs dedupe by sequence per sender sid);
* ``destination_identities`` (or the legacy ``user.destination_identities`` / ``destination_sids``)
  restrict the receivers; the sender never receives its own packet;
* ``sip_dtmf`` follows the same rules; metrics and non-agent transcriptions are not forwarded
  (as LiveKit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from livekit.protocol import models as proto_models

from roomtone.rooms.model import ParticipantKind, ParticipantRecord

RELIABLE = proto_models.DataPacket.RELIABLE
LOSSY = proto_models.DataPacket.LOSSY

#: Default limit on one data packet (bytes). LiveKit's clients cap reliable messages at 15 KiB of
#: payload; a server-side cap protects every receiver from one misbehaving sender.
DEFAULT_MAX_PACKET_BYTES = 64 * 1024


@dataclass
class RoutedPacket:
    """The outcome of :func:`route_packet`: either ``dropped`` (a reason to log) or a packet to send."""

    packet: proto_models.DataPacket | None = None
    payload: bytes = b""
    recipients: list[ParticipantRecord] = field(default_factory=list)
    reliable: bool = True
    dropped: str | None = None
    kind: str = ""  #: the packet's ``value`` oneof (``sip_dtmf``, ``user`` ...), read once here


def parse_packet(raw: bytes, max_bytes: int = DEFAULT_MAX_PACKET_BYTES) -> proto_models.DataPacket:
    """Parse wire bytes; ValueError with a clear message for oversized or malformed input."""
    if len(raw) > max_bytes:
        raise ValueError(f"data packet of {len(raw)} bytes exceeds the limit of {max_bytes} bytes")
    packet = proto_models.DataPacket()
    try:
        packet.ParseFromString(raw)
    except DecodeError as exc:
        raise ValueError(f"malformed data packet ({len(raw)} bytes): {exc}") from None
    return packet


def route_packet(
    sender: ParticipantRecord | None,
    packet: proto_models.DataPacket,
    members: Iterable[ParticipantRecord],
    *,
    reliable: bool = True,
    last_sequence: int = 0,
    max_bytes: int = DEFAULT_MAX_PACKET_BYTES,
) -> RoutedPacket:
    """Apply the rules to one packet. ``sender`` None means the server itself (API SendData).

    ``last_sequence`` is the sender's highest reliable sequence seen so far; the caller keeps it
    (``RoutedPacket.packet.sequence`` is the new value when a reliable packet is accepted).
    """
    if sender is not None and not sender.permission.can_publish_data:
        return RoutedPacket(dropped=f"participant {sender.identity!r} ({sender.sid}) has no canPublishData permission")
    which = packet.WhichOneof("value")
    if which is None:
        return RoutedPacket(dropped="data packet carries no payload")
    if which == "metrics":
        return RoutedPacket(dropped="metrics packets are not forwarded")
    if which == "transcription" and sender is not None and sender.kind != ParticipantKind.AGENT:
        return RoutedPacket(dropped="transcriptions are forwarded only from agents")
    if sender is not None and reliable and packet.sequence > 0:
        if packet.sequence <= last_sequence:
            return RoutedPacket(
                dropped=f"reliable packet sequence {packet.sequence} is not above the last one ({last_sequence})"
            )

    packet.kind = RELIABLE if reliable else LOSSY
    if sender is not None:
        identity = "" if sender.permission.hidden else sender.identity
        packet.participant_sid = sender.sid
        packet.participant_identity = identity
        if which == "user":
            packet.user.participant_sid = sender.sid
            packet.user.participant_identity = identity
    destination_sids: list[str] = []
    if which == "user":
        user = packet.user
        if packet.destination_identities:
            del user.destination_identities[:]
            user.destination_identities.extend(packet.destination_identities)
        else:
            packet.destination_identities.extend(user.destination_identities)
        destination_sids = list(user.destination_sids)
    wanted = set(packet.destination_identities)
    recipients = []
    for member in members:
        if sender is not None and member.sid == sender.sid:
            continue
        if (wanted or destination_sids) and member.identity not in wanted and member.sid not in destination_sids:
            continue
        recipients.append(member)
    payload = packet.SerializeToString()
    if len(payload) > max_bytes:
        return RoutedPacket(dropped=f"data packet of {len(payload)} bytes exceeds the limit of {max_bytes} bytes")
    return RoutedPacket(packet=packet, payload=payload, recipients=recipients, reliable=reliable, kind=which)
