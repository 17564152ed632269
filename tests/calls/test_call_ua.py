"""Two roomtone user agents calling each other on loopback: media, DTMF by every method, hang-up."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from roomtone.media.call import CallOptions, MediaCall
from roomtone.sip.ua import CallFailed
from tests.waiting import wait_for

from .endpoint import Pair


async def collect(call: MediaCall, n: int, timeout: float = 10.0) -> list[tuple[str, str]]:
    got: list[tuple[str, str]] = []

    async def run():
        async for ev in call.dtmf_events():
            got.append((ev.digit, ev.method))
            if len(got) >= n:
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        pass
    return got


@pytest.mark.parametrize("method", ["rfc4733", "inband"])
async def test_digits_both_directions_by_media_methods(method):
    async with Pair() as p:
        caller, callee = await p.call()
        assert caller.telephone_event and callee.telephone_event
        sent = await caller.send_dtmf("0123456789*#ABCD", method=method, tone_ms=100, gap_ms=80)
        assert sent.method == method and sent.digits == "0123456789*#ABCD"
        got = await collect(callee, 16)
        assert got == [(d, method) for d in "0123456789*#ABCD"]
        await callee.send_dtmf("#9*1", method=method)
        assert await collect(caller, 4) == [(d, method) for d in "#9*1"]
        await caller.hangup()
        await asyncio.wait_for(callee.wait_ended(), 5)
        assert callee.end_reason == "remote BYE"
        assert caller.stream.closed and callee.stream.closed


async def test_auto_uses_rfc4733_when_negotiated_else_inband():
    async with Pair() as p:
        caller, callee = await p.call()
        assert caller.choose_method([]) == "rfc4733"
        await caller.hangup()
    async with Pair() as p:
        p.callee.options = CallOptions(telephone_event=False)
        caller, callee = await p.call()
        assert not caller.telephone_event
        # roomtone's UA lists INFO in Allow, so auto falls to INFO; without it, in-band
        assert caller.choose_method([]) == "info"
        caller.peer_allow = "INVITE, ACK, BYE"
        sent = await caller.send_dtmf("42", method="auto")
        assert sent.method == "inband"
        assert await collect(callee, 2) == [("4", "inband"), ("2", "inband")]
        with pytest.raises(ValueError, match="telephone-event"):
            await caller.send_dtmf("1", method="rfc4733")
        await caller.hangup()


async def test_sends_are_queued_per_call_in_order_and_do_not_block_others():
    async with Pair() as p:
        (a1, b1), (a2, b2) = await p.call(), await p.call()
        t1 = asyncio.ensure_future(a1.send_dtmf("123", method="rfc4733"))
        t2 = asyncio.ensure_future(a1.send_dtmf("456", method="inband"))
        # the other call is not held up by call 1's queue
        await asyncio.wait_for(a2.send_dtmf("9", method="rfc4733"), 2.0)
        assert not t2.done()
        await asyncio.gather(t1, t2)
        assert await collect(b1, 6) == [("1", "rfc4733"), ("2", "rfc4733"), ("3", "rfc4733"),
                                        ("4", "inband"), ("5", "inband"), ("6", "inband")]
        assert await collect(b2, 1) == [("9", "rfc4733")]


async def test_audio_flows_both_ways():
    async with Pair() as p:
        caller, callee = await p.call(CallOptions(inband_detection=False, suppress_tones=False))
        frames: list[np.ndarray] = []
        callee.on_audio = frames.append
        t = np.arange(8000) / 8000
        caller.send_audio((5000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16))
        await wait_for(lambda: sum(1 for f in frames if np.abs(f).max() > 3000) >= 40, 10, "40 loud frames")


async def test_bad_digits_are_refused_before_anything_is_sent():
    from roomtone.dtmf.digits import DtmfError

    async with Pair() as p:
        caller, _ = await p.call()
        with pytest.raises(DtmfError, match="'x'"):
            await caller.send_dtmf("12x")
        with pytest.raises(ValueError, match="flash"):
            await caller.send_dtmf("R", method="inband")
        assert caller.stream.session.stats.events_sent == 0


async def test_media_timeout_hangs_up():
    async with Pair() as p:
        caller, callee = await p.call(CallOptions(media_timeout=0.5))
        callee.stream.close()  # the far end stops sending media (its dialog stays up)
        await asyncio.wait_for(caller.wait_ended(), 5)
        assert caller.end_reason == "local BYE"


async def test_info_both_ways_and_bad_bodies_get_clear_errors():
    async with Pair() as p:
        caller, callee = await p.call()
        sent = await caller.send_dtmf("7R#", method="info", tone_ms=100, gap_ms=50)
        assert sent.method == "info"
        assert await collect(callee, 3) == [("7", "info"), ("R", "info"), ("#", "info")]
        assert [e.duration_ms for e in callee.received] == [100, 100, 100]
        await callee.send_dtmf("5", method="info")
        assert await collect(caller, 1) == [("5", "info")]
        bad = await caller.sip.info(b"Signal=X\r\nDuration=100\r\n", "application/dtmf-relay")
        assert bad.status == 400 and "X" in (bad.reason or "")
        other = await caller.sip.info(b"hello", "text/plain")
        assert other.status == 415
        keepalive = await caller.sip.info(b"", "application/dtmf-relay")  # no body: no Content-Type
        assert keepalive.status == 200  # an empty INFO is a keep-alive
        assert len(callee.received) == 3 and not callee.ended  # the call carries on


async def test_a_digit_sent_by_info_and_rfc4733_at_once_is_reported_once():
    async with Pair() as p:
        caller, callee = await p.call()
        await asyncio.gather(caller.send_dtmf("4", method="rfc4733"),
                             caller.sip.info(b"Signal=4\r\nDuration=160\r\n", "application/dtmf-relay"))
        await wait_for(lambda: callee.stream.session.dedup.merged == 1, 5, "the second report merged")
        assert [(e.digit) for e in callee.received] == ["4"]


async def test_hold_stops_the_held_side_sending_and_unhold_restores():
    async with Pair() as p:
        caller, callee = await p.call(CallOptions(media_timeout=0.6))
        await caller.hold()
        assert caller.negotiated.direction == "sendonly"
        assert not callee.stream.session.send_enabled
        sent = callee.stream.session.stats.rtp_sent
        await asyncio.sleep(1.0)  # longer than the caller's media timeout
        assert callee.stream.session.stats.rtp_sent == sent
        assert not caller.ended  # no timeout while the peer is not expected to send
        with pytest.raises(ValueError, match="holds"):
            await callee.send_dtmf("1", method="rfc4733")
        await caller.unhold()
        assert callee.stream.session.send_enabled and caller.negotiated.direction == "sendrecv"
        await callee.send_dtmf("1", method="rfc4733")
        assert await collect(caller, 1) == [("1", "rfc4733")]


async def test_cancel_dtmf_drops_queued_digits_and_ends_the_tone_on_the_wire():
    from roomtone.media.call import DtmfCancelled

    async with Pair() as p:
        caller, callee = await p.call()
        first = asyncio.ensure_future(caller.send_dtmf("1234567890", method="rfc4733"))
        second = asyncio.ensure_future(caller.send_dtmf("555", method="inband"))
        await asyncio.sleep(0.5)
        caller.cancel_dtmf()
        for task in (first, second):
            with pytest.raises(DtmfCancelled):
                await task
        await asyncio.sleep(0.6)
        got = "".join(e.digit for e in callee.received)
        assert 1 <= len(got) <= 3 and "1234567890".startswith(got)  # no stuck or extra digit
        await caller.send_dtmf("9", method="rfc4733")  # the queue works again
        assert (await collect(callee, len(got) + 1))[-1] == ("9", "rfc4733")


async def test_garbage_rtp_does_not_disturb_the_call():
    import socket

    from roomtone.media import rtp as rtp_mod

    async with Pair() as p:
        caller, callee = await p.call()
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            target = callee.stream.local
            for i in range(50):
                junk.sendto(bytes([i]) * (i % 20), target)  # too short / wrong version
                junk.sendto(rtp_mod.RtpPacket(96 + i % 5, i, i * 160, 99, b"\x00" * 160).serialize(), target)
            await caller.send_dtmf("24", method="rfc4733")
            assert await collect(callee, 2) == [("2", "rfc4733"), ("4", "rfc4733")]
        finally:
            junk.close()
        stats = callee.stream.session.stats
        assert stats.malformed + stats.unknown_payload_type + stats.foreign_source >= 50
        assert not callee.ended


async def test_queue_dtmf_puts_the_first_event_packet_on_the_wire_before_returning():
    async with Pair() as p:
        caller, callee = await p.call()
        session = caller.stream.session
        before = session.stats.events_sent
        fut = caller.queue_dtmf("5", method="rfc4733")  # synchronous: no await in between
        assert session.stats.events_sent == before + 1
        assert not fut.done()
        sent = await asyncio.wait_for(fut, 5)
        assert (sent.digits, sent.method) == ("5", "rfc4733")
        assert await collect(callee, 1) == [("5", "rfc4733")]
        with pytest.raises(ValueError, match="unknown DTMF method"):
            caller.queue_dtmf("1", method="smoke")
        await caller.hangup()


async def test_mixed_methods_keep_their_order_across_info():
    async with Pair() as p:
        caller, callee = await p.call()
        # (an in-band digit last: the receiver hears it only after its jitter buffer and detector,
        # so an INFO sent right after it could overtake it there, though not at the sender)
        plan = [("1", "rfc4733"), ("2", "info"), ("3", "rfc4733"), ("6", "info"), ("4", "inband")]
        finished: list[str] = []
        futs = []
        for digit, method in plan:
            fut = caller.queue_dtmf(digit, method=method, tone_ms=100, gap_ms=60)
            fut.add_done_callback(lambda f, d=digit: finished.append(d))
            futs.append(fut)
        done = await asyncio.wait_for(asyncio.gather(*futs), 10)
        assert [(d.digits, d.method) for d in done] == plan
        assert finished == [d for d, _ in plan]
        assert await collect(callee, 5) == plan
        await caller.hangup()


async def test_digits_still_queued_when_the_call_ends_fail_with_call_failed():
    async with Pair() as p:
        caller, callee = await p.call()
        playing = caller.queue_dtmf("123", method="rfc4733", tone_ms=400)
        behind_info = [caller.queue_dtmf("4", method="info"), caller.queue_dtmf("5", method="rfc4733")]
        await asyncio.sleep(0.1)
        await callee.hangup()
        for fut in (playing, *behind_info):
            with pytest.raises(CallFailed, match="call ended"):
                await asyncio.wait_for(fut, 5)
        with pytest.raises(CallFailed):
            caller.queue_dtmf("1", method="rfc4733")
