"""Planning an outbound call from a ``CreateSIPParticipantRequest``: validation and defaults, pure.

What LiveKit does (livekit/protocol ``rpc/sip.go`` ``NewCreateSIPParticipantRequest``, livekit/sip
``outbound.go``), kept here:

* The trunk is ``sip_trunk_id`` (an outbound trunk) or an inline ``trunk`` (``SIPOutboundConfig``).
* ``sip_number`` (the caller ID) defaults to the trunk's first number and must be one of them.
* Identity defaults to ``sip_<sip_call_to>``, name to ``Phone <sip_call_to>``.
* Attributes: ``sip.callID``, ``sip.trunkID``, ``sip.phoneNumber`` (the callee),
  ``sip.trunkPhoneNumber`` (our number), ``sip.hostname`` (the trunk address, :attr:`OutboundPlan.hostname`),
  ``sip.callStatus``; ``hide_phone_number`` leaves out the numbers and the hostname;
  ``participant_attributes`` from the request are kept. ``sip.callIDFull`` and ``sip.callTag``
  are known only once the call is placed (the gateway adds them).
* The trunk's ``headers``, then ``attributes_to_headers`` (participant attributes copied into SIP
  headers), then the request's ``headers`` go on the INVITE (a later one wins on the same name).
  LiveKit sends ``attributes_to_headers`` only on BYE/CANCEL/REFER; we send them on the INVITE
  too (the gateway adds them to BYE and REFER with the attributes current then).
* ``headers_to_attributes`` (the trunk's) and ``include_headers`` (the request's when set, else the
  trunk's) apply to the callee's 200 OK (:mod:`roomtone.telephony.sip_headers`).
* Header names and values are validated: a CR/LF, a control character or a header roomtone
  writes itself (From, Contact ...) is an ``invalid_argument`` naming the header.
* ``ringing_timeout`` defaults to 30 s (LiveKit: 30 s), ``max_call_duration`` to 24 h.

Different on purpose: the ``dtmf`` string is parsed up front with the one digit table, so an
unknown character is an ``invalid_argument`` error naming it (LiveKit plays silence), and
uppercase ``A-D``, ``W`` and ``,`` work. The callee's own key presses during that string are
still relayed (the bridge buffers them until the participant has joined).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livekit.protocol import sip as sip_pb

from roomtone.dtmf.digits import DtmfError, Step, parse_sequence
from roomtone.telephony import sip_headers
from roomtone.telephony.errors import TelephonyError
from roomtone.telephony.matching import (
    ATTR_CALL_ID,
    ATTR_PHONE_NUMBER,
    ATTR_TRUNK_ID,
    ATTR_TRUNK_NUMBER,
)

DEFAULT_RINGING_TIMEOUT = 30.0
DEFAULT_MAX_CALL_DURATION = 24 * 3600.0
MAX_RINGING_TIMEOUT = 300.0


@dataclass
class OutboundPlan:
    call_id: str
    trunk_id: str
    address: str  # host or host:port of the trunk
    transport: str  # "udp", "tcp", "tls" or "" (auto)
    call_to: str
    from_number: str
    from_host: str
    auth_username: str
    auth_password: str
    room: str
    identity: str
    name: str
    metadata: str
    attributes: dict[str, str]
    dtmf: list[Step]
    dtmf_text: str
    ringing_timeout: float
    max_call_duration: float
    wait_until_answered: bool
    headers: dict[str, str] = field(default_factory=dict)
    display_name: str = ""
    play_dialtone: bool = False
    #: the callee's 200 OK -> participant attributes
    headers_to_attributes: dict[str, str] = field(default_factory=dict)
    include_headers: int = 0
    #: participant attributes -> headers of the BYE and REFER we send
    attributes_to_headers: dict[str, str] = field(default_factory=dict)
    #: ``sip.hostname`` (empty with ``hide_phone_number``); the gateway adds it to ``attributes``
    #: with the other attributes naming the SIP call (:func:`~roomtone.telephony.matching.call_attributes`)
    hostname: str = ""


def _duration(d: object, default: float) -> float:
    seconds = float(getattr(d, "seconds", 0)) + float(getattr(d, "nanos", 0)) / 1e9
    return seconds if seconds > 0 else default


_TRANSPORTS = {
    sip_pb.SIP_TRANSPORT_AUTO: "",
    sip_pb.SIP_TRANSPORT_UDP: "udp",
    sip_pb.SIP_TRANSPORT_TCP: "tcp",
    sip_pb.SIP_TRANSPORT_TLS: "tls",
}


def plan_outbound_call(
    req: sip_pb.CreateSIPParticipantRequest,
    trunk: sip_pb.SIPOutboundTrunkInfo | None,
    *,
    call_id: str,
) -> OutboundPlan:
    """Validate ``req`` (with its stored trunk, if it names one) into a plan; TelephonyError if not."""
    if not req.room_name:
        raise TelephonyError("invalid_argument", "room_name is required")
    if not req.sip_call_to:
        raise TelephonyError("invalid_argument", "sip_call_to (the number or user to call) is required")
    if any(c in req.sip_call_to for c in " <>;\"\r\n"):
        raise TelephonyError("invalid_argument", f"sip_call_to {req.sip_call_to!r} contains characters not allowed")
    if req.sip_trunk_id:
        if trunk is None:
            raise TelephonyError("not_found", f"outbound SIP trunk {req.sip_trunk_id!r} not found")
        address, transport = trunk.address, _TRANSPORTS.get(trunk.transport, "")
        numbers = list(trunk.numbers)
        user, password = trunk.auth_username, trunk.auth_password
        from_host = trunk.from_host
        trunk_id = trunk.sip_trunk_id
        trunk_headers = list(trunk.headers.items())
        hdr_to_attr, attr_to_hdr = dict(trunk.headers_to_attributes), dict(trunk.attributes_to_headers)
        include: int = trunk.include_headers
    elif req.HasField("trunk") and req.trunk.hostname:
        cfg = req.trunk
        address, transport = cfg.hostname, _TRANSPORTS.get(cfg.transport, "")
        numbers = [req.sip_number] if req.sip_number else []
        user, password = cfg.auth_username, cfg.auth_password
        from_host = cfg.from_host
        trunk_id = ""
        trunk_headers = []
        hdr_to_attr, attr_to_hdr = dict(cfg.headers_to_attributes), dict(cfg.attributes_to_headers)
        include = 0
    else:
        raise TelephonyError("invalid_argument", "sip_trunk_id or trunk.hostname is required")
    from_number = req.sip_number or (numbers[0] if numbers else "")
    if not from_number:
        raise TelephonyError("invalid_argument", "sip_number is required (the trunk has no numbers)")
    if req.sip_trunk_id and numbers and from_number not in numbers:
        raise TelephonyError(
            "invalid_argument", f"sip_number {from_number!r} is not one of the trunk's numbers {numbers}"
        )
    try:
        dtmf = parse_sequence(req.dtmf) if req.dtmf else []
    except DtmfError as exc:
        raise TelephonyError("invalid_argument", f"dtmf: {exc}") from None
    ringing = _duration(req.ringing_timeout, DEFAULT_RINGING_TIMEOUT)
    if ringing > MAX_RINGING_TIMEOUT:
        raise TelephonyError("invalid_argument", f"ringing_timeout must be at most {MAX_RINGING_TIMEOUT:g} s")
    attrs = dict(req.participant_attributes)
    attrs[ATTR_CALL_ID] = call_id
    attrs[ATTR_TRUNK_ID] = trunk_id
    if not req.hide_phone_number:
        attrs[ATTR_PHONE_NUMBER] = req.sip_call_to
        attrs[ATTR_TRUNK_NUMBER] = from_number
    if req.include_headers:
        include = req.include_headers
    try:
        sip_headers.check_headers(req.headers, "headers")
        sip_headers.check_include(include)
        sip_headers.check_header_names(hdr_to_attr, "headers_to_attributes", settable=False)
        sip_headers.check_header_names(attr_to_hdr.values(), "attributes_to_headers", settable=True)
        mapped = {h: req.participant_attributes[a] for a, h in attr_to_hdr.items() if a in req.participant_attributes}
        sip_headers.check_headers(mapped, "participant_attributes (sent by attributes_to_headers)")
    except sip_headers.HeaderError as exc:
        raise TelephonyError("invalid_argument", str(exc)) from None
    headers = sip_headers.merge(trunk_headers, mapped.items(), req.headers.items())
    return OutboundPlan(
        call_id=call_id,
        trunk_id=trunk_id,
        address=address,
        transport=transport,
        call_to=req.sip_call_to,
        from_number=from_number,
        from_host=from_host,
        auth_username=user,
        auth_password=password,
        room=req.room_name,
        identity=req.participant_identity or "sip_" + req.sip_call_to,
        name=req.participant_name or "Phone " + req.sip_call_to,
        metadata=req.participant_metadata,
        attributes=attrs,
        dtmf=dtmf,
        dtmf_text=req.dtmf,
        ringing_timeout=ringing,
        max_call_duration=_duration(req.max_call_duration, DEFAULT_MAX_CALL_DURATION),
        wait_until_answered=req.wait_until_answered,
        headers=headers,
        display_name=req.display_name,
        play_dialtone=req.play_dialtone or req.play_ringtone,
        headers_to_attributes=hdr_to_attr,
        include_headers=include,
        attributes_to_headers=attr_to_hdr,
        hostname="" if req.hide_phone_number else address,
    )
