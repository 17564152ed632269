"""The data-packet rules, without WebRTC."""

from livekit.protocol import models as pm

from roomtone.rooms.model import ParticipantKind, ParticipantRecord, Permission
from roomtone.rooms.routing import parse_packet, route_packet


def rec(identity, **kw):
    return ParticipantRecord(sid=f"PA_{identity}", identity=identity, room_name="r", **kw)


A, B, C = rec("a"), rec("b"), rec("c")


def dtmf(code, digit, **kw):
    return pm.DataPacket(sip_dtmf=pm.SipDTMF(code=code, digit=digit), **kw)


def test_stamps_sender_keeps_sequence_and_never_echoes():
    pkt = dtmf(1, "1", sequence=7, participant_identity="spoofed", participant_sid="PA_spoof")
    routed = route_packet(A, pkt, [A, B, C])
    assert routed.dropped is None
    assert [r.identity for r in routed.recipients] == ["b", "c"]
    wire = pm.DataPacket.FromString(routed.payload)
    assert (wire.participant_identity, wire.participant_sid, wire.sequence) == ("a", "PA_a", 7)
    assert (wire.sip_dtmf.code, wire.sip_dtmf.digit) == (1, "1")


def test_destination_identities_restrict_receivers():
    routed = route_packet(A, dtmf(2, "2", destination_identities=["c"]), [A, B, C])
    assert [r.identity for r in routed.recipients] == ["c"]
    # Addressing yourself still does not echo.
    routed = route_packet(A, dtmf(2, "2", destination_identities=["a"]), [A, B, C])
    assert routed.recipients == []


def test_legacy_user_destinations_and_user_stamping():
    pkt = pm.DataPacket(user=pm.UserPacket(payload=b"x", destination_identities=["b"], participant_identity="evil"))
    routed = route_packet(A, pkt, [A, B, C])
    assert [r.identity for r in routed.recipients] == ["b"]
    wire = pm.DataPacket.FromString(routed.payload)
    assert wire.user.participant_identity == "a" and list(wire.destination_identities) == ["b"]
    pkt = pm.DataPacket(user=pm.UserPacket(payload=b"x", destination_sids=["PA_c"]))
    assert [r.identity for r in route_packet(A, pkt, [A, B, C]).recipients] == ["c"]


def test_no_can_publish_data_drops_with_reason():
    mute = rec("m", permission=Permission(can_publish_data=False))
    routed = route_packet(mute, dtmf(1, "1"), [mute, B])
    assert routed.recipients == [] and "canPublishData" in routed.dropped


def test_hidden_sender_has_blank_identity():
    ghost = rec("g", permission=Permission(hidden=True))
    wire = pm.DataPacket.FromString(route_packet(ghost, dtmf(3, "3"), [ghost, B]).payload)
    assert wire.participant_identity == "" and wire.participant_sid == "PA_g"


def test_replayed_reliable_sequence_dropped_lossy_not_checked():
    assert "sequence" in route_packet(A, dtmf(1, "1", sequence=3), [A, B], last_sequence=3).dropped
    assert route_packet(A, dtmf(1, "1", sequence=3), [A, B], last_sequence=3, reliable=False).dropped is None
    assert route_packet(A, dtmf(1, "1", sequence=4), [A, B], last_sequence=3).dropped is None


def test_size_limit_and_malformed_input():
    big = pm.DataPacket(user=pm.UserPacket(payload=b"x" * 2000)).SerializeToString()
    try:
        parse_packet(big, max_bytes=1000)
        raise AssertionError("oversized packet accepted")
    except ValueError as exc:
        assert "exceeds the limit of 1000 bytes" in str(exc)
    try:
        parse_packet(b"\xff\xff\xff", max_bytes=1000)
        raise AssertionError("malformed packet accepted")
    except ValueError as exc:
        assert "malformed" in str(exc)


def test_metrics_and_non_agent_transcriptions_not_forwarded():
    metrics = pm.DataPacket()
    metrics.metrics.SetInParent()
    assert route_packet(A, metrics, [A, B]).dropped
    tr = pm.DataPacket(transcription=pm.Transcription(transcribed_participant_identity="a"))
    assert route_packet(A, tr, [A, B]).dropped
    agent = rec("ag", kind=ParticipantKind.AGENT)
    assert route_packet(agent, tr, [agent, B]).dropped is None


def test_server_originated_packet_reaches_everyone():
    routed = route_packet(None, dtmf(16, "R"), [A, B])
    assert [r.identity for r in routed.recipients] == ["a", "b"]
    assert pm.DataPacket.FromString(routed.payload).participant_identity == ""
