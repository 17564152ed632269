"""The sans-IO RTP session: audio both ways, DTMF by RFC 4733 and in-band, dedup, RTCP, timeouts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from roomtone.dtmf.digits import DtmfError, parse_sequence
from roomtone.dtmf.tones import ToneGenerator
from roomtone.media import rtp
from roomtone.media.codecs import G722, PCMA, PCMU
from roomtone.media.dtmf_mux import DtmfEvent, DtmfStart
from roomtone.media.session import MediaTimeout, RtpSession, SessionConfig

from .linkutil import Net, Path

A = ("127.0.0.1", 22100)
B = ("127.0.0.1", 22102)


def pair(cfg_a: SessionConfig | None = None, cfg_b: SessionConfig | None = None,
         path_to_b: Path | None = None, path_to_a: Path | None = None, seed: int = 1):
    net = Net()
    a = RtpSession(cfg_a or SessionConfig(telephone_event_pt=101), remote=B, rng=random.Random(seed))
    b = RtpSession(cfg_b or SessionConfig(telephone_event_pt=101), remote=A, rng=random.Random(seed + 1))
    net.add(a, A, path_to_a)
    net.add(b, B, path_to_b)
    return net, a, b


def digits(events: list[object]) -> list[tuple[str, str]]:
    return [(e.digit, e.method) for e in events if isinstance(e, DtmfEvent)]


def test_audio_reaches_the_other_side_in_order_after_the_jitter_delay():
    net, a, b = pair()
    t = np.arange(8000) / 8000
    sine = (6000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    for i in range(0, 8000, 160):
        a.send_audio(sine[i:i + 160])
    net.run(1.5)
    got = np.concatenate(net.audio[id(b)])
    ref = PCMU.new_decoder().decode(PCMU.new_encoder().encode(sine))
    # find the sine in the received stream; it must be there intact
    start = int(np.argmax(np.abs(got) > 0)) - 1  # the sine starts at 0
    assert np.array_equal(got[start:start + 8000], ref)
    assert b.stats.rtp_received >= 50 and b.jitter.stats.lost == 0


@pytest.mark.parametrize("codec,pt", [(PCMA, 8), (G722, 9)])
def test_other_codecs_carry_audio(codec, pt):
    cfg = SessionConfig(codec=codec, payload_type=pt, inband_detection=False, suppress_tones=False)
    net, a, b = pair(cfg, SessionConfig(codec=codec, payload_type=pt, inband_detection=False,
                                        suppress_tones=False))
    n = codec.sample_rate
    t = np.arange(n) / n
    a.send_audio((6000 * np.sin(2 * np.pi * 700 * t)).astype(np.int16))
    net.run(1.5)
    got = np.concatenate(net.audio[id(b)])
    assert len(net.audio[id(b)][0]) == codec.frame_samples()
    loud = np.abs(got.astype(np.int32)) > 3000
    assert loud.sum() > n // 3  # most of the second of sine arrived


def test_rfc4733_digits_arrive_once_each_in_order_with_shared_ssrc_and_clock():
    net, a, b = pair(SessionConfig(telephone_event_pt=101, inband_detection=False))
    sent: list[rtp.RtpPacket] = []
    orig = a.take_datagrams

    def spy():  # what goes on the wire, parsed back
        out = orig()
        for data, _, is_rtcp in out:
            if not is_rtcp:
                pkt = rtp.parse_rtp(data)
                assert isinstance(pkt, rtp.RtpPacket) and pkt.ssrc == a.ssrc
                sent.append(pkt)
        return out

    a.take_datagrams = spy  # type: ignore[method-assign]
    net.run(0.1)
    job = a.queue_dtmf(parse_sequence("0123456789*#ABCD"), "rfc4733")
    net.run(6.0)
    assert job.done and job.tones_sent == 16
    assert digits(net.events[id(b)]) == [(d, "rfc4733") for d in "0123456789*#ABCD"]
    ev = [e for e in net.events[id(b)] if isinstance(e, DtmfEvent)]
    assert all(abs(e.duration - 0.16) < 1e-9 for e in ev)
    # audio and events: one SSRC; each event's timestamp is on the audio clock and no audio
    # packet is sent while an event is on the wire
    events = [p for p in sent if p.payload_type == 101]
    audio = [p for p in sent if p.payload_type == 0]
    first = events[0]
    assert first.marker
    assert any(p.timestamp == first.timestamp - 160 for p in audio)  # audio frame just before
    during = [p for p in audio if first.timestamp <= p.timestamp < first.timestamp + 1280]
    assert during == []


def test_audio_kept_during_events_when_configured():
    net, a, b = pair(SessionConfig(telephone_event_pt=101, audio_during_events="keep"))
    a.queue_dtmf(parse_sequence("5"), "rfc4733")
    before = a.stats.rtp_sent
    net.run(0.5)
    assert a.stats.rtp_sent - before - a.stats.events_sent >= 24  # audio every 20 ms throughout
    assert digits(net.events[id(b)]) == [("5", "rfc4733")]


def test_rfc4733_refused_when_not_negotiated():
    s = RtpSession(SessionConfig(telephone_event_pt=None))
    with pytest.raises(ValueError, match="not negotiated"):
        s.queue_dtmf(parse_sequence("1"), "rfc4733")
    with pytest.raises(DtmfError):
        s.queue_dtmf(parse_sequence("R"), "inband")


def test_inband_digits_are_detected_by_the_receiving_session():
    net, a, b = pair(SessionConfig(telephone_event_pt=None), SessionConfig(telephone_event_pt=None))
    job = a.queue_dtmf(parse_sequence("147*2580369#ABCD"), "inband", tone_ms=100, gap_ms=80)
    net.run(4.0)
    assert job.done
    assert digits(net.events[id(b)]) == [(d, "inband") for d in "147*2580369#ABCD"]


def test_a_pbx_sending_events_and_tones_is_heard_once_per_press():
    cfg_a = SessionConfig(telephone_event_pt=101, audio_during_events="keep", inband_detection=False)
    net, a, b = pair(cfg_a)
    gen = ToneGenerator(8000)
    # the tones go out in the audio exactly when the events do (same 160 ms / 120 ms pattern)
    for d in "1590#":
        a.send_audio(gen.tone(d, 0.16))
        a.send_audio(gen.silence(0.12))
    a.queue_dtmf(parse_sequence("1590#"), "rfc4733")
    net.run(3.0)
    got = net.events[id(b)]
    assert digits(got) == [(d, "rfc4733") for d in "1590#"]
    assert b.dedup.merged == 5  # the detector heard every tone, and each was merged
    starts = [e for e in got if isinstance(e, DtmfStart)]
    assert [s.digit for s in starts] == list("1590#")


def test_detection_can_be_switched_off():
    cfg_b = SessionConfig(telephone_event_pt=None, inband_detection=False)
    net, a, b = pair(SessionConfig(telephone_event_pt=None), cfg_b)
    a.queue_dtmf(parse_sequence("12"), "inband")
    net.run(1.5)
    assert digits(net.events[id(b)]) == []


def test_detected_tones_are_muted_in_the_audio_handed_onward():
    net, a, b = pair(SessionConfig(telephone_event_pt=None),
                     SessionConfig(telephone_event_pt=None, suppress_tones=True, suppress_delay=0.06))
    t = np.arange(4000) / 8000
    a.send_audio((3000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16))  # 0.5 s of "speech"
    net.run(0.6)
    a.queue_dtmf(parse_sequence("8"), "inband", tone_ms=200)
    net.run(1.0)
    got = np.concatenate(net.audio[id(b)]).astype(np.int32)
    assert digits(net.events[id(b)]) == [("8", "inband")]
    # the 300 Hz audio came through, and no window of the 200 ms tone is still audible
    windows = np.abs(got[: len(got) // 80 * 80].reshape(-1, 80)).max(axis=1)
    loud = np.nonzero(windows > 1500)[0]
    assert len(loud) > 30  # the sine (0.5 s = 50 windows, edges faded)
    tone_windows = np.nonzero(windows[loud[-1] + 1:] > 500)[0]
    assert len(tone_windows) <= 1  # at most the 10 ms before the detector's onset estimate


def test_rfc4733_over_a_lossy_reordering_path_every_digit_exactly_once():
    seq = "0123456789*#ABCD" * 2
    for seed in range(6):
        path = Path(loss=0.2, duplicate=0.05, delay=0.02, jitter=0.06, seed=seed)
        net, a, b = pair(SessionConfig(telephone_event_pt=101, inband_detection=False),
                         SessionConfig(telephone_event_pt=101, inband_detection=False),
                         path_to_b=path, seed=seed * 3)
        a.queue_dtmf(parse_sequence(seq), "rfc4733")
        net.run(10.0)
        assert "".join(d for d, _ in digits(net.events[id(b)])) == seq, f"seed {seed}"


def test_symmetric_rtp_answers_to_where_packets_come_from():
    net = Net()
    a = RtpSession(SessionConfig(), remote=B)
    b = RtpSession(SessionConfig(symmetric_rtp=True), remote=("127.0.0.1", 22998))  # SDP lied (NAT)
    net.add(a, A)
    net.add(b, B)
    net.run(0.5)
    assert b.remote == A and b.remote_rtcp == (A[0], A[1] + 1)
    assert b.stats.rtp_sent > 0 and a.stats.rtp_received > 0


def test_symmetric_rtp_off_keeps_the_signalled_address():
    b = RtpSession(SessionConfig(symmetric_rtp=False), remote=("127.0.0.1", 22998))
    pkt = rtp.RtpPacket(0, 1, 160, 7, b"\xff" * 160).serialize()
    b.receive_rtp(pkt, A, 0.0)
    assert b.remote == ("127.0.0.1", 22998)


def test_media_timeout_is_reported_once():
    s = RtpSession(SessionConfig(media_timeout=1.0), remote=B)
    events = []
    t = 0.0
    while t < 3.0:
        s.tick(t)
        events += s.take_events()
        t += 0.02
    assert [type(e) for e in events] == [MediaTimeout]


def test_rtcp_reports_carry_reception_statistics():
    path = Path(loss=0.1, seed=3)
    net, a, b = pair(SessionConfig(rtcp_interval=1.0), SessionConfig(rtcp_interval=1.0), path_to_b=path)
    reports: list = []
    orig = a.receive_rtcp

    def spy(data, addr, now):
        parsed = rtp.parse_rtcp(data)
        assert not isinstance(parsed, rtp.RtpError)
        reports.extend(parsed)
        orig(data, addr, now)

    a.receive_rtcp = spy  # type: ignore[method-assign]
    net.run(5.0)
    srs = [p for p in reports if isinstance(p, rtp.SenderReport)]
    assert srs and all(p.ssrc == b.ssrc for p in srs)
    block = srs[-1].reports[0]
    assert block.ssrc == a.ssrc
    assert 0 < block.cumulative_lost < 60  # ~10% of ~250 packets
    assert block.last_sr != 0  # b heard a's sender reports
    assert any(isinstance(p, rtp.SourceDescription) for p in reports)


def test_garbage_and_unknown_payload_types_are_counted_not_fatal():
    s = RtpSession(SessionConfig(telephone_event_pt=101), remote=B)
    s.receive_rtp(b"\x00\x01", B, 0.0)
    s.receive_rtp(rtp.RtpPacket(96, 1, 0, 5, b"xx").serialize(), B, 0.0)
    s.receive_rtp(rtp.RtpPacket(101, 2, 0, 5, b"bad").serialize(), B, 0.0)  # bad event payload
    s.receive_rtcp(b"\x80\xc8\x00\x09", B, 0.0)
    s.tick(0.1)
    assert s.stats.malformed == 2 and s.stats.unknown_payload_type == 1
    assert s.rfc4733_anomalies == 1


def test_close_sends_rtcp_bye():
    s = RtpSession(SessionConfig(), remote=B)
    s.tick(0.0)
    s.take_datagrams()
    s.close(0.1)
    (data, addr, is_rtcp), = s.take_datagrams()
    parsed = rtp.parse_rtcp(data)
    assert is_rtcp and addr == (B[0], B[1] + 1)
    assert any(isinstance(p, rtp.Bye) for p in parsed)  # type: ignore[union-attr]


def test_symmetric_rtp_ignores_a_second_source_while_the_first_is_alive():
    s = RtpSession(SessionConfig(symmetric_rtp=True), remote=B)
    good, evil = ("127.0.0.1", 22700), ("127.0.0.1", 22702)
    for i in range(5):
        s.receive_rtp(rtp.RtpPacket(0, i, i * 160, 7, b"\xff" * 160).serialize(), good, i * 0.02)
    s.receive_rtp(rtp.RtpPacket(0, 99, 99 * 160, 8, b"\x00" * 160).serialize(), evil, 0.1)
    assert s.remote == good and s.stats.foreign_source == 1 and s.stats.rtp_received == 5
    # the phone moves: its old address went quiet, the new one is followed
    s.receive_rtp(rtp.RtpPacket(0, 6, 6 * 160, 7, b"\xff" * 160).serialize(), evil, 1.0)
    assert s.remote == evil and s.stats.rtp_received == 6


def test_rfc4733_presses_from_a_peer_sending_no_audio_do_not_mute_the_call_for_good():
    """A phone that sends telephone-events but no audio (yet): each press's start and end map to
    different stream positions, and the start's open span used to stay open for ever, muting
    everything the call received afterwards and piling up spans."""
    import struct

    from roomtone.media.g711 import ulaw_encode

    net = Net()
    b = RtpSession(SessionConfig(telephone_event_pt=101, suppress_tones=True, suppress_delay=0.04),
                   remote=A, rng=random.Random(3))
    net.add(b, B)

    def event(seq: int, ts: int, code: int, end: bool, duration: int, marker: bool) -> bytes:
        header = rtp.RtpPacket(payload_type=101, sequence=seq, timestamp=ts, ssrc=0x1234, marker=marker,
                               payload=struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration))
        return header.serialize()

    seq = 0
    for press in range(3):
        ts = 8000 * (press + 1) * 10
        b.receive_rtp(event(seq, ts, 5, False, 160, True), A, net.now)
        seq += 1
        net.run(0.1)
        for _ in range(3):
            b.receive_rtp(event(seq, ts, 5, True, 800, False), A, net.now)
            seq += 1
        net.run(0.2)
    assert [d for d, _ in digits(net.events[id(b)])] == ["5", "5", "5"]
    # now the phone's audio starts: it is handed onward, not muted
    net.audio[id(b)].clear()
    tone = ulaw_encode((3000 * np.sin(2 * np.pi * 300 * np.arange(160) / 8000)).astype(np.int16))
    ts = 8000 * 50
    for k in range(50):
        b.receive_rtp(rtp.RtpPacket(payload_type=0, sequence=seq, timestamp=ts + 160 * k, ssrc=0x1234,
                                    payload=tone).serialize(), A, net.now)
        seq += 1
        net.run(0.02)
    net.run(0.2)
    heard = np.concatenate(net.audio[id(b)]).astype(np.int32)
    assert np.abs(heard).max() > 2000
    assert np.count_nonzero(np.abs(heard) > 1000) > 8000 // 4  # most of the 1 s got through
