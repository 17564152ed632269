"""Peer drops aiortc's per-video-receiver bandwidth estimator (see rtc.peer.drop_video_bandwidth_estimators)."""

from __future__ import annotations

import gc

from aiortc import RTCPeerConnection, RTCSessionDescription

from roomtone.rtc.peer import _ESTIMATOR, Peer


async def _client_offer(videos: int) -> RTCPeerConnection:
    """An offer like the Rust SDK's: receive-only video sections, audio and a data channel."""
    client = RTCPeerConnection()
    for _ in range(videos):
        client.addTransceiver("video", direction="recvonly")
    client.addTransceiver("audio", direction="recvonly")
    client.createDataChannel("_reliable")
    await client.setLocalDescription(await client.createOffer())
    return client


async def test_answer_drops_the_estimators_stock_aiortc_keeps() -> None:
    client = await _client_offer(3)
    # control: stock aiortc answering the same offer has an estimator per video receiver, so the
    # assertion below cannot pass just because aiortc renamed its attribute
    stock = RTCPeerConnection()
    await stock.setRemoteDescription(client.localDescription)
    stock_videos = [t for t in stock.getTransceivers() if t.kind == "video"]
    assert len(stock_videos) == 3
    assert all(getattr(t.receiver, _ESTIMATOR) is not None for t in stock_videos)

    peer = Peer("publisher", "test", on_message=lambda label, data: None, on_channel_open=lambda: None)
    answer = await peer.answer(client.localDescription.sdp)
    videos = [t for t in peer.pc.getTransceivers() if t.kind == "video"]
    assert len(videos) == 3
    assert all(getattr(t.receiver, _ESTIMATOR) is None for t in videos)
    audio = [t for t in peer.pc.getTransceivers() if t.kind == "audio"]
    assert len(audio) == 1
    # the answer is still one the client accepts
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    assert client.signalingState == "stable"
    for pc in (client, stock, peer.pc):
        await pc.close()


async def test_fewer_objects_for_the_collector_per_connection() -> None:
    """What the change is for: each answered connection leaves far fewer GC-tracked objects."""
    def tracked() -> int:
        gc.collect()
        return len(gc.get_objects())

    client = await _client_offer(3)
    before = tracked()
    stock = RTCPeerConnection()
    await stock.setRemoteDescription(client.localDescription)
    stock_cost = tracked() - before
    await stock.close()
    del stock
    before = tracked()
    peer = Peer("publisher", "test", on_message=lambda label, data: None, on_channel_open=lambda: None)
    await peer.answer(client.localDescription.sdp)
    ours = tracked() - before
    # stock: 3 x 1,000 rate buckets (+ the rest); ours must be at least 2,500 objects lighter
    assert stock_cost - ours > 2500, (stock_cost, ours)
    await peer.pc.close()
    await client.close()
