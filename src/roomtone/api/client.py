"""A client for roomtone's own twirp extension (``roomtone.SIP/SendDTMF``).

The LiveKit services are called with the official ``livekit-api`` client; this covers only what
that client cannot know about. Same transport: protobuf body, bearer token, twirp JSON errors.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from roomtone.api.dtmf_service import SERVICE, SendDTMFRequest, SendDTMFResponse
from roomtone.rtc.tokens import make_token


class ApiCallError(Exception):
    def __init__(self, code: str, msg: str, status: int) -> None:
        super().__init__(f"{code} ({status}): {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def http_url(url: str) -> str:
    url = url.rstrip("/")
    if url.startswith("ws"):
        url = "http" + url[2:]
    return url


async def send_dtmf(
    url: str,
    api_key: str,
    api_secret: str,
    *,
    room: str,
    identity: str,
    digits: str,
    method: str = "",
    wait: bool = False,
    timeout: float = 60.0,
) -> Any:
    """Make SIP participant ``identity`` in ``room`` play ``digits`` to its phone."""
    token = make_token(
        api_key, api_secret, "roomtone-cli", video={"roomAdmin": True, "room": room}, sip={"call": True}, ttl=600
    )
    body = SendDTMFRequest(room=room, identity=identity, digits=digits, method=method, wait=wait).SerializeToString()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.post(
            f"{http_url(url)}/twirp/{SERVICE}/SendDTMF",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/protobuf"},
        ) as resp:
            raw = await resp.read()
            if resp.status != 200:
                try:
                    err = await resp.json(content_type=None)
                except ValueError:
                    err = {}
                raise ApiCallError(str(err.get("code", "unknown")), str(err.get("msg", raw[:200])), resp.status)
            return SendDTMFResponse.FromString(raw)
