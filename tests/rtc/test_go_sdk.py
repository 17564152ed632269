"""Interop: Go server-sdk-go/v2 and the Python ``livekit`` SDK exchange DTMF through roomtone.

The go peer sends with ``PublishDataPacket(&livekit.SipDTMF{...})`` and receives through
``OnDataPacket`` (``*livekit.SipDTMF``), as LiveKit's DTMF page shows. Server and peers run in a
throw-away network namespace (WebRTC ignores loopback).
"""

from __future__ import annotations

import pytest

from tests.netns import (
    Netns,
    netns,  # noqa: F401  (fixture)
)
from tests.rtc.sdk_peers import (
    Peer,
    RoomServer,
    exchange_all_tones,
    go_missing,
    received,
    start_server_under_test,
)


def go_and_python(ns: Netns, server: RoomServer, room: str, go_identity: str) -> tuple[Peer, Peer]:
    """A Go peer ``go_identity`` and a Python peer "py" in ``room``, connected and seeing each other."""
    go = Peer(ns, "go", server.url, server.token(go_identity, room), label=go_identity, env=server.peer_env)
    py = Peer(ns, "python", server.url, server.token("py", room), label="py", env=server.peer_env)
    try:
        go.wait_connected(60)
        py.wait_connected(60)
        go.wait_sees("py")
        py.wait_sees(go_identity)
    except BaseException:
        go.close()
        py.close()
        raise
    return go, py


@pytest.mark.timeout(180)
def test_go_and_python_exchange_all_tones_and_flash(netns: Netns) -> None:  # noqa: F811
    # A missing client is a broken install (scripts/install-test-deps.sh builds it), not a skip.
    assert go_missing() is None, go_missing()
    server = start_server_under_test(netns)
    exchange_all_tones(netns, server, "go", room="interop-go")


@pytest.mark.timeout(120)
def test_go_seed_call_on_the_default_lossy_channel_reaches_python(netns: Netns) -> None:  # noqa: F811
    """The seed's exact call, ``PublishDataPacket(&livekit.SipDTMF{...})`` with no options, goes
    out on the SDK's default lossy channel: the server must relay lossy data too ("123#")."""
    assert go_missing() is None, go_missing()
    server = start_server_under_test(netns)
    go, py = go_and_python(netns, server, "interop-go-lossy", "go-seed")
    try:
        tones = [(1, "1"), (2, "2"), (3, "3"), (11, "#")]
        go.send_dtmf(tones, lossy=True)
        # Lossy means unordered, no retransmission; on a loss-free veth all four must still arrive.
        got = received(py.wait_dtmf(len(tones)))
        assert sorted(got) == sorted((c, d, "go-seed") for c, d in tones), py.output()
    finally:
        go.close()
        py.close()


@pytest.mark.timeout(120)
def test_idle_go_participant_stays_past_the_signal_idle_limit(netns: Netns) -> None:  # noqa: F811
    """server-sdk-go sends no signal pings; it only answers WebSocket pings. With ping_interval
    1 s and ping_timeout 2 s (idle limit 3 s; the Rust SDK needs the timeout above the interval,
    it times out on any 1 s without a server message) an idle Go participant must stay connected
    for more than twice that, then still exchange DTMF. (Before the WebSocket heartbeat, roomtone
    closed every idle Go participant after ping_interval + ping_timeout.)"""
    import re
    import time

    from tests.rtc.sdk_peers import API_KEY, API_SECRET

    assert go_missing() is None, go_missing()
    srv = netns.start_server(keys={API_KEY: API_SECRET}, config="rtc:\n  ping_interval: 1\n  ping_timeout: 2\n")
    server = RoomServer(srv.url, "roomtone", srv.log, srv.proc.pid)
    go, py = go_and_python(netns, server, "interop-go-idle", "go-idle")
    try:
        time.sleep(7)
        tones = [(5, "5"), (11, "#")]
        go.send_dtmf(tones)
        assert received(py.wait_dtmf(len(tones))) == [(c, d, "go-idle") for c, d in tones], py.output()
        mine = [line for line in server.log().splitlines() if re.search(r"[: ]go-idle ?\(PA_", line)]
        assert any(" joined" in line for line in mine), mine
        assert not [line for line in mine if "closing the session" in line or " left" in line], mine
    finally:
        go.close()
        py.close()
