"""SDP parsing/serialization and RFC 3264 offer/answer.

Fixtures BARESIP_OFFER, PJSUA2_OFFER and SIPP_OFFER were captured from the real tools on loopback
(baresip 1.0.0 dialing, pjsua2 2.15 calling, ``sipp -sn uac`` 3.6.1; ports as captured). The
live tests at the end capture them again (so a changed tool shows up) and check each phone accepts
the answer we build, including hold and unhold re-INVITEs.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomtone.sip.sdp import (
    G722,
    PCMA,
    PCMU,
    Answer,
    AudioCapabilities,
    Connection,
    Media,
    NegotiatedAudio,
    Origin,
    Rejection,
    SdpError,
    SdpSession,
    SessionDescription,
    build_answer,
    build_offer,
    format_event_ranges,
    is_hold,
    parse_answer,
    parse_event_ranges,
    parse_sdp,
)
from tests.phones.baresip import baresip_phone
from tests.phones.common import free_port
from tests.phones.pjsua import pjsua_phone
from tests.phones.raw import RawMessage, RawUas, response
from tests.phones.sipp import run_sipp, uac_scenario

BARESIP_OFFER = (
    "v=0\r\no=- 2416355521 1500772772 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "a=tool:baresip 1.0.0\r\nm=audio 21976 RTP/AVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\na=sendrecv\r\na=label:1\r\na=rtcp-rsize\r\n"
    "a=ssrc:131001577 cname:sip:baresip@127.0.0.1:21100\r\na=minptime:20\r\na=ptime:20\r\n"
)
PJSUA2_OFFER = (
    "v=0\r\no=- 4004541652 4004541652 IN IP4 127.0.0.1\r\ns=pjmedia\r\nb=AS:84\r\nt=0 0\r\n"
    "a=X-nat:0\r\nm=audio 21532 RTP/AVP 0 8 9 120\r\nc=IN IP4 127.0.0.1\r\nb=TIAS:64000\r\n"
    "a=rtcp:21533 IN IP4 127.0.0.1\r\na=sendrecv\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:9 G722/8000\r\na=rtpmap:120 telephone-event/8000\r\na=fmtp:120 0-16\r\n"
    "a=ssrc:1135484827 cname:71859c043850f2ac\r\n"
)
SIPP_OFFER = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


DEFAULT_CAPS = AudioCapabilities()


def parsed(text: str | bytes) -> SessionDescription:
    sd = parse_sdp(text)
    assert isinstance(sd, SessionDescription), sd
    return sd


def answered(offer: SessionDescription, caps: AudioCapabilities = DEFAULT_CAPS, **kw) -> Answer:
    result = build_answer(offer, "127.0.0.1", 30000, caps, **kw)
    assert isinstance(result, Answer), result
    return result


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text", [BARESIP_OFFER, PJSUA2_OFFER, SIPP_OFFER])
def test_real_offers_round_trip_byte_for_byte(text):
    sd = parsed(text)
    assert sd.serialize() == text


def test_baresip_offer_fields():
    sd = parsed(BARESIP_OFFER)
    m = sd.media[0]
    assert (m.media, m.port, m.proto, m.formats) == ("audio", 21976, "RTP/AVP", ["0", "8", "9", "101"])
    assert m.rtpmap()[101] == ("telephone-event", 8000, 1)
    assert m.fmtp(101) == "0-15"
    assert sd.connection_for(m) == Connection("127.0.0.1")
    assert sd.direction_for(m) == "sendrecv"
    assert m.attribute("ptime") == "20" and m.attribute("rtcp-rsize") == ""


def test_lenient_parsing_lf_missing_t_unknown_lines_and_static_pts():
    text = "v=0\no=- 1 2 IN IP4 10.0.0.1\ns=x\nc=IN IP4 10.0.0.1\ny=unknown\nm=audio 4000 RTP/AVP 8 0  \n"
    sd = parsed(text)
    assert sd.times == ["0 0"]
    assert sd.media[0].rtpmap() == {8: ("PCMA", 8000, 1), 0: ("PCMU", 8000, 1)}
    assert sd.serialize().endswith("m=audio 4000 RTP/AVP 8 0\r\n")


@pytest.mark.parametrize(
    "text, fragment, line",
    [
        ("", "empty", 0),
        ("v=1\r\n", "v=0", 1),
        ("v=0\r\ns=x\r\n", "missing o=", 0),
        ("v=0\r\no=- 1 2 IN IP4 h\r\n", "missing s=", 0),
        ("v=0\r\no=- 1 x IN IP4 h\r\ns=x\r\n", "bad origin", 2),
        ("v=0\r\no=- 1 2 IN IP4 h\r\ns=x\r\nm=audio 70000 RTP/AVP 0\r\n", "bad media port", 4),
        ("v=0\r\no=- 1 2 IN IP4 h\r\ns=x\r\nm=audio 5 RTP/AVP 200\r\n", "bad RTP payload", 4),
        ("v=0\r\no=- 1 2 IN IP4 h\r\ns=x\r\nc=IN IP9 h\r\n", "bad connection", 4),
        ("v=0\r\no=- 1 2 IN IP4 h\r\ns=x\r\nnonsense\r\n", "not a type=value", 4),
        ("v=0\r\no=- 1 2 IN IP4 h\r\ns=x\r\nv=0\r\n", "repeated v=", 4),
        (b"v=0\r\n\xff\r\n", "not UTF-8", 0),
        # digits str.isdigit() accepts and int() refuses (superscripts), or no SDP grammar allows
        ("v=0\r\no=- 1 2 IN IP4 h\r\ns=x\r\nm=audio 4\u00b200 RTP/AVP 0\r\n", "bad media port", 4),
        ("v=0\r\no=- 1 2 IN IP4 h\r\ns=x\r\nm=audio 5 RTP/AVP 0 \u00b9\r\n", "bad RTP payload", 4),
        ("v=0\r\no=- 1 2 IN IP4 h\r\ns=x\r\nm=audio 5 RTP/AVP \u0663\r\n", "bad RTP payload", 4),
    ],
)
def test_malformed_descriptions_give_reasons(text, fragment, line):
    err = parse_sdp(text)
    assert isinstance(err, SdpError), err
    assert fragment in err.reason and err.line == line, err


def test_event_ranges():
    assert parse_event_ranges("0-15") == frozenset(range(16))
    assert parse_event_ranges(None) == frozenset(range(16))  # RFC 4733 default
    assert parse_event_ranges("0-11, 16") == frozenset([*range(12), 16])
    assert parse_event_ranges("5-2") is None and parse_event_ranges("a-b") is None
    assert format_event_ranges(frozenset([*range(12), 16, 17, 20])) == "0-11,16-17,20"


# --------------------------------------------------------------------------- offer/answer


def test_answer_to_baresip_offer_uses_offerers_first_codec_and_events():
    a = answered(parsed(BARESIP_OFFER))
    assert a.audio.codec == PCMU and a.audio.payload_type == 0
    assert a.audio.telephone_event_pt == 101 and a.audio.telephone_events == frozenset(range(16))
    assert (a.audio.remote_address, a.audio.remote_port, a.audio.ptime) == ("127.0.0.1", 21976, 20)
    m = a.sdp.media[0]
    assert m.formats == ["0", "101"] and m.fmtp(101) == "0-15" and m.direction == "sendrecv"
    # the answer re-parses to itself
    assert parsed(a.sdp.serialize()).serialize() == a.sdp.serialize()


def test_remote_rtcp_port_from_attribute_mux_or_default():
    assert answered(parsed(PJSUA2_OFFER)).audio.remote_rtcp_port == 21533  # a=rtcp:21533
    assert answered(parsed(BARESIP_OFFER)).audio.remote_rtcp_port == 21977  # RTP + 1
    muxed = parsed(SIPP_OFFER + "a=rtcp-mux\r\n")
    assert answered(muxed).audio.remote_rtcp_port == 6000


def test_answer_prefers_ours_when_asked_and_intersects_events():
    caps = AudioCapabilities(codecs=("G722", "PCMA"), prefer="ours", events=frozenset(range(12)))
    a = answered(parsed(PJSUA2_OFFER), caps)
    assert a.audio.codec == G722 and a.audio.payload_type == 9
    assert a.sdp.media[0].attribute_values("rtpmap") == ["9 G722/8000", "120 telephone-event/8000"]
    assert a.audio.telephone_events == frozenset(range(12)) and a.sdp.media[0].fmtp(120) == "0-11"
    offerer_order = answered(parsed(PJSUA2_OFFER), AudioCapabilities(codecs=("G722", "PCMA")))
    assert offerer_order.audio.codec == PCMA  # offer lists PCMU 0, PCMA 8, G722 9; we lack PCMU


def test_answer_without_telephone_event_in_offer():
    a = answered(parsed(SIPP_OFFER))
    assert a.audio.codec == PCMU and a.audio.telephone_event_pt is None
    assert a.sdp.media[0].formats == ["0"]


def test_telephone_event_only_at_the_codec_clock_rate():
    offer = parsed(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 96 9 97 98 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:9 G722/8000\r\n"
        "a=rtpmap:97 telephone-event/48000\r\na=fmtp:97 0-16\r\na=rtpmap:98 telephone-event/16000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n"
    )
    a = answered(offer)
    assert a.audio.codec == G722 and a.audio.telephone_event_pt == 101
    assert a.audio.telephone_events == frozenset([*range(12), 16])


def test_several_m_lines_keep_order_and_reject_others_with_port_zero():
    offer = parsed(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n"
        "m=video 6000 RTP/AVP 96\r\nc=IN IP4 10.0.0.9\r\na=rtpmap:96 VP8/90000\r\n"
        "m=audio 0 RTP/AVP 0\r\nc=IN IP4 10.0.0.9\r\n"
        "m=audio 7000 RTP/SAVP 0\r\nc=IN IP4 10.0.0.9\r\n"
        "m=audio 8000 RTP/AVP 8\r\nc=IN IP4 10.0.0.8\r\n"
        "m=audio 9000 RTP/AVP 0\r\nc=IN IP4 10.0.0.7\r\n"
    )
    a = answered(offer)
    assert [(m.media, m.port, m.proto) for m in a.sdp.media] == [
        ("video", 0, "RTP/AVP"), ("audio", 0, "RTP/AVP"), ("audio", 0, "RTP/SAVP"),
        ("audio", 30000, "RTP/AVP"), ("audio", 0, "RTP/AVP")]
    assert a.audio.media_index == 3 and a.audio.codec == PCMA
    assert (a.audio.remote_address, a.audio.remote_port) == ("10.0.0.8", 8000)  # media-level c=


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("m=video 6000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n", "no audio stream"),
        ("m=audio 6000 RTP/AVP 96 18\r\na=rtpmap:96 opus/48000/2\r\n", "no common audio codec"),
        ("m=audio 6000 RTP/SAVP 0\r\n", "no usable audio stream"),
        ("m=audio 6000 RTP/AVP 96\r\na=rtpmap:96 PCMU/16000\r\n", "PCMU/16000"),
    ],
)
def test_unsatisfiable_offers_give_488_with_reason(body, fragment):
    offer = parsed("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n" + body)
    result = build_answer(offer, "127.0.0.1", 30000)
    assert isinstance(result, Rejection) and result.status == 488
    assert fragment in result.reason, result.reason


def test_missing_connection_is_a_rejection_not_a_crash():
    offer = parsed("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n")
    result = build_answer(offer, "127.0.0.1", 30000)
    assert isinstance(result, Rejection) and "no connection address" in result.reason


@pytest.mark.parametrize(
    "offered, ours, expected",
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),  # we are holding them
        ("sendonly", "sendonly", "inactive"),  # both on hold
    ],
)
def test_direction_mirroring(offered, ours, expected):
    offer = parsed(BARESIP_OFFER.replace("a=sendrecv", f"a={offered}"))
    a = answered(offer, direction=ours)
    assert a.sdp.media[0].direction == expected and a.audio.direction == expected
    assert is_hold(offer) is (offered in ("sendonly", "inactive"))


def test_legacy_hold_with_zero_address():
    offer = parsed(SIPP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"))
    assert is_hold(offer)
    a = answered(offer)
    assert a.audio.direction == "recvonly" and a.audio.on_hold and not a.audio.can_send
    held = build_offer("127.0.0.1", 4000, legacy_hold=True)
    assert held.connection == Connection("0.0.0.0") and is_hold(held)


def test_session_level_direction_applies_to_media():
    offer = parsed(SIPP_OFFER.replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\n"))
    assert answered(offer).audio.direction == "inactive"


def test_offer_then_answer_round_trip_between_two_sessions():
    alice = SdpSession("127.0.0.1", 4000, AudioCapabilities(codecs=("PCMA", "PCMU")))
    bob = SdpSession("127.0.0.2", 5000)
    offer = alice.offer()
    assert offer.origin.session_version == 1
    ans = bob.answer(parsed(offer.serialize()))
    assert isinstance(ans, Answer)
    got = alice.receive_answer(parsed(ans.sdp.serialize()))
    assert isinstance(got, NegotiatedAudio)
    assert got.codec == PCMA and got.telephone_event_pt == 101 and got.telephone_events == frozenset(range(17))
    assert (got.remote_address, got.remote_port, got.direction) == ("127.0.0.2", 5000, "sendrecv")
    # hold: a=sendonly offer, answered recvonly, our side becomes sendonly; version goes up
    hold = alice.hold()
    assert hold.origin.session_version == 2 and hold.origin.session_id == offer.origin.session_id
    ans = bob.answer(parsed(hold.serialize()))
    assert isinstance(ans, Answer) and ans.audio.direction == "recvonly"
    got = alice.receive_answer(parsed(ans.sdp.serialize()))
    assert isinstance(got, NegotiatedAudio) and got.direction == "sendonly"
    unhold = alice.unhold()
    ans = bob.answer(parsed(unhold.serialize()))
    assert isinstance(ans, Answer) and ans.audio.direction == "sendrecv"


def test_parse_answer_rejections():
    offer = build_offer("127.0.0.1", 4000)
    for answer_text, fragment in [
        ("m=audio 0 RTP/AVP 0\r\n", "rejected every audio stream"),
        ("m=audio 5000 RTP/AVP 18\r\n", "no codec we offered"),
        ("m=audio 5000 RTP/AVP 0\r\nm=audio 0 RTP/AVP 0\r\n", "2 m-lines for 1"),
        ("m=audio 5000 RTP/SAVP 0\r\n", "changed the profile"),
    ]:
        ans = parsed("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n" + answer_text)
        result = parse_answer(offer, ans)
        assert isinstance(result, Rejection) and fragment in result.reason, (answer_text, result)


# --------------------------------------------------------------------------- properties

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)
_line_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"),
                     min_size=0, max_size=20).map(str.strip)


@st.composite
def descriptions(draw) -> SessionDescription:
    def media() -> Media:
        fmts = draw(st.lists(st.integers(0, 127).map(str), min_size=1, max_size=5))
        m = Media(draw(st.sampled_from(["audio", "video"])), draw(st.integers(0, 65535)),
                  draw(st.sampled_from(["RTP/AVP", "RTP/AVPF", "RTP/SAVP"])), fmts)
        if draw(st.booleans()):
            m.connection = Connection(draw(st.sampled_from(["10.0.0.1", "::1", "0.0.0.0"])),
                                      addrtype=draw(st.sampled_from(["IP4", "IP6"])))
        for _ in range(draw(st.integers(0, 4))):
            name = draw(_token)
            m.attributes.append((name, draw(st.one_of(st.none(), _line_text))))
        return m

    sd = SessionDescription(
        origin=Origin(draw(_token), str(draw(st.integers(0, 2**63))), draw(st.integers(0, 2**63)),
                      "IN", "IP4", "127.0.0.1"),
        session_name=draw(_line_text.filter(bool)),
    )
    if draw(st.booleans()):
        sd.connection = Connection("192.0.2.1")
    sd.attributes = [(draw(_token), draw(st.one_of(st.none(), _line_text))) for _ in range(draw(st.integers(0, 3)))]
    sd.media = [media() for _ in range(draw(st.integers(0, 4)))]
    return sd


@settings(max_examples=200, deadline=None)
@given(descriptions())
def test_serialize_parse_round_trip(sd):
    text = sd.serialize()
    again = parse_sdp(text)
    assert isinstance(again, SessionDescription), (again, text)
    assert again == sd
    # answering anything either succeeds or is a clear rejection
    result = build_answer(again, "127.0.0.1", 30000)
    assert isinstance(result, Answer | Rejection)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400)))
def test_parser_never_raises(data):
    result = parse_sdp(data)
    assert isinstance(result, SessionDescription | SdpError)
    if isinstance(result, SessionDescription):
        assert isinstance(build_answer(result, "127.0.0.1", 1), Answer | Rejection)
        assert isinstance(parse_answer(build_offer("127.0.0.1", 2), result), NegotiatedAudio | Rejection)


@settings(max_examples=100, deadline=None)
@given(prefix=st.sampled_from([BARESIP_OFFER, PJSUA2_OFFER, SIPP_OFFER]),
       cut=st.integers(0, 400), junk=st.text(max_size=30))
def test_mangled_real_offers_never_raise(prefix, cut, junk):
    result = parse_sdp(prefix[:cut] + junk + prefix[cut:])
    if isinstance(result, SessionDescription):
        assert isinstance(build_answer(result, "127.0.0.1", 1), Answer | Rejection)


_codec_names = st.lists(st.sampled_from(["PCMU", "PCMA", "G722"]), unique=True, max_size=3).map(tuple)


@settings(max_examples=150, deadline=None)
@given(ours=_codec_names, theirs=_codec_names, prefer=st.sampled_from(["offerer", "ours"]),
       their_events=st.frozensets(st.integers(0, 16)), te=st.booleans())
def test_negotiation_picks_by_policy_or_rejects(ours, theirs, prefer, their_events, te):
    offer = build_offer("10.0.0.1", 4000, AudioCapabilities(codecs=theirs, telephone_event=te,
                                                            events=their_events or frozenset({0})))
    result = build_answer(parsed(offer.serialize()), "10.0.0.2", 5000,
                          AudioCapabilities(codecs=ours, prefer=prefer))
    common = [c for c in (theirs if prefer == "offerer" else ours) if c in ours and c in theirs]
    if not common:
        assert isinstance(result, Rejection) and result.status == 488
        return
    assert isinstance(result, Answer), result
    assert result.audio.codec.name == common[0]
    if te:
        assert result.audio.telephone_events == (their_events or frozenset({0})) & frozenset(range(17))
    else:
        assert result.audio.telephone_event_pt is None
    # and the offerer reads the same agreement out of the answer
    back = parse_answer(offer, parsed(result.sdp.serialize()))
    assert isinstance(back, NegotiatedAudio)
    assert (back.codec, back.payload_type, back.telephone_event_pt) == (
        result.audio.codec, result.audio.payload_type, result.audio.telephone_event_pt)
    assert back.telephone_events == result.audio.telephone_events


# --------------------------------------------------------------------------- real phones


class AnsweringUas:
    """A raw loopback UAS that answers every INVITE (and re-INVITE) with roomtone's SDP answer."""

    def __init__(self, caps: AudioCapabilities = DEFAULT_CAPS) -> None:
        self.session = SdpSession("127.0.0.1", free_port(span=2, tcp=False, rtp=True), caps)
        self.offers: list[SessionDescription] = []
        self.answers: list[Answer] = []
        self.uas = RawUas(self.policy)

    def policy(self, req: RawMessage) -> list[bytes]:
        if req.method == "INVITE":
            offer = parsed(req.body)
            self.offers.append(offer)
            result = self.session.answer(offer)
            if isinstance(result, Rejection):
                return [response(req, result.status, "Not Acceptable Here")]
            self.answers.append(result)
            return [response(req, 200, "OK", body=bytes(result.sdp), contact=self.uas.contact)]
        if req.method in ("BYE", "INFO", "OPTIONS", "UPDATE"):
            return [response(req, 200, "OK")]
        return []


