"""The asyncio side of media: sockets, one shared 20 ms clock, batched in-band detection.

One :class:`MediaEngine` serves every call of a process. It binds each call's RTP/RTCP sockets from
the configured port range, feeds received datagrams to the call's sans-IO
:class:`~roomtone.media.session.RtpSession` as they arrive (so RFC 4733 digits are reported at once),
and runs **one** timer for all calls: every 20 ms it ticks each session (sending its frame, playing
out one received frame), runs the in-band DTMF detector over all sessions' frames in one numpy pass
(:class:`~roomtone.media.inband.InbandBank`), and sends what the sessions produced. A thousand
timers would cost more than the audio.

Each call gets a :class:`MediaStream`: the session plus an event callback and an audio callback.

Deployment note: run media processes with ``OPENBLAS_NUM_THREADS=1`` (set before numpy is
imported). The batched detector's matrix products otherwise hand work to OpenBLAS threads, and on a
busy machine waiting for them stalled the 20 ms clock by hundreds of milliseconds in
``benchmarks/calls.py``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from roomtone.media.inband import InbandBank
from roomtone.media.ports import PortAllocator, bind_rtp_pair
from roomtone.media.session import Address, RtpSession, SessionConfig

log = logging.getLogger(__name__)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, stream: MediaStream, rtcp: bool) -> None:
        self.stream = stream
        self.rtcp = rtcp
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stream._on_datagram(data, addr[:2], self.rtcp)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the peer is not listening yet: normal at call start
        log.debug("RTP socket error on %s: %s", self.stream.local, exc)


@dataclass(eq=False)
class MediaStream:
    """One call's media: a sans-IO session bound to sockets and driven by the engine's clock."""

    engine: MediaEngine
    session: RtpSession
    local: Address
    on_event: Callable[[object], None] | None = None
    #: called with each received (played-out, tone-suppressed) frame; else frames queue in the session
    on_audio: Callable[[np.ndarray], None] | None = None
    _rtp: _Endpoint | None = field(default=None, repr=False)
    _rtcp: _Endpoint | None = field(default=None, repr=False)
    _bank_slot: int | None = field(default=None, repr=False)
    closed: bool = False

    @property
    def port(self) -> int:
        return self.local[1]

    def configure(self, config: SessionConfig) -> None:
        """Apply the negotiated codec and options (see :meth:`RtpSession.configure`)."""
        engine = self.engine
        if self._bank_slot is not None:
            engine._banks[self.session.codec.sample_rate].remove(self._bank_slot)
            self._bank_slot = None
        batched = engine.batch_detection and config.inband_detection
        self.session.batched_detection = batched
        self.session.configure(config, engine.now())
        if batched:
            self._bank_slot = engine._bank(config.codec.sample_rate).add()

    def set_remote(self, addr: Address) -> None:
        self.session.remote = addr
        self.session.remote_rtcp = (addr[0], addr[1] + 1)

    def send_audio(self, pcm: np.ndarray) -> None:
        self.session.send_audio(pcm)

    def _on_datagram(self, data: bytes, addr: Address, rtcp: bool) -> None:
        now = self.engine.now()
        if rtcp:
            self.session.receive_rtcp(data, addr, now)
        else:
            self.session.receive_rtp(data, addr, now)
        self._dispatch()

    def _dispatch(self) -> None:
        session = self.session
        if self.on_event is not None and session._events:
            for ev in session.take_events():
                try:
                    self.on_event(ev)
                except Exception:  # a consumer bug must not stop the media clock
                    log.exception("media event handler failed")
        if self.on_audio is not None and session._received_audio:
            for frame in session.read_audio():
                try:
                    self.on_audio(frame)
                except Exception:
                    log.exception("media audio handler failed")

    def _flush(self) -> None:
        if not self.session._out:
            return
        out = self.session.take_datagrams()
        rtp_t = self._rtp.transport if self._rtp else None
        rtcp_t = self._rtcp.transport if self._rtcp else None
        for data, addr, is_rtcp in out:
            t = rtcp_t if is_rtcp else rtp_t
            if t is not None and not t.is_closing():
                t.sendto(data, addr)

    def close(self) -> None:
        """Send RTCP BYE, release the sockets and the port."""
        if self.closed:
            return
        self.closed = True
        self.session.close(self.engine.now())
        self._flush()
        self.engine._remove(self)
        for ep in (self._rtp, self._rtcp):
            if ep is not None and ep.transport is not None:
                ep.transport.close()
        self.engine.ports.release(self.local[1])


class MediaEngine:
    """Owns the port range and the shared media clock for all calls in this process."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        ports: PortAllocator | None = None,
        batch_detection: bool = True,
    ) -> None:
        self.host = host
        self.ports = ports or PortAllocator()
        self.batch_detection = batch_detection
        self.streams: list[MediaStream] = []
        self._banks: dict[int, InbandBank] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.tick_interval = 0.02
        self.ticks = 0
        self.late_ticks = 0  # ticks that started more than 10 ms late
        self.max_lateness = 0.0

    def now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    async def open(self, config: SessionConfig | None = None, remote: Address | None = None) -> MediaStream:
        """Bind sockets for a new call and start its session on the shared clock."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        rtp_sock, rtcp_sock, port = bind_rtp_pair(self.ports, self.host, family)
        cfg = config or SessionConfig()
        batched = self.batch_detection and cfg.inband_detection
        session = RtpSession(cfg, remote, now=loop.time(), wallclock_offset=time.time() - loop.time(),
                             batched_detection=batched)
        stream = MediaStream(self, session, (self.host, port))
        try:
            _, rtp_ep = await loop.create_datagram_endpoint(lambda: _Endpoint(stream, False), sock=rtp_sock)
            _, rtcp_ep = await loop.create_datagram_endpoint(lambda: _Endpoint(stream, True), sock=rtcp_sock)
        except Exception:
            rtp_sock.close()
            rtcp_sock.close()
            self.ports.release(port)
            raise
        stream._rtp, stream._rtcp = rtp_ep, rtcp_ep
        if batched:
            stream._bank_slot = self._bank(cfg.codec.sample_rate).add()
        self.streams.append(stream)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="roomtone-media-clock")
        return stream

    def _bank(self, rate: int) -> InbandBank:
        bank = self._banks.get(rate)
        if bank is None:
            bank = self._banks[rate] = InbandBank(rate)
        return bank

    def _remove(self, stream: MediaStream) -> None:
        if stream in self.streams:
            self.streams.remove(stream)
        if stream._bank_slot is not None:
            self._banks[stream.session.codec.sample_rate].remove(stream._bank_slot)
            stream._bank_slot = None

    async def close(self) -> None:
        for stream in list(self.streams):
            stream.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            now = loop.time()
            lateness = now - next_tick
            self.ticks += 1
            if lateness > 0.01:
                self.late_ticks += 1
            self.max_lateness = max(self.max_lateness, lateness)
            try:
                self.tick(now)
            except Exception:
                log.exception("media tick failed")
            next_tick += self.tick_interval
            if next_tick < loop.time() - 0.2:  # hopelessly behind (suspended?): skip ahead
                next_tick = loop.time()
            await asyncio.sleep(max(0.0, next_tick - loop.time()))

    def tick(self, now: float) -> None:
        """One clock step for every stream (also callable from tests with a virtual ``now``)."""
        streams = self.streams
        while True:
            due = [s for s in streams if s.session._next_tick <= now and not s.closed]
            if not due:
                break
            batched: dict[int, list[tuple[MediaStream, np.ndarray]]] = {}
            for s in due:
                sess = s.session
                frame = sess.tick_io(sess.next_deadline(), now)
                if s._bank_slot is not None:
                    batched.setdefault(sess.codec.sample_rate, []).append((s, frame))
                elif sess._detector is not None:
                    sess.finish_tick(frame, sess._detector.process(frame), now)
                else:
                    sess.finish_tick(frame, [], now)
            for rate, items in batched.items():
                bank = self._banks[rate]
                results = bank.process([s._bank_slot for s, _ in items],  # type: ignore[misc]
                                       [f for _, f in items])
                for (s, frame), events in zip(items, results, strict=True):
                    s.session.finish_tick(frame, events, now)
            for s in due:
                s._flush()
                s._dispatch()
