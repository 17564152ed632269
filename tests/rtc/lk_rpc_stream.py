"""RPC and text streams between two Python SDK participants: ``python lk_rpc_stream.py URL TA TB``.

Both ride on data packets (rpc_request/ack/response, stream_header/chunk/trailer) that the server
must forward to the named destination with the sender stamped. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys

from livekit import rtc


async def main(url: str, ta: str, tb: str) -> dict:
    out: dict = {"errors": []}
    opts = rtc.RoomOptions(single_peer_connection=False, connect_timeout=20)
    a, b = rtc.Room(), rtc.Room()
    try:
        await b.connect(url, tb, opts)

        async def upper(data: rtc.RpcInvocationData) -> str:
            return f"{data.caller_identity}:{data.payload.upper()}"

        b.local_participant.register_rpc_method("upper", upper)
        got_text: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_text(reader: rtc.TextStreamReader, sender: str) -> None:
            async def read() -> None:
                got_text.set_result((await reader.read_all(), sender, reader.info.topic))

            asyncio.ensure_future(read())

        b.register_text_stream_handler("chat", on_text)
        await a.connect(url, ta, opts)
        for _ in range(200):
            if b.local_participant.identity in a.remote_participants and a.local_participant.identity in b.remote_participants:
                break
            await asyncio.sleep(0.02)
        out["rpc"] = await a.local_participant.perform_rpc(
            destination_identity=b.local_participant.identity, method="upper", payload="hello", response_timeout=10
        )
        await a.local_participant.send_text("x" * 20000, topic="chat")  # several chunks
        text, sender, topic = await asyncio.wait_for(got_text, 15)
        out["text"] = [len(text), sender, topic]
    except Exception as exc:
        out["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        for r in (a, b):
            await r.disconnect()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))), flush=True)
