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
from tests.rtc.sdk_peers import exchange_all_tones, go_missing, start_server_under_test


@pytest.mark.timeout(180)
def test_go_and_python_exchange_all_tones_and_flash(netns: Netns) -> None:  # noqa: F811
    # A missing client is a broken install (scripts/install-test-deps.sh builds it), not a skip.
    assert go_missing() is None, go_missing()
    server = start_server_under_test(netns)
    exchange_all_tones(netns, server, "go", room="interop-go")
