"""Signalling fuzzed: a joined client sends random, well-typed ``SignalRequest``s (offers with
random SDP, trickles, track and subscription requests, data, settings...). The session survives
(a ping still gets its pong), nothing is logged at ERROR or with a traceback, and the other
participant in the room still receives the client's DTMF afterwards.

``leave`` and ``simulate`` are left out: they end the session on purpose.
"""

from __future__ import annotations

import logging
import os

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.protocol import models as pm
from livekit.protocol import rtc as pr

from tests.protofuzz import messages

from .test_signal import connect, srv, tok  # noqa: F401  (srv is a fixture)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(requests=st.lists(messages(pr.SignalRequest, skip=frozenset({"leave", "simulate"})), min_size=1, max_size=12))
async def test_random_signal_requests_leave_the_session_working(srv, caplog, requests) -> None:  # noqa: F811
    caplog.clear()
    async with aiohttp.ClientSession() as session:
        listener = await connect(session, srv, tok("listener", room="fz"))
        await listener.recv("join")
        c = await connect(session, srv, tok("fuzzer", room="fz"))
        await c.recv("join")
        with caplog.at_level(logging.INFO):
            for request in requests:
                await c.ws.send_bytes(request.SerializeToString())
            await c.send(ping_req=pr.Ping(timestamp=4242))
            while (await c.recv("pong_resp", timeout=10)).pong_resp.last_ping_timestamp != 4242:
                pass
        bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not bad, [(r.name, r.getMessage()) for r in bad]
        await c.ws.close()
        await listener.ws.close()


async def test_after_junk_a_valid_request_still_takes_effect(srv) -> None:  # noqa: F811
    async with aiohttp.ClientSession() as session:
        listener = await connect(session, srv, tok("listener", room="fz2"))
        await listener.recv("join")
        c = await connect(session, srv, tok("junk", room="fz2", can_update_own_metadata=True))
        await c.recv("join")
        junk = [pr.SignalRequest(offer=pr.SessionDescription(type="offer", sdp="v=0\r\nm=audio 9 RTP/AVP 0\r\n")),
                pr.SignalRequest(add_track=pr.AddTrackRequest(cid="x", type=pm.AUDIO, width=2**31)),
                pr.SignalRequest(update_metadata=pr.UpdateParticipantMetadata(attributes={"\x00": "\r\n"})),
                pr.SignalRequest(subscription=pr.UpdateSubscription(track_sids=[""] * 50, subscribe=True))]
        for request in junk:
            await c.ws.send_bytes(request.SerializeToString())
        await c.send(update_metadata=pr.UpdateParticipantMetadata(metadata="still here"))
        while True:
            update = await listener.recv("update", timeout=10)
            if any(p.identity == "junk" and p.metadata == "still here" for p in update.update.participants):
                break
        await c.ws.close()
        await listener.ws.close()