@pytest.mark.interop
def test_live_pjsua2_offer_answer_hold_unhold():
    server = AnsweringUas()
    with server.uas, pjsua_phone() as phone:
        phone.call(server.uas.uri("bob"))
        phone.wait_state("CONFIRMED")
        phone.wait_event("media", active=True)
        live = server.offers[0].media[0]
        fixture = parsed(PJSUA2_OFFER).media[0]
        assert (live.formats, live.attribute_values("rtpmap"), live.fmtp(120)) == (
            fixture.formats, fixture.attribute_values("rtpmap"), fixture.fmtp(120))
        assert server.answers[0].audio.codec == PCMU
        start = len(phone.events)
        phone.command("hold")
        server.uas.wait_for("INVITE", 2)
        assert server.offers[1].media[0].direction == "sendonly"
        assert server.answers[1].audio.direction == "recvonly"
        phone.wait_event("media", start=start)  # pjsua applied our recvonly answer
        phone.command("unhold")
        server.uas.wait_for("INVITE", 3)
        assert server.offers[2].media[0].direction == "sendrecv"
        assert server.answers[2].audio.direction == "sendrecv"
        assert server.offers[2].origin.session_version > server.offers[1].origin.session_version
        phone.hangup()
        phone.wait_state("DISCONNECTED")


