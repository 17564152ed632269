"""roomtone as a test phone on loopback: one UserAgent and MediaEngine that answer every call
(queued for the test) or place one. :class:`Pair` is two of them, alice calling bob."""

from __future__ import annotations

import asyncio

from roomtone.media.call import CallOptions, MediaCall, answer_call, place_call
from roomtone.media.engine import MediaEngine
from roomtone.media.ports import PortAllocator
from roomtone.sip.ua import UserAgent


class Endpoint:
    """roomtone as a phone: answers every call with ``options``, or places one."""

    def __init__(self, user: str = "roomtone", rtp_ports: tuple[int, int] = (23000, 24999),
                 options: CallOptions | None = None) -> None:
        self.engine = MediaEngine("127.0.0.1", PortAllocator(*rtp_ports))
        self.ua = UserAgent("127.0.0.1", 0, transports=("UDP",), user=user)
        self.user = user
        self.options = options or CallOptions()
        self.calls: asyncio.Queue[MediaCall] = asyncio.Queue()

    async def __aenter__(self) -> Endpoint:
        await self.ua.start()

        async def on_invite(sip_call):
            call = await answer_call(sip_call, self.engine, self.options)
            if call is not None:
                self.calls.put_nowait(call)

        self.ua.on_invite = on_invite
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ua.close()
        await self.engine.close()

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@127.0.0.1:{self.ua.port}"

    async def next_call(self, timeout: float = 10.0) -> MediaCall:
        """The next call this endpoint answered."""
        return await asyncio.wait_for(self.calls.get(), timeout)

    async def call(self, uri: str, options: CallOptions | None = None) -> MediaCall:
        return await place_call(self.ua, self.engine, uri, options or self.options)


class Pair:
    """Two roomtone endpoints on loopback; :meth:`call` has alice call bob."""

    def __init__(self) -> None:
        self.caller = Endpoint("alice", (22400, 22499))
        self.callee = Endpoint("bob", (22500, 22599))

    async def __aenter__(self) -> Pair:
        await self.caller.__aenter__()
        await self.callee.__aenter__()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.caller.__aexit__(*exc)
        await self.callee.__aexit__(*exc)

    async def call(self, options: CallOptions | None = None) -> tuple[MediaCall, MediaCall]:
        """(caller's call, callee's call) once bob has answered with ``callee.options``."""
        caller = await self.caller.call(self.callee.uri, options)
        callee = await self.callee.next_call(5)
        return caller, callee
