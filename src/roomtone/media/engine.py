"""The asyncio side of media: sockets, one shared 20 ms clock, batched decode and detection.

One :class:`MediaEngine` serves every call of a process. It binds each call's RTP/RTCP sockets from
the configured port range, feeds received datagrams to the call's sans-IO
:class:`~roomtone.media.session.RtpSession` as they arrive (so RFC 4733 digits are reported at once),
and runs **one** timer for all calls: every 20 ms it ticks each session (sending its frame, playing
out one received frame), decodes every G.711 call's received frames in one table lookup, runs the
in-band DTMF detector over all sessions' audio in one numpy pass
(:class:`~roomtone.media.inband.InbandBank`), and sends what the sessions produced. A thousand
timers would cost more than the audio.

Why raw sockets instead of asyncio datagram endpoints: a media server spends most of its time on
per-packet overhead. Each socket is watched for readiness (one engine-wide epoll set on Linux,
itself a single ``loop.add_reader``; ``loop.add_reader`` per socket elsewhere) and read with one
``recvfrom_into`` per readiness straight into the session; each tick sends with ``socket.sendto``
directly. That skips the transport/protocol layers (buffering, flow control,
closing checks) that asyncio adds to every datagram and that a fixed-rate RTP stream never needs.
Errors never raise: a refused or dropped send is counted in :attr:`MediaStream.send_errors`.

Event loop: any asyncio loop works. :func:`run` / :func:`loop_factory` pick uvloop when installed
(``ROOMTONE_LOOP=asyncio`` forces the standard loop); the engine logs which loop it runs on.
uvloop makes the selector and callback machinery C, which the bare-loop anchor in
``benchmarks/calls.py`` shows is ~4x cheaper per datagram than asyncio's.

Each call gets a :class:`MediaStream`: the session plus an event callback and an audio callback.

Deployment note: run media processes with ``OPENBLAS_NUM_THREADS=1`` (set before numpy is
imported). The batched detector's matrix products otherwise hand work to OpenBLAS threads, and on a
busy machine waiting for them stalled the 20 ms clock by hundreds of milliseconds in
``benchmarks/calls.py``. One process keeps one core busy at most: for more calls than a core
carries, run one media process per core.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from roomtone.media.inband import InbandBank
from roomtone.media.jitter import JitterFrame
from roomtone.media.ports import PortAllocator, bind_rtp_pair
from roomtone.media.session import Address, MediaFailed, RtpSession, SessionConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio (<class>)"``: which event loop the media runs on (for logs)."""
    cls = type(loop)
    return "uvloop" if cls.__module__.startswith("uvloop") else f"asyncio ({cls.__name__})"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when it is installed, else asyncio's default.

    uvloop runs the selector, timers and callbacks in C, which roughly halves the per-datagram cost
    of a media process (``benchmarks/calls.py``). It stays optional: ``ROOMTONE_LOOP=asyncio`` or a
    missing/broken uvloop falls back to the standard loop (logged).
    """
    if os.environ.get("ROOMTONE_LOOP", "").lower() == "asyncio":
        log.info("ROOMTONE_LOOP=asyncio: using asyncio's default event loop")
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as exc:
        log.info("uvloop unavailable (%s): using asyncio's default event loop", exc)
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(main: Coroutine[object, object, T]) -> T:
    """Like :func:`asyncio.run`, on the loop :func:`loop_factory` picks (logs which one)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        log.info("event loop: %s", loop_name(runner.get_loop()))
        return runner.run(main)



_NO_AUDIO = np.zeros(0, dtype=np.int16)
_RECV_SIZE = 2048  # larger than any RTP/RTCP datagram we accept (MTU-sized)


def _dropped_send(stream: MediaStream, exc: OSError) -> None:
    # ECONNREFUSED (ICMP port unreachable while the peer is not listening yet) is normal at call
    # start; a full send buffer drops the datagram like a lossy network would
    stream.send_errors += 1
    if stream.send_errors in (1, 100, 10000):
        log.debug("RTP send from %s failed (%s; %d so far)", stream.local, exc, stream.send_errors)


