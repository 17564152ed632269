"""roomtone calls with real phones on loopback: SIPp, baresip and pjsua2, each direction and method.

roomtone's side runs in the test's event loop (UserAgent + MediaEngine + MediaCall); the phones'
harnesses (tests/phones) are blocking, so their waits run in threads. Assertions are on digits,
order and the method each side reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import numpy as np
import pytest

from roomtone.dtmf.detector import detect
from roomtone.media.call import CallOptions, MediaCall
from tests.pcaps import inband_pcap, rfc4733_pcap
from tests.phones.baresip import baresip_phone
from tests.phones.media import read_wav, tones_wav
from tests.phones.pjsua import pjsua_phone
from tests.phones.sipp import sipp, uac_scenario

from .endpoint import Endpoint

pytestmark = pytest.mark.interop

ALL16 = "0123456789*#ABCD"


class Roomtone(Endpoint):
    """roomtone as the phone under test (user ``roomtone``)."""

    def __init__(self, options: CallOptions | None = None) -> None:
        super().__init__("roomtone", (23000, 24999), options)

    async def called_by_pjsua(self, pj) -> MediaCall:
        """``pj`` calls us; our side of the call once pjsua2 reports the call up and media on."""
        await asyncio.to_thread(pj.call, self.uri)
        call = await self.next_call()
        await asyncio.to_thread(pj.wait_state, "CONFIRMED")
        await asyncio.to_thread(pj.wait_event, "media", active=True)
        return call


async def received(call: MediaCall, n: int, timeout: float = 15.0) -> list[tuple[str, str]]:
    """The first ``n`` digits the call reports (fewer if they do not come in time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(call.received) < n and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return [(e.digit, e.method) for e in call.received]


async def detected_in_recordings(paths_fn, expected: str, timeout: float = 10.0) -> str:
    """Digits roomtone's detector finds in a phone's growing recording(s)."""
    found = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in paths_fn():
            with contextlib.suppress(ValueError, OSError):
                samples, rate = read_wav(path)
                pcm = np.clip(samples * 32768, -32768, 32767).astype(np.int16)
                got = "".join(d.digit for d in detect(pcm, rate))
                if got == expected:
                    return got
                found = got or found
        await asyncio.sleep(0.3)
    return found


# ---------------------------------------------------------------------------- SIPp

async def test_sipp_sends_info_and_rfc4733_pcap_roomtone_reports_each_once(tmp_path):
    pcap = str(tmp_path / "events.pcap")
    length = rfc4733_pcap(pcap, "73#D")
    async with Roomtone() as rt:
        scenario = uac_scenario(info_dtmf="08*", pcap=pcap, hold_ms=int(length * 1000) + 800)
        with sipp(scenario, f"127.0.0.1:{rt.ua.port}", timeout=30) as s:
            call = await rt.next_call()
            got = await received(call, 7)
            result = await asyncio.to_thread(s.wait)
        assert result.ok, result.report()
    by_method = {m: "".join(d for d, mm in got if mm == m) for m in ("info", "rfc4733", "inband")}
    assert by_method == {"info": "08*", "rfc4733": "73#D", "inband": ""}, got


async def test_sipp_plays_inband_pcap_roomtone_detects_it(tmp_path):
    pcap = str(tmp_path / "tones.pcap")
    length = inband_pcap(pcap, "2580*#")
    async with Roomtone() as rt:
        with sipp(uac_scenario(pcap=pcap, hold_ms=int(length * 1000) + 800),
                  f"127.0.0.1:{rt.ua.port}", timeout=30) as s:
            call = await rt.next_call()
            got = await received(call, 6)
            result = await asyncio.to_thread(s.wait)
        assert result.ok, result.report()
    assert got == [(d, "inband") for d in "2580*#"]


# ---------------------------------------------------------------------------- baresip

async def test_baresip_sends_rfc4733_and_inband_to_roomtone(tmp_path):
    wav = str(tmp_path / "tones.wav")
    tones_wav(wav, "9*0D", 48000, channels=2)  # baresip's source in this harness is 48 kHz stereo
    async with Roomtone() as rt:
        with baresip_phone() as b:
            await asyncio.to_thread(b.dial, rt.uri)
            call = await rt.next_call()
            await asyncio.to_thread(b.wait_event, "CALL_ESTABLISHED")
            await asyncio.to_thread(b.send_dtmf, ALL16, 0.2)
            got = await received(call, 16)
            assert got == [(d, "rfc4733") for d in ALL16]
            await asyncio.to_thread(b.play_file, wav)
            got = await received(call, 20)
            assert got[16:] == [(d, "inband") for d in "9*0D"]
            await call.hangup()
            await asyncio.to_thread(b.wait_event, "CALL_CLOSED")


async def test_roomtone_sends_all_three_methods_to_baresip():
    async with Roomtone() as rt:
        with baresip_phone(auto_answer=True, record=True) as b:
            call = await rt.call(b.uri)
            assert call.telephone_event and call.peer_allows_info
            sent = await call.send_dtmf(ALL16, method="rfc4733")
            assert sent.method == "rfc4733"
            got = await asyncio.to_thread(b.wait_digits, 16)
            assert [(e["digit"], e["method"]) for e in got] == [(d, "rfc4733") for d in ALL16]
            await call.send_dtmf("2*A", method="info")
            got = (await asyncio.to_thread(b.wait_digits, 19))[16:]
            assert [(e["digit"], e["method"]) for e in got] == [(d, "info") for d in "2*A"]
            await call.send_dtmf("58#", method="inband")
            assert await detected_in_recordings(b.recordings, "58#") == "58#"
            assert len(b.dtmf) == 19  # baresip saw no extra digit from the tones
            await call.hangup()


# ---------------------------------------------------------------------------- pjsua2

async def test_pjsua_sends_all_three_methods_to_roomtone():
    async with Roomtone() as rt:
        with pjsua_phone() as pj:
            call = await rt.called_by_pjsua(pj)
            await asyncio.to_thread(pj.send_dtmf, "12AB", method="rfc4733")
            assert await received(call, 4) == [(d, "rfc4733") for d in "12AB"]
            await asyncio.to_thread(pj.send_dtmf, "3#", method="info")
            assert (await received(call, 6))[4:] == [("3", "info"), ("#", "info")]
            await asyncio.to_thread(pj.send_dtmf, "4567", method="inband", duration_ms=120)
            assert (await received(call, 10))[6:] == [(d, "inband") for d in "4567"]
            await asyncio.sleep(0.5)
            assert len(call.received) == 10  # nothing reported twice
            await asyncio.to_thread(pj.hangup)
            await asyncio.wait_for(call.wait_ended(), 5)


async def test_roomtone_sends_all_three_methods_to_pjsua(tmp_path):
    rec = str(tmp_path / "rx.wav")
    async with Roomtone() as rt:
        with pjsua_phone(auto_answer=True) as pj:
            call = await rt.call(pj.uri)
            await asyncio.to_thread(pj.wait_event, "media", active=True)
            await asyncio.to_thread(pj.record, rec)
            await call.send_dtmf("159#", method="rfc4733")
            got = await asyncio.to_thread(pj.wait_digits, 4)
            assert [(e["digit"], e["method"]) for e in got] == [(d, "rfc4733") for d in "159#"]
            await call.send_dtmf("0C", method="info")
            got = (await asyncio.to_thread(pj.wait_digits, 6))[4:]
            assert [(e["digit"], e["method"]) for e in got] == [("0", "info"), ("C", "info")]
            await call.send_dtmf("7*3", method="inband")
            assert await detected_in_recordings(lambda: [rec], "7*3") == "7*3"
            await call.hangup()


async def test_g722_call_with_baresip_carries_dtmf_both_ways(tmp_path):
    """Wideband: G.722 (16 kHz audio, 8 kHz RTP clock) with RFC 4733 both ways and in-band from
    baresip detected by roomtone at 16 kHz."""
    wav = str(tmp_path / "tones.wav")
    tones_wav(wav, "369", 48000, channels=2)
    async with Roomtone(CallOptions(codecs=("G722",))) as rt:
        with baresip_phone(auto_answer=True, codecs=("G722",)) as b:
            call = await rt.call(b.uri)
            assert call.negotiated.codec.name == "G722" and call.sample_rate == 16000
            await call.send_dtmf("1A#", method="rfc4733")
            got = await asyncio.to_thread(b.wait_digits, 3)
            assert [(e["digit"], e["method"]) for e in got] == [("1", "rfc4733"), ("A", "rfc4733"), ("#", "rfc4733")]
            await asyncio.sleep(0.5)
            await asyncio.to_thread(b.send_dtmf, "47", 0.2)
            assert await received(call, 2) == [("4", "rfc4733"), ("7", "rfc4733")]
            await asyncio.to_thread(b.play_file, wav)
            assert (await received(call, 5))[2:] == [(d, "inband") for d in "369"]
            await call.hangup()


async def test_a_phone_sending_each_key_by_two_methods_is_heard_once_per_press():
    """Like a PBX that sends RFC 4733 *and* INFO (or tones) for every key: pjsua2 sends each digit
    both ways at once; roomtone reports each press once, named by the method that came first."""
    async with Roomtone() as rt:
        with pjsua_phone() as pj:
            call = await rt.called_by_pjsua(pj)
            for d in "383":
                await asyncio.gather(asyncio.to_thread(pj.send_dtmf, d, method="rfc4733"),
                                     asyncio.to_thread(pj.send_dtmf, d, method="info"))
                await asyncio.sleep(0.6)
            await received(call, 3)
            await asyncio.sleep(0.5)
            assert "".join(e.digit for e in call.received) == "383"
            assert call.stream.session.dedup.merged == 3
            await asyncio.to_thread(pj.hangup)
