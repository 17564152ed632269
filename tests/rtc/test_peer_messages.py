"""A data channel message that makes the handler fail is logged; the channel keeps delivering."""

from __future__ import annotations

import logging

import pytest

from roomtone.rtc.peer import RELIABLE, Peer


async def test_handler_failure_is_logged_and_later_messages_still_arrive(caplog: pytest.LogCaptureFixture) -> None:
    got: list[bytes] = []

    def on_message(label: str, data: bytes) -> None:
        if data == b"poison":
            raise ValueError("cannot route this")
        got.append(data)

    peer = Peer("publisher", "PA_test(alice)", on_message, lambda: None)
    channel = peer.pc.createDataChannel(RELIABLE)
    peer._adopt(channel)
    with caplog.at_level(logging.ERROR, logger="roomtone.rtc.peer"):
        channel.emit("message", b"poison")  # pyee would re-raise into aiortc's receive path
        channel.emit("message", "text")
    assert got == [b"text"]
    assert "failed to handle a 6-byte message on _reliable" in caplog.text
    await peer.pc.close()
