"""CreateSIPParticipantRequest -> outbound call plan (validation and LiveKit defaults)."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from livekit.protocol import sip as sip_pb

from roomtone.dtmf.digits import Pause, Tone
from roomtone.telephony.errors import TelephonyError
from roomtone.telephony.outbound import plan_outbound_call

TRUNK = sip_pb.SIPOutboundTrunkInfo(
    sip_trunk_id="ST_out", address="127.0.0.1:25060", numbers=["+15550001", "+15550002"],
    auth_username="u", auth_password="p", transport=sip_pb.SIP_TRANSPORT_UDP,
)


def req(**kw) -> sip_pb.CreateSIPParticipantRequest:  # type: ignore[no-untyped-def]
    base = {"sip_trunk_id": "ST_out", "sip_call_to": "+15557777", "room_name": "r"}
    base.update(kw)
    return sip_pb.CreateSIPParticipantRequest(**base)


def test_defaults() -> None:
    plan = plan_outbound_call(req(dtmf="ww12#"), TRUNK, call_id="SCL_1")
    assert plan.identity == "sip_+15557777" and plan.name == "Phone +15557777"
    assert plan.from_number == "+15550001" and plan.address == "127.0.0.1:25060" and plan.transport == "udp"
    assert plan.ringing_timeout == 30 and plan.max_call_duration == 86400
    assert plan.attributes == {
        "sip.callID": "SCL_1", "sip.trunkID": "ST_out",
        "sip.phoneNumber": "+15557777", "sip.trunkPhoneNumber": "+15550001",
    }
    assert plan.dtmf == [
        Pause(0.5), Pause(0.5), Tone(1), Tone(2), Tone(11)
    ]


def test_overrides_and_hidden_number() -> None:
    plan = plan_outbound_call(
        req(sip_number="+15550002", participant_identity="callee", participant_name="Bob",
            participant_attributes={"a": "b"}, hide_phone_number=True,
            ringing_timeout=Duration(seconds=5), max_call_duration=Duration(seconds=60), dtmf="A,W#"),
        TRUNK, call_id="SCL_2",
    )
    assert (plan.identity, plan.name, plan.from_number) == ("callee", "Bob", "+15550002")
    assert plan.attributes == {"a": "b", "sip.callID": "SCL_2", "sip.trunkID": "ST_out"}
    assert (plan.ringing_timeout, plan.max_call_duration) == (5, 60)
    assert plan.dtmf[0] == Tone(12)


@pytest.mark.parametrize(
    ("kw", "trunk", "code", "words"),
    [
        ({"room_name": ""}, TRUNK, "invalid_argument", "room_name"),
        ({"sip_call_to": ""}, TRUNK, "invalid_argument", "sip_call_to"),
        ({"sip_call_to": "a b"}, TRUNK, "invalid_argument", "sip_call_to"),
        ({}, None, "not_found", "ST_out"),
        ({"sip_trunk_id": ""}, TRUNK, "invalid_argument", "sip_trunk_id"),
        ({"sip_number": "+1999"}, TRUNK, "invalid_argument", "sip_number"),
        ({"dtmf": "12x"}, TRUNK, "invalid_argument", "'x'"),
        ({"ringing_timeout": Duration(seconds=1000)}, TRUNK, "invalid_argument", "ringing_timeout"),
    ],
)
def test_errors(kw: dict, trunk: sip_pb.SIPOutboundTrunkInfo | None, code: str, words: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(TelephonyError) as err:
        plan_outbound_call(req(**kw), trunk, call_id="c")
    assert err.value.code == code and words in err.value.message


def test_inline_trunk() -> None:
    plan = plan_outbound_call(
        sip_pb.CreateSIPParticipantRequest(
            trunk=sip_pb.SIPOutboundConfig(hostname="127.0.0.1:25061", auth_username="x", auth_password="y"),
            sip_number="+1000", sip_call_to="200", room_name="r",
        ),
        None, call_id="c",
    )
    assert plan.trunk_id == "" and plan.address == "127.0.0.1:25061" and plan.auth_username == "x"


def test_headers_from_trunk_attributes_and_request() -> None:
    trunk = sip_pb.SIPOutboundTrunkInfo()
    trunk.CopyFrom(TRUNK)
    trunk.headers["X-Trunk"] = "t"
    trunk.attributes_to_headers["customer"] = "X-Customer"
    plan = plan_outbound_call(req(participant_attributes={"customer": "42", "other": "x"},
                                  headers={"X-Req": "r", "X-Trunk": "override"}), trunk, call_id="c")
    assert plan.headers == {"X-Trunk": "override", "X-Customer": "42", "X-Req": "r"}
