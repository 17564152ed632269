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
from tests.rtc.sdk_peers import Peer, exchange_all_tones, go_missing, received, start_server_under_test


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
    room = "interop-go-lossy"
    go = Peer(netns, "go", server.url, server.token("go-seed", room), label="go-seed", env=server.peer_env)
    py = Peer(netns, "python", server.url, server.token("py", room), label="py", env=server.peer_env)
    try:
        go.wait_connected(60)
        py.wait_connected(60)
        go.wait_sees("py")
        py.wait_sees("go-seed")
        tones = [(1, "1"), (2, "2"), (3, "3"), (11, "#")]
        go.send_dtmf(tones, lossy=True)
        # Lossy means unordered, no retransmission; on a loss-free veth all four must still arrive.
        got = received(py.wait_dtmf(len(tones)))
        assert sorted(got) == sorted((c, d, "go-seed") for c, d in tones), py.output()
    finally:
        go.close()
        py.close()