@pytest.mark.interop
def test_live_baresip_offer_answer_and_hold():
    server = AnsweringUas(AudioCapabilities(codecs=("G722", "PCMU"), prefer="ours"))
    with server.uas, baresip_phone(codecs=("PCMU", "PCMA", "G722")) as phone:
        phone.dial(server.uas.uri("bob"))
        phone.wait_event("CALL_ESTABLISHED")
        live = server.offers[0].media[0]
        assert live.formats == parsed(BARESIP_OFFER).media[0].formats
        assert server.answers[0].audio.codec == G722  # our order, on request
        phone.command("hold")
        server.uas.wait_for("INVITE", 2)
        assert is_hold(server.offers[1]) and server.answers[1].audio.direction == "recvonly"
        phone.command("resume")
        server.uas.wait_for("INVITE", 3)
        assert server.answers[2].audio.direction == "sendrecv"
        phone.hangup()
        phone.wait_event("CALL_CLOSED")


@pytest.mark.interop
def test_live_sipp_offer_is_answered_and_unsatisfiable_offer_gets_488():
    server = AnsweringUas()
    with server.uas:
        result = run_sipp(uac_scenario(hold_ms=100), f"127.0.0.1:{server.uas.port}", timeout=15)
        assert result.ok, result.report()
        assert server.answers[0].audio.codec == PCMU and server.answers[0].audio.telephone_event_pt == 101
    only_g722 = AnsweringUas(AudioCapabilities(codecs=("G722",)))
    with only_g722.uas:
        result = run_sipp(uac_scenario(hold_ms=100), f"127.0.0.1:{only_g722.uas.port}", timeout=10)
        assert not result.ok
        assert "SIP/2.0 488" in result.messages
    assert not only_g722.answers
