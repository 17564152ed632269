"""A LiveKit participant on the official Python SDK (``livekit``), driven by JSON lines.

Usage: ``python tests/rtc/python_peer.py <ws-url> <token> [--v1]``

It is a separate process (not a coroutine in the test) because WebRTC only works inside the test's
network namespace, and the simplest way to put the SDK's native threads there is to start the
whole interpreter under ``ip netns exec``. It speaks the same line protocol as the Node, browser
and Go peers (tests/js/rtc-node-peer.mjs), so :mod:`tests.rtc.sdk_peers` can pair any two:

* stdout events: ``connected``, ``participant_connected``, ``participant_disconnected``,
  ``dtmf`` (code, digit, from), ``sent`` (count, and ``t_first``/``t_last`` wall-clock send times),
  ``error``, ``disconnected``; ``dtmf`` also carries ``t`` (the receive time, ``time.time()``).
* stdin commands: ``{"cmd":"dtmf","tones":[[code,digit],...]}``, ``{"cmd":"leave"}``.

``--v1`` leaves the SDK on its default single-PeerConnection path; without it the peer asks for the
v0 (two PeerConnection) path directly, as most deployed servers speak it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from livekit import rtc


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main(url: str, token: str, v1: bool) -> int:
    room = rtc.Room()

    @room.on("participant_connected")
    def _joined(p: rtc.RemoteParticipant) -> None:
        emit({"event": "participant_connected", "identity": p.identity})

    @room.on("participant_disconnected")
    def _left(p: rtc.RemoteParticipant) -> None:
        emit({"event": "participant_disconnected", "identity": p.identity})

    @room.on("sip_dtmf_received")
    def _dtmf(dtmf: rtc.SipDTMF) -> None:
        sender = dtmf.participant.identity if dtmf.participant is not None else None
        emit({"event": "dtmf", "code": dtmf.code, "digit": dtmf.digit, "from": sender, "t": time.time()})

    @room.on("disconnected")
    def _gone(reason: Any) -> None:
        emit({"event": "disconnected", "reason": str(reason)})

    options = rtc.RoomOptions(auto_subscribe=True, single_peer_connection=None if v1 else False)
    try:
        await room.connect(url, token, options)
    except Exception as exc:  # the SDK raises ConnectError and friends; report, don't trace
        emit({"event": "error", "message": f"connect: {exc}"})
        return 1
    emit(
        {
            "event": "connected",
            "identity": room.local_participant.identity,
            "room": room.name,
            "remote": [p.identity for p in room.remote_participants.values()],
        }
    )

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
        except ValueError:
            emit({"event": "error", "message": f"bad command line: {line!r}"})
            continue
        if cmd.get("cmd") == "dtmf":
            t_first = time.time()
            count = 0
            for code, digit in cmd["tones"]:
                await room.local_participant.publish_dtmf(code=code, digit=digit)
                count += 1
            emit({"event": "sent", "count": count, "t_first": t_first, "t_last": time.time()})
        elif cmd.get("cmd") == "leave":
            break
        else:
            emit({"event": "error", "message": f"unknown command: {cmd.get('cmd')}"})
    await room.disconnect()
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.stderr.write("usage: python_peer.py <ws-url> <token> [--v1]\n")
        sys.exit(2)
    sys.exit(asyncio.run(main(args[0], args[1], "--v1" in sys.argv)))
