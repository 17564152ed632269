"""DTMF relay rules between a room and a phone, as pure functions.

**Room → phone.** A ``sip_dtmf`` packet reaching a SIP participant is played to its phone only if

* that participant is among ``destination_identities``, or no destinations were given, and
* the sender is not itself a SIP participant, unless SIP-to-SIP relay is enabled for the room or
  trunk. LiveKit relays every phone's key presses to every other phone in the room
  (livekit/sip ``room.go`` TODO; flagged in livekit/sip#109 and #120); we do not by default.

The digits come from :func:`roomtone.dtmf.digits.interpret_sip_dtmf`: an empty ``digit`` uses
``code`` (LiveKit drops such packets), upper- and lowercase A-D both work, and a multi-character
``digit`` is a sequence with pauses.

**Phone → room.** Each key press, by whatever method it arrived, is published once:

1. as a reliable ``SipDTMF{code, digit}`` from the SIP participant with the canonical digit,
   the moment the press starts (every SDK's DTMF event fires on it), and
2. when the press ends, as a reliable user packet on topic :data:`DTMF_TOPIC` whose payload is
   the JSON object from :func:`dtmf_detail` (digit, code, method, duration, timing, call id), so
   SDK users can read *how* the digit arrived without any change to ``SipDTMF``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

from livekit.protocol import models

DTMF_TOPIC = "roomtone.dtmf"


@dataclass(frozen=True)
class RelayDecision:
    relay: bool
    reason: str = ""


_RELAY = RelayDecision(True)  # the common answer, built once (this runs for every relayed digit)


def relay_to_phone(
    packet: models.DataPacket,
    *,
    own_identity: str,
    sip_identities: Collection[str],
    allow_sip_to_sip: bool = False,
) -> RelayDecision:
    """Should this routed packet be played to the phone of participant ``own_identity``?

    ``sip_identities``: identities of SIP participants currently in the room.
    """
    if packet.WhichOneof("value") != "sip_dtmf":
        return RelayDecision(False, "not a sip_dtmf packet")
    destinations = list(packet.destination_identities)
    if destinations and own_identity not in destinations:
        return RelayDecision(False, "addressed to other participants")
    sender = packet.participant_identity
    if sender == own_identity:
        return RelayDecision(False, "sent by this participant")
    if not allow_sip_to_sip and sender and sender in sip_identities:
        return RelayDecision(False, f"sent by SIP participant {sender} (SIP-to-SIP relay is disabled)")
    return _RELAY


def room_allows_sip_to_sip(metadata: str) -> bool:
    """A room enables phone-to-phone relay with ``{"roomtone": {"allow_sip_to_sip": true}}`` in its
    metadata (the same ``roomtone`` section trunks use). Metadata that is not JSON, or has no such
    section, leaves it off: room metadata belongs to the application, so nothing is required of it.
    """
    if "roomtone" not in metadata:  # cheap test first: most rooms' metadata is something else
        return False
    try:
        section = json.loads(metadata).get("roomtone")
    except (ValueError, AttributeError):
        return False
    return isinstance(section, dict) and section.get("allow_sip_to_sip") is True


def dtmf_detail(
    *,
    digit: str,
    code: int,
    method: str,
    duration_ms: int | None,
    start: float,
    call_id: str,
    identity: str,
    pre_join: bool = False,
) -> bytes:
    """The ``roomtone.dtmf`` user-packet payload for one key press (JSON, UTF-8).

    ``start`` is the press's start on the server's wall clock (seconds since the epoch);
    ``pre_join`` marks digits pressed before the participant joined and published on joining.
    """
    body = {
        "digit": digit,
        "code": code,
        "method": method,
        "duration_ms": duration_ms,
        "start": round(start, 6),
        "call_id": call_id,
        "identity": identity,
        "pre_join": pre_join,
    }
    return json.dumps(body, separators=(",", ":")).encode()
