"""Outbound early media into the room: a callee that answers CreateSIPParticipant's INVITE with
183 + SDP (carrier ringback, an IVR announcement before the answer) is heard in the room, and its
key presses are relayed, while ``sip.callStatus`` is ``ringing``; the 200 then makes it ``active``.

SIPp is the callee: it sends 183 with SDP, plays a pcap (a 700 Hz tone, then RFC 4733 digits, one
RTP stream written by :mod:`tests.pcaps`' tools), and only then the 200. The room side is a plain
room participant (CallbackEndpoint) that records each packet with the SIP participant's status at
the moment it arrived, and reads the SIP participant's published track.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from livekit.protocol import models
from livekit.protocol import sip as sip_pb

from roomtone.dtmf.rfc4733 import Sender, SenderConfig
from roomtone.media.g711 import ulaw_encode
from roomtone.media.rtp import RtpPacket
from roomtone.rooms import CallbackEndpoint
from roomtone.rtc.media import subscribe
from roomtone.telephony.audio import _mixes as audio_mixes
from roomtone.telephony.errors import TelephonyError
from roomtone.telephony.gateway import SipGateway
from tests.pcaps import Frame, write_pcap
from tests.phones.sipp import OK_TO_LAST, PCMU_SDP, callee_response, sipp

from .conftest import wait_for

pytestmark = pytest.mark.interop

TONE_HZ = 700

_SDP = PCMU_SDP


_BYE_OK = '  <recv request="BYE"/>\n' + OK_TO_LAST


def ivr_callee(pcap: str, early_ms: int, *, final: str = "200") -> str:
    """183 with SDP, the pcap as early media for ``early_ms``, then ``200`` (answer; waits for
    our BYE) or ``486`` (refuses after the announcement)."""
    head = ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="early media callee">\n'
            '  <recv request="INVITE"/>\n' + callee_response("183 Session Progress", body=_SDP)
            + f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
            + f'  <pause milliseconds="{early_ms}"/>\n')
    if final == "200":
        tail = callee_response("200 OK", body=_SDP, retrans=True) + '  <recv request="ACK"/>\n' + _BYE_OK
    else:
        tail = callee_response("486 Busy Here", retrans=True) + '  <recv request="ACK"/>\n'
    return head + tail + '  <timewait milliseconds="300"/>\n</scenario>\n'


def tone_then_digits_pcap(path: Path, digits: str, *, tone_s: float = 1.6) -> float:
    """One RTP stream (PCMU + telephone-event 101): ``tone_s`` of a 700 Hz tone, then ``digits``
    as RFC 4733 events over silence. Returns its length in seconds."""
    n = np.arange(int(8000 * tone_s))
    tone = ulaw_encode((0.3 * 32767 * np.sin(2 * np.pi * TONE_HZ * n / 8000)).astype(np.int16))
    silence = ulaw_encode(np.zeros(160, dtype=np.int16))
    sender = Sender(SenderConfig(tone_ms=100, gap_ms=200))
    packets: list[tuple[float, bytes]] = []
    seq, ts, t, k = 1, 1000, 1.0, 0
    handle = None
    while True:
        sender.sync(t, ts)
        if k * 160 < len(tone):
            packets.append((t, RtpPacket(0, seq, ts, 0x3C3C3C3C, tone[k * 160:(k + 1) * 160], k == 0).serialize()))
            seq += 1
        else:
            if handle is None:
                handle = sender.enqueue(digits)
            events = sender.poll(t)
            for p in events:
                packets.append((t, RtpPacket(101, seq, p.timestamp, 0x3C3C3C3C, p.payload, p.marker).serialize()))
                seq += 1
            if not sender.active and not events:
                packets.append((t, RtpPacket(0, seq, ts, 0x3C3C3C3C, silence).serialize()))
                seq += 1
            if handle.finished and not sender.active:
                break
        k, ts, t = k + 1, ts + 160, round(t + 0.02, 6)
    write_pcap(path, [Frame(at, "127.0.0.1", 40000, "127.0.0.1", 40002, rtp) for at, rtp in packets])
    return packets[-1][0] - packets[0][0]


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


async def test_callee_early_media_is_heard_and_its_digits_relayed_while_ringing(gw: SipGateway, tmp_path: Path) -> None:
    pcap = tmp_path / "ivr.pcap"
    length = tone_then_digits_pcap(pcap, "4#")
    rooms = gw.rooms
    seen: list[tuple[str, str, str]] = []  # (digit, from identity, callee's sip.callStatus then)
    statuses: list[str] = []

    def on_data(packet: models.DataPacket) -> None:
        if packet.WhichOneof("value") == "sip_dtmf":
            callee = rooms.participant("ivr", "callee")
            status = callee.record.attributes.get("sip.callStatus", "") if callee else ""
            seen.append((packet.sip_dtmf.digit, packet.participant_identity, status))

    def on_participants(infos: list[models.ParticipantInfo]) -> None:
        for info in infos:
            status = info.attributes.get("sip.callStatus")
            if info.identity == "callee" and status and (not statuses or statuses[-1] != status):
                statuses.append(status)

    agent = await rooms.join("ivr", "agent", endpoint=CallbackEndpoint(on_data=on_data, on_participants=on_participants))
    with sipp(ivr_callee(str(pcap), int(length * 1000) + 1200), timeout=30) as callee:
        await gw.store.put_outbound_trunk(sip_pb.SIPOutboundTrunkInfo(
            sip_trunk_id="ST_ivr", address=f"127.0.0.1:{callee.port}", numbers=["+15550999"]))
        await gw.create_sip_participant(sip_pb.CreateSIPParticipantRequest(
            sip_trunk_id="ST_ivr", sip_call_to="service", room_name="ivr", participant_identity="callee",
            play_dialtone=True))
        sip = rooms.participant("ivr", "callee")
        assert sip is not None
        # the early media replaces our dial tone as the participant's track
        await wait_for(lambda: [t.name for t in sip.record.tracks] == ["phone"], 10, "phone track published")
        (call,) = gw.calls.values()
        assert call.media is not None and call.media.state == "early"
        await wait_for(lambda: call.media.stream.session.stats.rtp_received > 10, 5, "early RTP")
        proxy = subscribe(sip.media[sip.record.tracks[0].sid])
        chunks: list[np.ndarray] = []
        try:
            while sum(map(len, chunks)) < 8000 * 0.6:
                frame = await asyncio.wait_for(proxy.recv(), 2)
                chunks.append(frame.to_ndarray().reshape(-1))
        finally:
            proxy.stop()
        heard = np.concatenate(chunks)[-2400:]
        assert abs(peak_hz(heard, 8000) - TONE_HZ) <= 15
        assert sip.record.attributes["sip.callStatus"] == "ringing"
        await wait_for(lambda: len(seen) == 2, 10, "two early-media digits")
        await wait_for(lambda: statuses[-1:] == ["active"], 10, "answered")
        await rooms.remove_participant("ivr", "callee")
        result = await callee.finished(20)
    assert result.ok, result.report()
    assert seen == [("4", "callee", "ringing"), ("#", "callee", "ringing")]
    assert statuses[:3] == ["dialing", "ringing", "active"]
    await agent.leave()


async def test_early_media_then_busy_cleans_up(gw: SipGateway, tmp_path: Path) -> None:
    pcap = tmp_path / "busy.pcap"
    length = tone_then_digits_pcap(pcap, "1", tone_s=0.6)
    with sipp(ivr_callee(str(pcap), int(length * 1000) + 300, final="486"), timeout=30) as callee:
        await gw.store.put_outbound_trunk(sip_pb.SIPOutboundTrunkInfo(
            sip_trunk_id="ST_busy", address=f"127.0.0.1:{callee.port}", numbers=["+15550999"]))
        listener = await gw.rooms.join("busy", "agent", endpoint=CallbackEndpoint())
        with pytest.raises(TelephonyError) as err:
            await gw.create_sip_participant(sip_pb.CreateSIPParticipantRequest(
                sip_trunk_id="ST_busy", sip_call_to="service", room_name="busy", wait_until_answered=True))
        assert err.value.code == "resource_exhausted" and err.value.meta["sip_status_code"] == "486"
        result = await callee.finished(20)
    assert result.ok, result.report()
    assert not gw.calls and gw.rooms.participant("busy", "sip_service") is None
    # the early media's audio bridge went with the call (no room mix left behind)
    assert not [key for key in audio_mixes if key[1] == "busy"]
    await listener.leave()
