"""Room → phone relay rules and the roomtone.dtmf detail payload."""

from __future__ import annotations

import json

from livekit.protocol import models

from roomtone.telephony.relay import dtmf_detail, relay_to_phone


def dtmf(sender: str, *dest: str) -> models.DataPacket:
    return models.DataPacket(
        participant_identity=sender, destination_identities=list(dest), sip_dtmf=models.SipDTMF(code=1, digit="1")
    )


def test_relay_rules() -> None:
    sips = ["sip_a", "sip_b"]
    assert relay_to_phone(dtmf("agent"), own_identity="sip_a", sip_identities=sips).relay
    assert relay_to_phone(dtmf("agent", "sip_a"), own_identity="sip_a", sip_identities=sips).relay
    no = relay_to_phone(dtmf("agent", "sip_b"), own_identity="sip_a", sip_identities=sips)
    assert not no.relay and "other participants" in no.reason
    no = relay_to_phone(dtmf("sip_b"), own_identity="sip_a", sip_identities=sips)
    assert not no.relay and "SIP-to-SIP" in no.reason
    assert relay_to_phone(dtmf("sip_b"), own_identity="sip_a", sip_identities=sips, allow_sip_to_sip=True).relay
    assert not relay_to_phone(dtmf("sip_a"), own_identity="sip_a", sip_identities=sips).relay
    user = models.DataPacket(participant_identity="agent", user=models.UserPacket(payload=b"x"))
    assert not relay_to_phone(user, own_identity="sip_a", sip_identities=sips).relay


def test_detail_payload() -> None:
    raw = dtmf_detail(digit="#", code=11, method="info", duration_ms=120, start=1.5, call_id="SCL_1", identity="sip_x")
    assert json.loads(raw) == {
        "digit": "#", "code": 11, "method": "info", "duration_ms": 120, "start": 1.5,
        "call_id": "SCL_1", "identity": "sip_x", "pre_join": False,
    }


def test_room_metadata_switch_for_sip_to_sip() -> None:
    from roomtone.telephony.relay import room_allows_sip_to_sip

    assert room_allows_sip_to_sip('{"roomtone": {"allow_sip_to_sip": true}}')
    assert room_allows_sip_to_sip('{"topic": "x", "roomtone": {"allow_sip_to_sip": true, "other": 1}}')
    for metadata in ("", "roomtone", "not json but says roomtone", '["roomtone"]', '{"roomtone": true}',
                     '{"roomtone": {"allow_sip_to_sip": "true"}}', '{"roomtone": {"allow_sip_to_sip": false}}',
                     '{"allow_sip_to_sip": true}'):
        assert not room_allows_sip_to_sip(metadata), metadata
