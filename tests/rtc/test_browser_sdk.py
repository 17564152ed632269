"""Interop: livekit-client in headless Chromium (driven by playwright-core) and the Python ``livekit`` SDK exchange DTMF through roomtone.

The browser peer sends with ``localParticipant.publishDtmf`` and receives through
``RoomEvent.SipDTMFReceived``, as LiveKit's DTMF page shows. Server and peers run in a throw-away
network namespace (WebRTC ignores loopback).
"""

from __future__ import annotations

import pytest

from tests.netns import (
    Netns,
    netns,  # noqa: F401  (fixture)
)
from tests.rtc.sdk_peers import browser_missing, exchange_all_tones, start_server_under_test


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["browser", "browser-v0"], ids=["v1-single-pc", "v0-two-pcs"])
def test_browser_and_python_exchange_all_tones_and_flash(netns: Netns, kind: str) -> None:  # noqa: F811
    """livekit-client's default (single PeerConnection, /rtc/v1) and its v0 path, each way."""
    # A missing client is a broken install (scripts/install-test-deps.sh builds it), not a skip.
    assert browser_missing() is None, browser_missing()
    server = start_server_under_test(netns)
    exchange_all_tones(netns, server, kind, room=f"interop-{kind}")
