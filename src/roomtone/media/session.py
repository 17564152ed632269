"""A call's RTP session: the sans-IO core (:class:`RtpSession`) fed datagrams and the time.

What one session does, every ``ptime`` (20 ms) tick:

* **Send**: one audio frame (what the application queued with :meth:`RtpSession.send_audio`, else
  silence, so NATs stay open and the peer's media timeout stays quiet), or RFC 4733 telephone-event
  packets while a digit is being sent. Events share the audio stream's SSRC, sequence space and RTP
  clock (RFC 4733 §2.1): an event's timestamp is the audio timestamp at its start. During an event
  the audio packets are suppressed (default, RFC 4733 §2.5.1.5 recommends it) or kept
  (``audio_during_events="keep"``). In-band digits replace the outgoing audio for their duration.
* **Receive**: RTP is demultiplexed by payload type: audio into the jitter buffer, telephone-event into
  the RFC 4733 receiver; anything else is counted and logged once per payload type. With
  ``symmetric_rtp`` the session answers to where the peer's packets come from (latching on the first
  valid packet), which gets through NAT. It follows a new source only after the current one has
  been silent for 0.5 s (a re-homed phone); packets from a second source while the first is alive
  are dropped and counted, so a third party cannot hijack the call's media by spraying RTP.
* **Play out**: exactly one frame per tick leaves the jitter buffer side (silence when nothing
  arrived), so tone suppression and a room bridge see a steady 20 ms stream. The in-band detector
  reads the *decoded* stream instead (the peer's audio in order, real losses concealed, but without
  the silence our own late scheduling inserts), so a stall here never splits a tone. It runs by
  default, also when telephone-event was negotiated; the
  :class:`~roomtone.media.dtmf_mux.DtmfDeduplicator` counts a press seen by several methods once.
  Tone suppression mutes detected spans (RFC 4733 or in-band) in the audio handed onward.
* **RTCP**: a minimal sender/receiver report (RFC 3550 §6.4) with SDES CNAME every
  ``rtcp_interval`` seconds on the RTCP address, and RTCP BYE on close.
* **Media timeout**: no RTP or RTCP from the peer for ``media_timeout`` seconds yields a
  :class:`MediaTimeout` event once (the call decides to hang up). ``None`` disables it.

Outputs are pulled: :meth:`RtpSession.take_datagrams` (``(bytes, addr, is_rtcp)``),
:meth:`RtpSession.take_events`, :meth:`RtpSession.read_audio`. Time is whatever the caller feeds in
(seconds, monotonic); the asyncio adapter lives in :mod:`roomtone.media.engine`.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from roomtone.dtmf import rfc4733
from roomtone.dtmf.digits import DtmfError, Step, Tone
from roomtone.media import g711, rtp
from roomtone.media.codecs import PCMU, AudioCodec
from roomtone.media.dtmf_mux import DtmfDeduplicator, DtmfEvent, DtmfStart, Method
from roomtone.media.inband import InbandDtmfSender, StreamingInband
from roomtone.media.jitter import JitterBuffer, JitterFrame
from roomtone.media.suppress import ToneSuppressor

log = logging.getLogger(__name__)

#: a muted key press (its end lost) stops muting the received audio after this long
MAX_MUTED_PRESS_SECONDS = 10

Address = tuple[str, int]
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_HEADER = rtp.RTP_HEADER
#: symmetric RTP follows a new source address only after the current one was silent this long
SOURCE_SWITCH_AFTER = 0.5
_EMPTY = np.zeros(0, dtype=np.int16)


@dataclass(slots=True)
class SessionConfig:
    """Per-call media settings (the call fills codec and payload types from SDP)."""

    codec: AudioCodec = PCMU
    payload_type: int = 0
    ptime_ms: int = 20
    telephone_event_pt: int | None = None  # None: telephone-event not negotiated
    symmetric_rtp: bool = True
    media_timeout: float | None = 30.0
    rtcp_interval: float = 5.0
    jitter_delay: float = 0.06
    send_silence: bool = True
    audio_during_events: Literal["suppress", "keep"] = "suppress"
    inband_detection: bool = True
    suppress_tones: bool = True
    suppress_delay: float = 0.04
    # outgoing DTMF defaults (per call; send_dtmf may override per request)
    tone_ms: int = 160
    gap_ms: int = 120
    volume: int = 10  # RFC 4733 volume field, dBm0 below zero; in-band tones use -volume dBm0 too
    cname: str = ""
    received_audio_frames: int = 50  # unread received frames kept (1 s), older are dropped
    max_send_queue: float = 2.0  # seconds of queued outgoing audio; older audio is dropped


@dataclass(frozen=True, slots=True)
class MediaTimeout:
    silent_for: float


@dataclass(frozen=True, slots=True)
class MediaFailed:
    """The engine closed this call's media because its session raised (``reason`` says what);
    the call ends with that reason. Other calls are not affected."""

    reason: str


@dataclass(frozen=True, slots=True)
class RemoteAddressChanged:
    old: Address | None
    new: Address


class DtmfSendJob:
    """Digits queued on the media path (RFC 4733 or in-band).

    ``done`` turns true when the last tone has been sent (its end packets on the wire, or its last
    sample played); ``cancelled`` when cancelled first. ``add_done_callback`` lets the asyncio side
    resolve a Future.
    """

    def __init__(self, steps: list[Step], method: Method, tone_ms: int, gap_ms: int, volume: int) -> None:
        self.steps = steps
        self.method = method
        self.tone_ms = tone_ms
        self.gap_ms = gap_ms
        self.volume = volume
        self.done = False
        self.cancelled = False
        self.tones_sent = 0
        self.handle: rfc4733.SendHandle | None = None
        self._callbacks: list[Callable[[DtmfSendJob], None]] = []

    @property
    def finished(self) -> bool:
        return self.done or self.cancelled

    def add_done_callback(self, fn: Callable[[DtmfSendJob], None]) -> None:
        if self.finished:
            fn(self)
        else:
            self._callbacks.append(fn)

    def _finish(self, cancelled: bool) -> None:
        if self.finished:
            return
        self.cancelled, self.done = cancelled, not cancelled
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn(self)
            except Exception:
                log.exception("DTMF job callback failed")


@dataclass(slots=True)
class SessionStats:
    rtp_sent: int = 0
    rtp_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    events_sent: int = 0
    events_received: int = 0
    malformed: int = 0
    unknown_payload_type: int = 0
    foreign_ssrc: int = 0
    foreign_source: int = 0
    rtcp_sent: int = 0
    rtcp_received: int = 0
    #: RTCP datagrams dropped because they came from an address that is not the peer's
    foreign_rtcp: int = 0
    audio_frames_dropped: int = 0


@dataclass(slots=True)
class _ReceptionStats:
    """RFC 3550 Appendix A.1/A.3/A.8 bookkeeping for the receiver report block."""

    ssrc: int
    base_seq: int
    max_seq: int
    cycles: int = 0
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    transit: float | None = None
    jitter: float = 0.0
    last_sr: int = 0
    last_sr_at: float | None = None

    def update(self, seq: int, ts: int, arrival_ticks: float) -> None:
        self.received += 1
        delta = rtp.seq_diff(seq, self.max_seq)
        if delta > 0:
            if seq < self.max_seq:
                self.cycles += 1 << 16
            self.max_seq = seq
        transit = arrival_ticks - ts
        if self.transit is not None:
            d = abs(transit - self.transit)
            if d < 1 << 30:  # ignore timestamp jumps
                self.jitter += (d - self.jitter) / 16
        self.transit = transit

    def report_block(self, now: float) -> rtp.ReportBlock:
        extended_max = self.cycles + self.max_seq
        expected = extended_max - self.base_seq + 1
        lost = expected - self.received
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior, self.received_prior = expected, self.received
        lost_interval = expected_interval - received_interval
        fraction = 0 if expected_interval <= 0 or lost_interval <= 0 else (lost_interval << 8) // expected_interval
        dlsr = 0 if self.last_sr_at is None else int((now - self.last_sr_at) * 65536)
        return rtp.ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=max(min(lost, 0x7FFFFF), -0x800000),
            highest_sequence=extended_max & 0xFFFFFFFF,
            jitter=int(self.jitter),
            last_sr=self.last_sr,
            delay_since_last_sr=dlsr & 0xFFFFFFFF,
        )


class RtpSession:
    """Sans-IO RTP/RTCP session for one call leg. See the module docstring."""

    def __init__(
        self,
        config: SessionConfig | None = None,
        remote: Address | None = None,
        remote_rtcp: Address | None = None,
        now: float = 0.0,
        wallclock_offset: float = 0.0,
        rng: random.Random | None = None,
        detector: StreamingInband | None = None,
        batched_detection: bool = False,
    ) -> None:
        rng = rng or random.SystemRandom()
        self._rng = rng
        self.ssrc = rng.getrandbits(32)
        self._seq = rng.getrandbits(16)
        self._ts = rng.getrandbits(32)
        self.remote = remote
        self._rtcp_peers: deque[Address] = deque(maxlen=4)  # RTCP addresses we were told (newest last)
        self._remote_rtcp: Address | None = None
        self.remote_rtcp = remote_rtcp or (None if remote is None else (remote[0], remote[1] + 1))
        self._bye_logged = False
        self.stats = SessionStats()
        self.closed = False
        self._wall = wallclock_offset
        self._started = now
        self._next_tick = now
        self._last_rx = now
        self._timeout_reported = False
        self._events: list[object] = []
        self._out: list[tuple[bytes, Address, bool]] = []
        self.dedup = DtmfDeduplicator()
        self.rfc4733_anomalies = 0
        #: telephone-event packets whose payload could not be parsed (a subset of the anomalies)
        self.rfc4733_malformed = 0
        self._jobs: deque[DtmfSendJob] = deque()
        self._active_job: DtmfSendJob | None = None
        self._inband_tx: InbandDtmfSender | None = None
        self._source: Address | None = None  # where accepted RTP comes from (symmetric RTP)
        self._source_last = now
        self._custom_detector = detector
        self.batched_detection = batched_detection
        #: False while the peer cannot receive (hold: our direction recvonly/inactive): nothing is sent
        self.send_enabled = True
        #: False while the peer will not send (our direction sendonly/inactive): no media timeout
        self.expect_media = True
        self.configure(config or SessionConfig(), now)

    def configure(self, config: SessionConfig, now: float | None = None) -> None:
        """(Re)build everything that depends on the negotiated codec and options.

        A call opens its session (and port) before the SDP answer says which codec and payload
        types were agreed, then configures it. SSRC, sequence and timestamp carry on.
        """
        self.config = cfg = config
        codec = cfg.codec
        self.codec = codec
        self.frame_samples = codec.frame_samples(cfg.ptime_ms)
        self.frame_ticks = codec.frame_ticks(cfg.ptime_ms)
        self.ptime = cfg.ptime_ms / 1000
        self._spt = codec.samples_per_tick
        self._clock_rate = codec.clock_rate
        self._dur_len = -1  # (payload length, frame duration) of the last received audio packet
        self._dur = 0
        self._encoder = codec.new_encoder()
        self._decoder = codec.new_decoder()
        #: G.711's decode table: stateless, so an engine may decode many sessions' frames in one go
        self.decode_table = {"PCMU": g711.ULAW_DECODE_TABLE, "PCMA": g711.ALAW_DECODE_TABLE}.get(codec.name)
        if now is not None:
            self._next_rtcp = now + cfg.rtcp_interval / 2
        self._out_pcm: deque[np.ndarray] = deque()
        self._out_pcm_samples = 0
        self._silence = np.zeros(self.frame_samples, dtype=np.int16)
        self._silence_payload: bytes | None = None
        # receive side
        self.jitter = JitterBuffer(codec.clock_rate, delay=cfg.jitter_delay)
        self._remote_ssrc: int | None = None
        self._reception: _ReceptionStats | None = None
        self._unknown_pts_logged: set[int] = set()
        self._fast_b1 = bytes([cfg.payload_type & 0x7F])  # second header byte of a fast-path packet
        self._playout_buf = _EMPTY
        # Two sample streams: "decoded" (what the peer sent, in order, losses concealed; the
        # detector's input) and "played" (decoded plus silence where the buffer ran dry, minus
        # audio dropped to catch up; what goes onward). played index = decoded index + _pad.
        self._play_pos = 0  # played samples so far
        self._dec_pos = 0  # decoded samples so far
        self._pad = 0
        self._played_frame: np.ndarray | None = None
        self._ts_anchor: tuple[int, int] | None = None  # (rtp timestamp, decoded sample index)
        self._received_audio: deque[np.ndarray] = deque(maxlen=cfg.received_audio_frames)
        # DTMF
        self._rx4733 = rfc4733.Receiver(codec.clock_rate)
        self._rx4733_busy = False  # an event packet arrived since the receiver was last idle
        self._rx_starts: dict[tuple[int, int, int], float] = {}  # (ssrc, ts, code) -> arrival time
        self._tx4733: rfc4733.Sender | None = None
        if cfg.telephone_event_pt is not None:
            self._tx4733 = self._new_sender(cfg.tone_ms, cfg.gap_ms, cfg.volume)
        self._inband_open: dict[int, int] = {}  # code -> stream start sample of an open in-band tone
        self._detector: StreamingInband | None = None
        if cfg.inband_detection and not self.batched_detection:
            self._detector = self._custom_detector or StreamingInband(codec.sample_rate)
        self._suppressor: ToneSuppressor | None = None
        if cfg.suppress_tones:
            self._suppressor = ToneSuppressor(
                delay_samples=int(cfg.suppress_delay * codec.sample_rate),
                margin_samples=codec.sample_rate // 100,
                max_open_samples=codec.sample_rate * MAX_MUTED_PRESS_SECONDS,
            )
        self._rx_spans: dict[tuple[int, int, int], list[int | None]] = {}  # RFC 4733 press -> muted span

    @property
    def remote_rtcp(self) -> Address | None:
        """Where our RTCP goes: the SDP's a=rtcp port, else RTP port + 1 (the call sets it)."""
        return self._remote_rtcp

    @remote_rtcp.setter
    def remote_rtcp(self, addr: Address | None) -> None:
        self._remote_rtcp = addr
        if addr is not None and addr not in self._rtcp_peers:
            # remembered so symmetric RTP re-pointing our RTCP at the latched source (port + 1)
            # does not make us refuse RTCP from the a=rtcp port the peer's SDP announced
            self._rtcp_peers.append(addr)

    def _rtcp_from_peer(self, addr: Address) -> bool:
        """RTCP is accepted from the peer's RTCP addresses (SDP a=rtcp or RTP port + 1), from its
        RTP address (rtcp-mux), and with symmetric RTP from the latched source's address or its
        port + 1; anything else could keep a dead call alive past the media timeout."""
        if addr in self._rtcp_peers:
            return True
        for rtp_addr in (self.remote, self._source if self.config.symmetric_rtp else None):
            if rtp_addr is not None and addr[0] == rtp_addr[0] and addr[1] in (rtp_addr[1], rtp_addr[1] + 1):
                return True
        return False

    @property
    def wallclock_offset(self) -> float:
        """Add to this session's clock to get Unix time."""
        return self._wall

    # ------------------------------------------------------------------ application side
    def send_audio(self, pcm: np.ndarray) -> None:
        """Queue int16 samples at the codec's sample rate to send (``max_send_queue`` cap)."""
        if self.closed or not len(pcm):
            return
        self._out_pcm.append(np.asarray(pcm, dtype=np.int16).reshape(-1))
        self._out_pcm_samples += len(pcm)
        limit = int(self.config.max_send_queue * self.codec.sample_rate)
        while self._out_pcm_samples > limit and len(self._out_pcm) > 1:
            dropped = self._out_pcm.popleft()
            self._out_pcm_samples -= len(dropped)
            self.stats.audio_frames_dropped += 1

    def read_audio(self) -> list[np.ndarray]:
        """Received audio frames (one per tick, ``frame_samples`` each) since the last call."""
        frames = list(self._received_audio)
        self._received_audio.clear()
        return frames

    def queue_dtmf(
        self,
        steps: list[Step],
        method: Method,
        tone_ms: int | None = None,
        gap_ms: int | None = None,
        volume: int | None = None,
    ) -> DtmfSendJob:
        """Queue digits to send by ``rfc4733`` or ``inband``; jobs run one after another, in order.

        Raises ``ValueError`` (or :class:`DtmfError`) when the method cannot carry the digits:
        RFC 4733 without negotiated telephone-event, flash (``R``) in-band, a bad length or volume.
        """
        if method == "rfc4733" and self._tx4733 is None:
            raise ValueError("telephone-event was not negotiated on this call; cannot send RFC 4733")
        if method not in ("rfc4733", "inband"):
            raise ValueError(f"the media session sends DTMF by rfc4733 or inband, not {method!r}")
        if method == "inband" and any(isinstance(s, Tone) and s.code > 15 for s in steps):
            raise DtmfError("flash (R) has no in-band tone; send it by rfc4733 or info")
        cfg = self.config
        tone = cfg.tone_ms if tone_ms is None else tone_ms
        gap = cfg.gap_ms if gap_ms is None else gap_ms
        vol = cfg.volume if volume is None else volume
        if not 10 <= tone <= 10000 or not 0 <= gap <= 10000 or not 0 <= vol <= 63:
            raise ValueError("tone length must be 10-10000 ms, gap 0-10000 ms, volume 0-63")
        job = DtmfSendJob(list(steps), method, tone, gap, vol)
        self._jobs.append(job)
        return job

    def start_dtmf_now(self, now: float) -> bool:
        """Send the first RFC 4733 packet of a just-queued job now instead of on the next tick.

        Without this a digit waits up to one ``ptime`` for the clock (p99 ~20 ms and worse under
        load). Only when the sender is idle and this job is the only one queued. RFC 4733 stays
        intact: the event starts at the RTP timestamp the next audio packet would have had (the
        next tick's), same SSRC, the next sequence number; the packet carries the marker and one
        packet interval of duration, as the tick would have sent it; the following packets go
        out on the tick schedule as before. ``now`` only says when this runs: the packet is the
        next tick's either way. True when a packet was queued (flush the datagrams).
        """
        tx = self._tx4733
        cfg = self.config
        tick_time = self._next_tick
        if (tx is None or cfg.telephone_event_pt is None or self.closed or self.remote is None
                or not self.send_enabled or self._active_job is not None or len(self._jobs) != 1
                or self._jobs[0].method != "rfc4733" or tx.active or tx.pending):
            return False
        # tick_time <= now (the clock is late, e.g. a burst of work holds the loop): the packet is
        # the one that overdue tick would send, so send it now all the same
        job = self._jobs.popleft()
        self._start_job(job, tick_time)
        tx = self._tx4733
        assert tx is not None
        tx.sync(tick_time, self._ts)  # as the tick will: the next audio timestamp at tick_time
        packets = tx.poll(tick_time)  # the first packet only: the second is due a ptime later
        for p in packets:
            self._send_packet(cfg.telephone_event_pt, p.payload, p.marker, p.timestamp)
            self.stats.events_sent += 1
        if job.handle is not None:
            job.tones_sent = job.handle.tones_sent
        return bool(packets)

    def cancel_dtmf(self) -> None:
        """Cancel queued and active jobs; a tone on the wire still gets its end packets."""
        for job in self._jobs:
            job._finish(cancelled=True)
        self._jobs.clear()
        if self._tx4733 is not None:
            self._tx4733.cancel(None, self._next_tick)
        self._inband_tx = None
        if self._active_job is not None:
            self._active_job._finish(cancelled=True)
            self._active_job = None

    @property
    def sending_dtmf(self) -> bool:
        return self._active_job is not None or bool(self._jobs)

    def info_dtmf(self, code: int, duration: float, now: float) -> None:
        """A digit received by SIP INFO (the call parsed the body); joins the unified stream."""
        self._emit_end(code, "info", now, duration, None)

    def take_events(self) -> list[object]:
        events, self._events = self._events, []
        return events

    def take_datagrams(self) -> list[tuple[bytes, Address, bool]]:
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float:
        return self._next_tick

    def close(self, now: float) -> None:
        """Send RTCP BYE (once) and stop."""
        if self.closed:
            return
        self.closed = True
        if self.remote_rtcp is not None:
            pkts: list[rtp.RtcpPacket] = [self._report(now), rtp.Bye((self.ssrc,), "call ended")]
            self._out.append((rtp.serialize_rtcp(pkts), self.remote_rtcp, True))

    # ------------------------------------------------------------------ network side
    def receive_rtp(self, data: bytes, addr: Address, now: float) -> None:
        # Fast path for the steady state of a call (most packets): a plain header (version 2, no
        # padding, extension or CSRCs), the audio payload type without marker, from the latched
        # source and SSRC. It does exactly what the general path below does for such a packet,
        # minus the packet object, the demultiplexing and the checks that cannot fail.
        if (data[1:2] == self._fast_b1 and data[0] == 0x80 and addr == self._source
                and len(data) > 12 and not self.closed):
            _, _, seq, ts, ssrc = _HEADER.unpack_from(data)
            reception = self._reception
            if ssrc == self._remote_ssrc and reception is not None:
                self._source_last = self._last_rx = now
                self._timeout_reported = False
                stats = self.stats
                stats.rtp_received += 1
                stats.bytes_received += len(data)
                # _ReceptionStats.update, inlined (same arithmetic)
                reception.received += 1
                max_seq = reception.max_seq
                delta = (seq - max_seq) & 0xFFFF
                if 0 < delta < 0x8000:
                    if seq < max_seq:
                        reception.cycles += 1 << 16
                    reception.max_seq = seq
                transit = (now - self._started) * self._clock_rate - ts
                if reception.transit is not None:
                    d = abs(transit - reception.transit)
                    if d < 1 << 30:
                        reception.jitter += (d - reception.jitter) / 16
                reception.transit = transit
                plen = len(data) - 12
                if plen != self._dur_len:
                    self._dur_len, self._dur = plen, self.codec.payload_samples(plen) // self._spt
                self.jitter.push(ts, data[12:], now, self._dur, seq, ssrc)
                return
        if self.closed:
            return
        if rtp.is_rtcp(data):  # rtcp-mux peers
            self.receive_rtcp(data, addr, now)
            return
        pkt = rtp.parse_rtp(data)
        if isinstance(pkt, rtp.RtpError):
            self.stats.malformed += 1
            if self.stats.malformed in (1, 10, 100, 1000):
                log.warning("dropping malformed RTP from %s:%s (%s; %d so far)", *addr, pkt.reason,
                            self.stats.malformed)
            return
        cfg = self.config
        pt = pkt.payload_type
        if pt != cfg.payload_type and pt != cfg.telephone_event_pt:
            self.stats.unknown_payload_type += 1
            if pt not in self._unknown_pts_logged:
                self._unknown_pts_logged.add(pt)
                log.warning("dropping RTP with payload type %d from %s:%s: not negotiated (audio %d, "
                            "telephone-event %s)", pt, *addr, cfg.payload_type, cfg.telephone_event_pt)
            return
        if cfg.symmetric_rtp and addr != self._source:
            if self._source is not None and now - self._source_last < SOURCE_SWITCH_AFTER:
                # another sender while ours is alive: an injection attempt or a stray stream
                self.stats.foreign_source += 1
                if self.stats.foreign_source in (1, 100):
                    log.warning("dropping RTP from %s:%s: media comes from %s:%s", *addr, *self._source)
                return
            if self._source is not None:
                log.info("RTP source moved %s:%s -> %s:%s", *self._source, *addr)
            self._source = addr
            if addr != self.remote:
                self._events.append(RemoteAddressChanged(self.remote, addr))
                log.info("RTP from %s:%s; sending there (symmetric RTP, was %s)", *addr, self.remote)
                self.remote = addr
                self.remote_rtcp = (addr[0], addr[1] + 1)
        self._source_last = now
        self._last_rx = now
        self._timeout_reported = False
        self.stats.rtp_received += 1
        self.stats.bytes_received += len(data)
        if self._remote_ssrc != pkt.ssrc:
            if self._remote_ssrc is not None:
                log.info("peer SSRC changed %08x -> %08x", self._remote_ssrc, pkt.ssrc)
                self.stats.foreign_ssrc += 1
            self._remote_ssrc = pkt.ssrc
            self._reception = _ReceptionStats(pkt.ssrc, pkt.sequence, pkt.sequence)
        assert self._reception is not None
        self._reception.update(pkt.sequence, pkt.timestamp, (now - self._started) * self.codec.clock_rate)
        if pt == cfg.payload_type:
            n = self.codec.payload_samples(len(pkt.payload)) // self.codec.samples_per_tick
            self.jitter.push(pkt.timestamp, pkt.payload, now, n, pkt.sequence, pkt.ssrc)
        else:
            self.stats.events_received += 1
            self._rx4733_busy = True
            self._on_rfc4733(self._rx4733.receive_rtp(now, pkt), addr)

    def receive_rtcp(self, data: bytes, addr: Address, now: float) -> None:
        if not self._rtcp_from_peer(addr):
            # a stray or spoofed sender must not refresh the media timeout (nor fill the log)
            self.stats.foreign_rtcp += 1
            if self.stats.foreign_rtcp in (1, 10, 100, 1000, 10000):
                log.warning("dropping RTCP from %s:%s: not the peer's RTCP address (%s; %d so far)",
                            *addr, self.remote_rtcp, self.stats.foreign_rtcp)
            return
        parsed = rtp.parse_rtcp(data)
        if isinstance(parsed, rtp.RtpError):
            self.stats.malformed += 1
            log.debug("dropping malformed RTCP from %s:%s: %s", *addr, parsed.reason)
            return
        self.stats.rtcp_received += 1
        self._last_rx = now
        for p in parsed:
            if isinstance(p, rtp.SenderReport) and self._reception is not None and p.ssrc == self._remote_ssrc:
                self._reception.last_sr = (p.ntp_timestamp >> 16) & 0xFFFFFFFF
                self._reception.last_sr_at = now
            elif isinstance(p, rtp.Bye):
                # once per session at info: a peer repeating BYEs must not flood the log
                level = logging.DEBUG if self._bye_logged else logging.INFO
                self._bye_logged = True
                log.log(level, "peer sent RTCP BYE (%s)", p.reason or "no reason")

    # ------------------------------------------------------------------ the tick
    def tick(self, now: float) -> None:
        """Run every tick that is due by ``now`` (single-session path, detection included)."""
        while self._next_tick <= now and not self.closed:
            decoded = self.tick_io(self._next_tick, now)
            events = self._detector.process(decoded) if self._detector is not None else []
            self.finish_tick(decoded, events, now)

    def tick_io(self, tick_time: float, now: float) -> np.ndarray:
        """First half of a tick: send this tick's packets, play out one received frame.

        Returns the audio decoded this tick (usually one frame; none while the jitter buffer waits,
        two when it catches up): the in-band detector's input. It is the peer's stream without the
        silence a late packet makes the playout insert, so a scheduling hiccup here never splits a
        tone in two. Batched engines run one detector pass over every session's decoded audio, then
        call :meth:`finish_tick` with each session's detector events.
        """
        self.tick_head(tick_time, now)
        return self._playout(now, self.jitter.pop(now), None)

    def tick_head(self, tick_time: float, now: float) -> None:
        """Everything in :meth:`tick_io` except the playout: send, RFC 4733 timeouts, RTCP, media
        timeout. An engine batching G.711 decode over many sessions calls this, pops the jitter
        buffer itself, decodes, then calls :meth:`playout` with the decoded audio."""
        self._next_tick = tick_time + self.ptime
        self._send_tick(tick_time)
        if self._rx4733_busy:
            deadline = self._rx4733.next_deadline()
            if deadline is None:
                self._rx4733_busy = False
            elif deadline <= now:
                self._on_rfc4733(self._rx4733.poll(now))
        if now >= self._next_rtcp:
            self._send_rtcp(now)
        timeout = self.config.media_timeout
        if not self.expect_media:
            self._last_rx = now
        elif timeout is not None and not self._timeout_reported and now - self._last_rx >= timeout:
            self._timeout_reported = True
            log.info("no media from the peer for %.1f s", now - self._last_rx)
            self._events.append(MediaTimeout(now - self._last_rx))

    def play_whole(self, jf: JitterFrame, pcm: np.ndarray) -> bool:
        """Playout of exactly one whole, already decoded frame when nothing is buffered (the
        steady state); False (nothing done) otherwise, then use :meth:`playout`."""
        n = self.frame_samples
        if len(pcm) != n or len(self._playout_buf):
            return False
        self._ts_anchor = (jf.timestamp, self._dec_pos)
        self._dec_pos += n
        self._play_pos += n
        self._played_frame = pcm
        return True

    def playout(self, now: float, frames: list[JitterFrame],
                pcms: list[np.ndarray] | None = None) -> np.ndarray:
        """Play out this tick's jitter buffer output (:meth:`tick_io` without the first half).

        ``pcms``, when given, holds the already decoded audio of every frame that has a payload,
        in order (an engine decoding many sessions' G.711 at once); else the session decodes.
        Returns the decoded audio (the detector's input).
        """
        return self._playout(now, frames, pcms)

    def finish_tick(self, decoded: np.ndarray, inband_events: list[tuple[str, int, int, int]],
                    now: float) -> None:
        """Second half: apply in-band detector events and hand the played frame onward.

        ``inband_events`` are ``("started", code, start_sample, 0)`` or
        ``("ended", code, start_sample, duration_samples)`` with indices in the decoded stream
        (counted from the first sample :meth:`tick_io` returned).
        """
        if inband_events:
            self._inband_events(inband_events, now)
        frame = self._played_frame
        if frame is None:
            return
        self._played_frame = None
        if self._suppressor is not None:
            frame = self._suppressor.process(frame)
        received = self._received_audio
        if len(received) == received.maxlen:
            self.stats.audio_frames_dropped += 1
        received.append(frame)

    def _inband_events(self, inband_events: list[tuple[str, int, int, int]], now: float) -> None:
        rate = self.codec.sample_rate
        end_pos = self._dec_pos  # decoded index just after this tick's audio
        for kind, code, start, length in inband_events:
            # decoded audio leaves the jitter buffer ``jitter_delay`` after it arrived: subtract it
            # so in-band times line up with the arrival times RFC 4733 and INFO use
            start_time = now - (end_pos - start) / rate - self.config.jitter_delay
            played = start + self._pad
            if kind == "started":
                self._inband_open[code] = start
                self._emit_start(code, "inband", start_time)
                if self._suppressor is not None:
                    self._suppressor.mute(played, None)
            else:
                self._inband_open.pop(code, None)
                if self._suppressor is not None:
                    self._suppressor.close(played, played + length)
                self._emit_end(code, "inband", start_time, length / rate, None)

    # ------------------------------------------------------------------ internals: sending
    def _next_out_frame(self) -> np.ndarray | None:
        n = self.frame_samples
        if self._out_pcm_samples < n:
            if not self._out_pcm:
                return None
            pcm = np.concatenate(list(self._out_pcm))
            self._out_pcm.clear()
            self._out_pcm_samples = 0
            return np.concatenate((pcm, np.zeros(n - len(pcm), dtype=np.int16)))
        parts = []
        need = n
        while need:
            head = self._out_pcm[0]
            if len(head) <= need:
                parts.append(self._out_pcm.popleft())
                need -= len(head)
            else:
                parts.append(head[:need])
                self._out_pcm[0] = head[need:]
                need = 0
        self._out_pcm_samples -= n
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _new_sender(self, tone_ms: int, gap_ms: int, volume: int) -> rfc4733.Sender:
        return rfc4733.Sender(rfc4733.SenderConfig(
            clock_rate=self.codec.clock_rate, tone_ms=tone_ms, gap_ms=gap_ms, volume=volume,
            packet_ms=self.config.ptime_ms))

    def _start_job(self, job: DtmfSendJob, tick_time: float) -> None:
        self._active_job = job
        if job.method == "inband":
            self._inband_tx = InbandDtmfSender(job.steps, self.codec.sample_rate, job.tone_ms, job.gap_ms,
                                               None if job.volume == self.config.volume else job.volume)
            return
        tx = self._tx4733
        assert tx is not None
        if tx.config.gap_ms != job.gap_ms and not tx.active and not tx.pending:
            tx = self._tx4733 = self._new_sender(job.tone_ms, job.gap_ms, job.volume)
        job.handle = tx.enqueue(job.steps, tone_ms=job.tone_ms, volume=job.volume)

    def _send_tick(self, tick_time: float) -> None:
        cfg = self.config
        tx = self._tx4733
        if (not self._out_pcm and self._active_job is None and not self._jobs
                and (tx is None or not (tx.active or tx.pending))):
            # nothing to send but silence (most ticks of most calls): the cached silence payload
            remote = self.remote
            if remote is not None and cfg.send_silence and self.send_enabled:
                payload = self._silence_payload
                if payload is None:
                    payload = self._encoder.encode(self._silence)
                    if self.codec.name != "G722":  # G.722's encoder has state: encode each time
                        self._silence_payload = payload
                # _send_packet, inlined for the most frequent packet of all
                self._out.append((_HEADER.pack(0x80, cfg.payload_type, self._seq, self._ts, self.ssrc) + payload,
                                  remote, False))
                self._seq = (self._seq + 1) & 0xFFFF
                stats = self.stats
                stats.rtp_sent += 1
                stats.bytes_sent += len(payload)
            self._ts = (self._ts + self.frame_ticks) & 0xFFFFFFFF
            return
        audio = self._next_out_frame()
        events_on_wire = False
        if self._active_job is None and self._jobs:
            self._start_job(self._jobs.popleft(), tick_time)
        job = self._active_job
        if self._inband_tx is not None and job is not None:
            audio = self._inband_tx.next_frame(self.frame_samples)
            job.tones_sent = self._inband_tx.tones_sent
            if self._inband_tx.finished:
                self._inband_tx = None
                self._active_job = None
                job._finish(cancelled=False)
        tx = self._tx4733
        if tx is not None and (tx.active or tx.pending):
            assert cfg.telephone_event_pt is not None
            tx.sync(tick_time, self._ts)
            packets = tx.poll(tick_time)
            for p in packets:
                self._send_packet(cfg.telephone_event_pt, p.payload, p.marker, p.timestamp)
                self.stats.events_sent += 1
            events_on_wire = tx.active or bool(packets)
        if job is not None and job.handle is not None:
            job.tones_sent = job.handle.tones_sent
            if job.handle.finished:
                self._active_job = None
                job._finish(cancelled=job.handle.cancelled)
        if self.remote is not None and (not events_on_wire or cfg.audio_during_events == "keep"):
            if audio is not None:
                self._send_packet(cfg.payload_type, self._encoder.encode(audio), False, self._ts)
            elif cfg.send_silence:
                payload = self._silence_payload
                if payload is None:
                    payload = self._encoder.encode(self._silence)
                    if self.codec.name != "G722":  # G.722's encoder has state: encode each time
                        self._silence_payload = payload
                self._send_packet(cfg.payload_type, payload, False, self._ts)
        self._ts = (self._ts + self.frame_ticks) & 0xFFFFFFFF

    def _send_packet(self, pt: int, payload: bytes, marker: bool, ts: int) -> None:
        if self.remote is None or not self.send_enabled:
            return
        # the RTP header without CSRCs or extensions (what we always send), packed directly
        data = _HEADER.pack(0x80, pt | (0x80 if marker else 0), self._seq, ts, self.ssrc) + payload
        self._seq = (self._seq + 1) & 0xFFFF
        self.stats.rtp_sent += 1
        self.stats.bytes_sent += len(payload)
        self._out.append((data, self.remote, False))

    def _send_rtcp(self, now: float) -> None:
        # RFC 3550 §6.2: randomise the interval between 0.5 and 1.5 times the nominal value
        self._next_rtcp = now + self.config.rtcp_interval * self._rng.uniform(0.5, 1.5)
        if self.remote_rtcp is None:
            return
        pkts: list[rtp.RtcpPacket] = [self._report(now)]
        pkts.append(rtp.SourceDescription.for_cname(self.ssrc, self.config.cname or f"roomtone-{self.ssrc:08x}"))
        self._out.append((rtp.serialize_rtcp(pkts), self.remote_rtcp, True))
        self.stats.rtcp_sent += 1

    def _report(self, now: float) -> rtp.SenderReport | rtp.ReceiverReport:
        blocks = () if self._reception is None else (self._reception.report_block(now),)
        if self.stats.rtp_sent:
            wall = now + self._wall + NTP_EPOCH_OFFSET
            ntp = (int(wall) << 32) | int((wall % 1) * (1 << 32))
            return rtp.SenderReport(self.ssrc, ntp, self._ts, self.stats.rtp_sent & 0xFFFFFFFF,
                                    self.stats.bytes_sent & 0xFFFFFFFF, blocks)
        return rtp.ReceiverReport(self.ssrc, blocks)

    # ------------------------------------------------------------------ internals: receiving
    def _playout(self, now: float, frames: list[JitterFrame], pcms: list[np.ndarray] | None = None) -> np.ndarray:
        """Decode what the jitter buffer released; queue one played frame. Returns the decoded audio."""
        n = self.frame_samples
        spt = self.codec.samples_per_tick
        if len(frames) == 1 and not len(self._playout_buf) and frames[0].payload is not None:
            # the common case: exactly one whole frame due, nothing buffered
            jf = frames[0]
            pcm = self._decoder.decode(jf.payload) if pcms is None else pcms[0]  # type: ignore[arg-type]
            self._ts_anchor = (jf.timestamp, self._dec_pos)
            self._dec_pos += len(pcm)
            if len(pcm) == n:
                self._play_pos += n
                self._played_frame = pcm
                return pcm
            self._playout_buf = pcm
            decoded = pcm
        else:
            parts = []
            k = 0
            for jf in frames:
                if jf.payload is None:
                    pcm = np.zeros(jf.duration * spt, dtype=np.int16)
                elif pcms is None:
                    pcm = self._decoder.decode(jf.payload)
                else:
                    pcm = pcms[k]
                    k += 1
                self._ts_anchor = (jf.timestamp, self._dec_pos)
                self._dec_pos += len(pcm)
                parts.append(pcm)
            decoded = (parts[0] if len(parts) == 1 else np.concatenate(parts)) if parts else _EMPTY
            if len(decoded):
                self._playout_buf = (np.concatenate((self._playout_buf, decoded))
                                     if len(self._playout_buf) else decoded)
        buf = self._playout_buf
        if len(buf) > 4 * n:  # we fell behind (a burst): keep the newest audio
            drop = len(buf) - 2 * n
            buf = buf[drop:]
            self._pad -= drop
        if len(buf) >= n:
            frame, buf = buf[:n], buf[n:]
        else:
            # ran dry: pad with silence; later decoded samples play that much later
            self._pad += n - len(buf)
            frame = np.concatenate((buf, np.zeros(n - len(buf), dtype=np.int16)))
            buf = _EMPTY
        self._playout_buf = buf
        self._play_pos += n
        self._played_frame = frame
        return decoded

    def _stream_pos(self, ts: int) -> int:
        """Played-stream sample index of an RTP timestamp (via the last decoded frame's anchor)."""
        if self._ts_anchor is None:
            return self._dec_pos + self._pad
        anchor_ts, anchor_pos = self._ts_anchor
        return anchor_pos + self._pad + rtp.ts_diff(ts, anchor_ts) * self.codec.samples_per_tick

    def _on_rfc4733(self, events: list[rfc4733.ReceiverEvent], addr: Address | None = None) -> None:
        for ev in events:
            if isinstance(ev, rfc4733.DigitStarted):
                self._rx_starts[(ev.ssrc, ev.timestamp, ev.code)] = ev.at
                if len(self._rx_starts) > 64:
                    self._rx_starts.pop(next(iter(self._rx_starts)))
                self._emit_start(ev.code, "rfc4733", ev.at)
                if self._suppressor is not None:
                    key = (ev.ssrc, ev.timestamp, ev.code)
                    self._rx_spans[key] = self._suppressor.mute(self._stream_pos(ev.timestamp), None)
                    if len(self._rx_spans) > 64:
                        self._rx_spans.pop(next(iter(self._rx_spans)))
            elif isinstance(ev, rfc4733.DigitEnded):
                start = self._rx_starts.pop((ev.ssrc, ev.timestamp, ev.code), ev.at - ev.seconds)
                if self._suppressor is not None:
                    # end the span opened at the start: the stream position of the same timestamp
                    # can move meanwhile (no audio from the peer, a new audio anchor)
                    span = self._rx_spans.pop((ev.ssrc, ev.timestamp, ev.code), None)
                    pos = self._stream_pos(ev.timestamp) if span is None else (span[0] or 0) + self._suppressor.margin_samples
                    self._suppressor.close(pos, pos + ev.duration * self.codec.samples_per_tick, span)
                self._emit_end(ev.code, "rfc4733", start, ev.seconds, ev.volume)
            else:
                self.rfc4733_anomalies += 1
                if ev.kind == "bad_payload":
                    # bad input from the peer, not a network artefact: worth a (rate-limited) warning
                    self.rfc4733_malformed += 1
                    if self.rfc4733_malformed in (1, 10, 100, 1000, 10000):
                        src = f"{addr[0]}:{addr[1]}" if addr is not None else "the peer"
                        log.warning("dropping malformed telephone-event from %s, SSRC %08x (%s; %d so far)",
                                    src, ev.ssrc, ev.detail, self.rfc4733_malformed)
                else:
                    # loss, reordering and sender quirks (late, duplicate, missing end): routine
                    log.debug("RFC 4733 anomaly: %s (%s)", ev.kind, ev.detail)

    def _emit_end(self, code: int, method: Method, start: float, duration: float, volume: int | None) -> None:
        event = self.dedup.ended(code, method, start, duration, volume)
        if event is not None:
            self._events.append(replace(event, wall_start=event.start + self._wall))

    def _emit_start(self, code: int, method: Method, start: float) -> None:
        started = self.dedup.started(code, method, start)
        if started is not None:
            self._events.append(replace(started, wall_start=start + self._wall))


__all__ = [
    "Address",
    "DtmfEvent",
    "DtmfSendJob",
    "DtmfStart",
    "MediaFailed",
    "MediaTimeout",
    "RemoteAddressChanged",
    "RtpSession",
    "SessionConfig",
    "SessionStats",
]
