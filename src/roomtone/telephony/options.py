"""roomtone's per-trunk options, carried in the trunk's ``metadata`` so LiveKit clients can set them.

LiveKit's trunk messages have no DTMF fields, and clients must keep working unchanged, so a trunk
opts in by putting a JSON object with a ``"roomtone"`` key in its ``metadata``::

    {"roomtone": {"dtmf_mode": "info", "allow_sip_to_sip": true, "publish_pre_join": false, "early_media": true}}

* ``dtmf_mode``: how room digits are sent to the phone: ``auto`` (default: RFC 4733 when
  negotiated, else SIP INFO when the peer allows it, else in-band), ``rfc4733``, ``info``,
  ``inband``.
* ``allow_sip_to_sip``: relay digits published by other SIP participants to this trunk's calls
  (off by default; LiveKit always does it).
* ``publish_pre_join``: publish digits pressed before the participant joined (default on).
* ``early_media`` (inbound trunks): answer with 183 Session Progress + SDP first, so the caller
  is not billed while waiting: the PIN prompt, or a ringback tone, plays as early media, the
  participant joins with ``sip.callStatus=ringing``, and the 200 OK follows once someone else is
  in the room (``active`` then). The trunk's ``ringing_timeout`` (default 30 s) bounds the wait;
  then the call is refused with 480. Off by default (the 200 comes at once, as before). An
  INVITE without SDP is answered at once anyway (an offer cannot go in an unreliable 183).

Any other metadata (plain text, JSON without the key) is left alone and means "defaults". A
malformed ``roomtone`` section is logged and ignored, never fatal to a call.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

DTMF_MODES = ("auto", "rfc4733", "info", "inband")


@dataclass(frozen=True)
class TrunkOptions:
    dtmf_mode: str = "auto"
    allow_sip_to_sip: bool = False
    publish_pre_join: bool = True
    early_media: bool = False


def trunk_options(metadata: str, *, trunk_id: str = "") -> TrunkOptions:
    if not metadata or not metadata.lstrip().startswith("{"):
        return TrunkOptions()
    try:
        data = json.loads(metadata)
    except ValueError:
        return TrunkOptions()
    section = data.get("roomtone") if isinstance(data, dict) else None
    if section is None:
        return TrunkOptions()
    if not isinstance(section, dict):
        log.warning("trunk %s: metadata 'roomtone' must be an object; using defaults", trunk_id)
        return TrunkOptions()
    mode = section.get("dtmf_mode", "auto")
    if mode not in DTMF_MODES:
        log.warning("trunk %s: unknown dtmf_mode %r; using auto", trunk_id, mode)
        mode = "auto"
    return TrunkOptions(
        dtmf_mode=mode,
        allow_sip_to_sip=bool(section.get("allow_sip_to_sip", False)),
        publish_pre_join=bool(section.get("publish_pre_join", True)),
        early_media=bool(section.get("early_media", False)),
    )


def validate_trunk_metadata(metadata: str) -> None:
    """Raise ValueError for a ``roomtone`` section the API should refuse (typos caught at save time)."""
    if not metadata or not metadata.lstrip().startswith("{"):
        return
    try:
        data = json.loads(metadata)
    except ValueError:
        return
    section = data.get("roomtone") if isinstance(data, dict) else None
    if section is None:
        return
    if not isinstance(section, dict):
        raise ValueError("metadata.roomtone must be a JSON object")
    unknown = set(section) - {"dtmf_mode", "allow_sip_to_sip", "publish_pre_join", "early_media"}
    if unknown:
        raise ValueError(f"metadata.roomtone: unknown option(s) {sorted(unknown)}")
    if section.get("dtmf_mode", "auto") not in DTMF_MODES:
        raise ValueError(f"metadata.roomtone.dtmf_mode must be one of {', '.join(DTMF_MODES)}")
    for flag in ("allow_sip_to_sip", "publish_pre_join", "early_media"):
        if flag in section and not isinstance(section[flag], bool):
            raise ValueError(f"metadata.roomtone.{flag} must be true or false")