@dataclass(eq=False)
class MediaStream:
    """One call's media: a sans-IO session bound to sockets and driven by the engine's clock."""

    engine: MediaEngine
    session: RtpSession
    local: Address
    on_event: Callable[[object], None] | None = None
    #: called with each received (played-out, tone-suppressed) frame; else frames queue in the session
    on_audio: Callable[[np.ndarray], None] | None = None
    _rtp: socket.socket | None = field(default=None, repr=False)
    _rtcp: socket.socket | None = field(default=None, repr=False)
    _bank_slot: int | None = field(default=None, repr=False)
    closed: bool = False
    #: datagrams the kernel refused to send (full buffer, ICMP errors): counted, never raised
    send_errors: int = 0
    #: why the engine closed this stream after its session raised (None: it did not)
    failed: str | None = None

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

    def start_dtmf(self) -> None:
        """After :meth:`RtpSession.queue_dtmf`: put the job's first RFC 4733 packet on the wire
        now when the sender is idle (:meth:`RtpSession.start_dtmf_now`), not on the next tick."""
        if self.closed:
            return
        try:
            sent = self.session.start_dtmf_now(self.engine.now())
        except Exception as exc:
            self._fail(exc)
            return
        if sent:
            self._flush()

    def _on_datagram(self, data: bytes, addr: Address, rtcp: bool) -> None:
        now = self.engine.now()
        if rtcp:
            self.session.receive_rtcp(data, addr, now)
        else:
            self.session.receive_rtp(data, addr, now)
        self._dispatch()

    def _rtp_readable(self) -> None:
        # one datagram per readiness callback: the selector is level-triggered, so a second queued
        # datagram calls us again, and the steady state (one packet per 20 ms) never pays for a
        # failing recvfrom and its exception. recvfrom_into the engine's buffer and one exact copy
        # out: recvfrom would allocate 2 KB and shrink it for every datagram (~0.4 µs more).
        engine = self.engine
        try:
            size, addr = self._rtp.recvfrom_into(engine._recv_buf)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # ICMP errors of earlier sends surface on the next read
            log.debug("RTP socket error on %s: %s", self.local, exc)
            return
        if self.closed:
            return
        data = bytes(engine._recv_view[:size])
        session = self.session
        try:
            session.receive_rtp(data, addr if len(addr) == 2 else addr[:2], engine._loop_time())
        except Exception as exc:
            self._fail(exc)
            return
        if (session._events and self.on_event is not None) or (session._received_audio and self.on_audio is not None):
            self._dispatch()

    def _rtcp_readable(self) -> None:
        try:
            data, addr = self._rtcp.recvfrom(_RECV_SIZE)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("RTCP socket error on %s: %s", self.local, exc)
            return
        if not self.closed:
            try:
                self._on_datagram(data, addr[:2], True)
            except Exception as exc:
                self._fail(exc)

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
        rtp_s, rtcp_s = self._rtp, self._rtcp
        if rtp_s is None or rtcp_s is None:
            return
        for data, addr, is_rtcp in out:
            try:
                (rtcp_s if is_rtcp else rtp_s).sendto(data, addr)
            except OSError as exc:
                _dropped_send(self, exc)

    def _fail(self, exc: BaseException) -> None:
        """This stream's session raised: log it, tell the call (:class:`MediaFailed`), close it.

        One broken session must not cost the other calls their frame, so the engine isolates the
        failure here instead of letting it abort the shared tick.
        """
        log.error("media stream %s:%s failed; closing it", *self.local, exc_info=exc)
        self.failed = reason = f"media failure: {type(exc).__name__}: {exc}"[:200]
        if self.on_event is not None:
            try:
                self.on_event(MediaFailed(reason))
            except Exception:
                log.exception("media event handler failed")
        try:
            self.close()
        except Exception:
            log.exception("closing failed media stream %s:%s", *self.local)
            self._release()

    def close(self) -> None:
        """Send RTCP BYE, release the sockets and the port."""
        if self.closed:
            return
        self.closed = True
        try:
            self.session.close(self.engine.now())
            self._flush()
        finally:
            self._release()

    def _release(self) -> None:
        self.closed = True
        self.engine._remove(self)
        if self._rtp is None and self._rtcp is None:
            return  # released already
        for sock in (self._rtp, self._rtcp):
            if sock is not None:
                self.engine._unwatch(sock.fileno())
                sock.close()
        self._rtp = self._rtcp = None
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
        self._loop_time: Callable[[], float] = time.monotonic
        self._loop_logged = False
        self._recv_buf = bytearray(_RECV_SIZE)
        self._recv_view = memoryview(self._recv_buf)
        # readiness of every stream's sockets through one epoll set of our own (see _watch)
        self._poller: select.epoll | None = None
        self._poller_loop: asyncio.AbstractEventLoop | None = None
        self._readers: dict[int, Callable[[], None]] = {}
        self._rtp_of: dict[int, MediaStream] = {}  # RTP fds in the epoll set: read in _on_ready
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
        self._loop_time = loop.time
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        rtp_sock, rtcp_sock, port = bind_rtp_pair(self.ports, self.host, family)
        cfg = config or SessionConfig()
        batched = self.batch_detection and cfg.inband_detection
        session = RtpSession(cfg, remote, now=loop.time(), wallclock_offset=time.time() - loop.time(),
                             batched_detection=batched)
        stream = MediaStream(self, session, (self.host, port))
        if not self._loop_logged:
            self._loop_logged = True
            log.info("media engine on %s", loop_name(loop))
        try:
            self._watch(loop, rtp_sock.fileno(), stream._rtp_readable)
            if rtp_sock.fileno() in self._readers:
                self._rtp_of[rtp_sock.fileno()] = stream
            self._watch(loop, rtcp_sock.fileno(), stream._rtcp_readable)
        except Exception:
            self._unwatch(rtp_sock.fileno())
            rtp_sock.close()
            rtcp_sock.close()
            self.ports.release(port)
            raise
        stream._rtp, stream._rtcp = rtp_sock, rtcp_sock
        if batched:
            stream._bank_slot = self._bank(cfg.codec.sample_rate).add()
        self.streams.append(stream)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="roomtone-media-clock")
        return stream

    def _watch(self, loop: asyncio.AbstractEventLoop, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ``fd`` is readable.

        On Linux the engine keeps its own epoll set, itself one reader of the event loop: a wake-up
        then costs one loop callback and one ``epoll.poll`` for every datagram that is waiting,
        instead of one loop callback (handle, context, frame) per datagram; measured ~0.5 µs less
        per packet at 500 calls. Elsewhere (no ``select.epoll``) each fd is a loop reader.
        """
        if not hasattr(select, "epoll"):
            loop.add_reader(fd, callback)
            return
        if self._poller is None or self._poller_loop is not loop:
            self._new_poller(loop)
        assert self._poller is not None
        self._poller.register(fd, select.EPOLLIN)
        self._readers[fd] = callback

    def _new_poller(self, loop: asyncio.AbstractEventLoop) -> None:
        self._close_poller()
        poller = select.epoll()
        try:
            loop.add_reader(poller.fileno(), self._on_ready)
        except Exception:
            poller.close()
            raise
        self._poller, self._poller_loop = poller, loop
        for fd in self._readers:  # streams opened on an earlier loop (tests): keep them watched
            try:
                poller.register(fd, select.EPOLLIN)
            except OSError:
                pass

    def _close_poller(self) -> None:
        poller, loop = self._poller, self._poller_loop
        self._poller = self._poller_loop = None
        if poller is None:
            return
        if loop is not None and not loop.is_closed():
            loop.remove_reader(poller.fileno())
        poller.close()

    def _unwatch(self, fd: int) -> None:
        self._rtp_of.pop(fd, None)
        if self._readers.pop(fd, None) is not None:
            if self._poller is not None:
                try:
                    self._poller.unregister(fd)
                except (OSError, ValueError):  # already closed
                    pass
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.remove_reader(fd)

    def _on_ready(self) -> None:
        poller = self._poller
        if poller is None:
            return
        try:
            ready = poller.poll(0)
        except OSError as exc:  # EINTR and the like: the loop calls us again while fds are ready
            log.debug("media epoll: %s", exc)
            return
        readers, rtp_of = self._readers, self._rtp_of
        buf, view, clock = self._recv_buf, self._recv_view, self._loop_time
        for fd, _ in ready:
            stream = rtp_of.get(fd)
            if stream is not None:
                # MediaStream._rtp_readable, inlined for the most frequent callback of all
                try:
                    size, addr = stream._rtp.recvfrom_into(buf)  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    log.debug("RTP socket error on %s: %s", stream.local, exc)
                    continue
                if stream.closed:
                    continue
                session = stream.session
                try:
                    session.receive_rtp(bytes(view[:size]), addr if len(addr) == 2 else addr[:2], clock())
                except Exception as exc:
                    stream._fail(exc)
                    continue
                if ((session._events and stream.on_event is not None)
                        or (session._received_audio and stream.on_audio is not None)):
                    try:
                        stream._dispatch()
                    except Exception:
                        log.exception("media socket callback failed")
                continue
            callback = readers.get(fd)
            if callback is not None:  # None: closed by an earlier callback of this batch
                try:
                    callback()
                except Exception:  # the callbacks isolate their stream; this is a last resort
                    log.exception("media socket callback failed")

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
        if not self._readers:
            self._close_poller()

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
        """One clock step for every stream (also callable from tests with a virtual ``now``).

        Per due stream: the session's send/RTCP/timeout half (:meth:`RtpSession.tick_head`), then
        its jitter buffer output. Sessions with exactly one whole G.711 frame due and nothing
        buffered (nearly all, nearly always: the steady state) are decoded together, one table
        lookup over every such call's payload into one matrix whose rows are their frames; the
        rest take the session's general playout. Then one detector pass per sample rate over
        everything decoded (the matrix as it is when every call is steady), the second half of
        each session's tick, and its datagrams and callbacks.
        """
        streams = self.streams
        while True:
            due = [s for s in streams if s.session._next_tick <= now and not s.closed]
            if not due:
                break
            self._tick_due(due, now)

    def _tick_due(self, due: list[MediaStream], now: float) -> None:
        # Phase 1: send half and jitter buffer output. A stream whose session raises is failed
        # (logged, closed, its call told) and left out of the later phases; every other stream
        # carries on with this tick.
        ok: list[MediaStream] = []
        decoded: list[np.ndarray] = []
        # steady G.711 streams: (table id, frame size) -> (table, positions in ok, their frames)
        steady: dict[tuple[int, int], tuple[np.ndarray, list[int], list[list[JitterFrame]]]] = {}
        rows = 0  # frames in the steady groups
        for s in due:
            sess = s.session
            try:
                sess.tick_head(sess._next_tick, now)
                frames = sess.jitter.pop(now)
                table = sess.decode_table
                if table is not None:
                    n = sess.frame_samples  # G.711: one byte per sample
                    nf = len(frames)
                    held = sess._playout_buf
                    buffered = len(held)
                    # whole frames only, and never so many that the playout drops audio
                    if buffered % n == 0 and buffered + nf * n <= 4 * n:
                        if nf == 1:
                            payload = frames[0].payload
                            whole = payload is not None and len(payload) == n
                        else:  # none due (then: is anything buffered?) or a few (after a late tick)
                            whole = all(jf.payload is not None and len(jf.payload) == n for jf in frames)
                        if nf and whole:
                            group = steady.get((id(table), n))
                            if group is None:
                                group = steady[(id(table), n)] = (table, [], [])
                            group[1].append(len(ok))
                            group[2].append(frames)
                            rows += nf
                            ok.append(s)
                            decoded.append(_NO_AUDIO)  # filled in below
                            continue
                        if not nf and buffered:
                            # nothing due, whole frames buffered (the ticks after a late one)
                            sess._played_frame = held[:n]
                            sess._playout_buf = held[n:]
                            sess._play_pos += n
                            ok.append(s)
                            decoded.append(_NO_AUDIO)
                            continue
                pcm = sess.playout(now, frames)
            except Exception as exc:
                s._fail(exc)
                continue
            ok.append(s)
            decoded.append(pcm)
        # Phase 2: decode the steady streams' frames together and play out one frame each: what
        # RtpSession.playout does with whole frames (up to four frames due and buffered together:
        # one in the steady state, more in the ticks after a late one): append what is due to
        # what is buffered, play the oldest frame, keep the rest; inlined
        matrix: np.ndarray | None = None
        for (_, n), (table, where, frame_lists) in steady.items():
            payloads = b"".join([jf.payload for fl in frame_lists for jf in fl])  # type: ignore[misc]
            m = table[np.frombuffer(payloads, dtype=np.uint8)].reshape(-1, n)
            if len(steady) == 1 and rows == len(frame_lists) == len(ok):
                matrix = m  # every stream steady, one frame each: the detector takes the matrix
            r = 0
            for i, fl in zip(where, frame_lists, strict=True):
                sess = ok[i].session
                k = len(fl)
                dec = m[r] if k == 1 else m[r:r + k].reshape(-1)
                sess._ts_anchor = (fl[-1].timestamp, sess._dec_pos + (k - 1) * n)
                sess._dec_pos += k * n
                held = sess._playout_buf
                if not len(held):
                    if k == 1:
                        sess._played_frame = dec  # the steady state: the buffer stays empty
                    else:
                        sess._played_frame = dec[:n]
                        sess._playout_buf = dec[n:]
                elif k == 1 and len(held) == n:
                    sess._played_frame = held
                    sess._playout_buf = dec
                else:
                    joined = np.concatenate((held, dec))
                    sess._played_frame = joined[:n]
                    sess._playout_buf = joined[n:]
                sess._play_pos += n
                decoded[i] = dec
                r += k
        # Phase 3: in-band detection (one bank pass per sample rate) and the second half of the tick
        failed: set[int] = set()
        batched: dict[int, list[int]] = {}
        if len(self._banks) == 1:  # one sample rate (the usual): every slot is in that bank
            idx = [i for i, s in enumerate(ok) if s._bank_slot is not None]
            batched[next(iter(self._banks))] = idx
            alone = [i for i, s in enumerate(ok) if s._bank_slot is None] if len(idx) != len(ok) else []
        else:
            alone = []
            for i, s in enumerate(ok):
                if s._bank_slot is not None:
                    batched.setdefault(s.session.codec.sample_rate, []).append(i)
                else:
                    alone.append(i)
        for i in alone:
            s = ok[i]
            sess = s.session
            try:
                events = sess._detector.process(decoded[i]) if sess._detector is not None else []
                sess.finish_tick(decoded[i], events, now)
            except Exception as exc:
                failed.add(i)
                s._fail(exc)
        for rate, idx in batched.items():
            slots = [ok[i]._bank_slot for i in idx]
            try:
                frames_in = matrix if matrix is not None and len(idx) == len(ok) else [decoded[i] for i in idx]
                results = self._banks[rate].process_sparse(slots, frames_in)  # type: ignore[arg-type]
            except Exception:  # not one stream's fault: this tick's detection is lost for all
                log.exception("in-band detection pass at %d Hz failed", rate)
                results = {}
            no_events: list[tuple[str, int, int, int]] = []
            for j, i in enumerate(idx):
                try:
                    ok[i].session.finish_tick(decoded[i], results.get(j, no_events), now)
                except Exception as exc:
                    failed.add(i)
                    ok[i]._fail(exc)
        # Phase 4: datagrams and callbacks
        for i, s in enumerate(ok):
            if failed and i in failed:
                continue
            sess = s.session
            out = sess._out
            if out:
                if len(out) == 1 and not out[0][2] and s._rtp is not None:
                    sess._out = []  # one RTP packet: the usual tick
                    try:
                        s._rtp.sendto(out[0][0], out[0][1])
                    except OSError as exc:
                        _dropped_send(s, exc)
                else:
                    s._flush()
            if (sess._events and s.on_event is not None) or (sess._received_audio and s.on_audio is not None):
                s._dispatch()
