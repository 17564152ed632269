"""RFC 4733 telephone-event digits in the capture's RTP streams.

Each stream's telephone-event packets go through the same :class:`~roomtone.dtmf.rfc4733.Receiver`
the gateway uses, fed the capture timestamps, so the report shows what roomtone would have
decided. On top of that, with the whole capture at hand, it judges each event after the fact:
whether any packet carried the marker, how many end packets came, duplicated packets.

Which payload type is telephone-event: ``--te-pt`` if given; else the ``a=rtpmap`` of an SDP in
the capture that announces the stream's destination (any SDP's telephone-event PT as a fallback);
else a guess: a dynamic PT (96-127) whose payloads are 4-byte events 0-16 sharing timestamps in
runs. A guessed clock rate comes from how fast durations grow against capture time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from roomtone.analyze.capture import Capture, RtpRecord, RtpStream
from roomtone.analyze.registry import AnalyzeOptions
from roomtone.analyze.report import Digit, Finding, Report
from roomtone.dtmf.rfc4733 import (
    Anomaly,
    DigitEnded,
    DigitStarted,
    Receiver,
    TelephoneEvent,
    parse_event,
)
from roomtone.media.rtp import ts_diff

SOURCE = "rfc4733"
_KIND_NAMES = {"no_marker": None,  # judged offline below, with every packet in view
               "missing_end": "missing_end", "timestamp_reuse": "timestamp_reuse", "late_event": "late_event",
               "duplicate_start": "duplicate_event", "timestamp_jump": "timestamp_jump",
               "bad_payload": "bad_payload", "non_dtmf_event": "non_dtmf_event"}


@dataclass(frozen=True, slots=True)
class TePayload:
    pt: int
    rate: int
    how: str


def find_te_payload(stream: RtpStream, capture: Capture, options: AnalyzeOptions) -> TePayload | None:
    pts = stream.payload_types()
    if options.te_pt is not None:
        if options.te_pt not in pts:
            return None
        return TePayload(options.te_pt, options.te_rate or _guess_rate(stream, options.te_pt), "from --te-pt")
    media = capture.sdp_for(stream.dst, stream.dport)
    if media is not None:
        te = media.telephone_event()
        if te is not None and te[0] in pts:
            return TePayload(te[0], options.te_rate or te[1], f"from SDP in frame {media.frame}")
    for m in reversed(capture.sdp):
        te = m.telephone_event()
        if te is not None and te[0] in pts:
            return TePayload(te[0], options.te_rate or te[1], f"from SDP in frame {m.frame} (other address)")
    for pt, count in pts.most_common():
        if not 96 <= pt <= 127:
            continue
        recs = [r for r in stream.packets if r.packet.payload_type == pt]
        events = [parse_event(r.packet.payload) for r in recs]
        good = [e for e in events if isinstance(e, TelephoneEvent) and e.event <= 16]
        distinct_ts = len({r.packet.timestamp for r in recs})
        if count >= 2 and len(good) >= 0.9 * count and distinct_ts * 2 <= count:
            return TePayload(pt, options.te_rate or _guess_rate(stream, pt), "guessed: 4-byte events")
    return None


def _guess_rate(stream: RtpStream, pt: int) -> int:
    """The RTP clock rate, snapped to 8000/16000/48000.

    Best evidence: RTP timestamps against capture time across the stream (audio packets and
    event starts share the clock). With a single short event only, how fast its duration grows.
    """
    points: dict[int, float] = {}
    for r in stream.packets:
        points.setdefault(r.packet.timestamp, r.time)
    rate: float | None = None
    if len(points) >= 2:
        (ts0, t0), (ts1, t1) = min(points.items(), key=lambda kv: kv[1]), max(points.items(), key=lambda kv: kv[1])
        if t1 - t0 >= 0.1:
            rate = ts_diff(ts1, ts0) / (t1 - t0)
    if rate is None:
        by_ts: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for r in stream.packets:
            ev = parse_event(r.packet.payload) if r.packet.payload_type == pt else None
            if isinstance(ev, TelephoneEvent) and not ev.end:
                by_ts[r.packet.timestamp].append((r.time, ev.duration))
        rates = []
        for samples in by_ts.values():
            (ta, da), (tb, db) = min(samples), max(samples)
            if tb > ta and db > da:
                rates.append((db - da) / (tb - ta))
        if rates:
            rate = sorted(rates)[len(rates) // 2]
    if rate is None or rate <= 0:
        return 8000
    return min((8000, 16000, 48000), key=lambda c: abs(c - rate))


class TelephoneEventAnalyzer:
    name = SOURCE
    order = 10

    def analyze(self, capture: Capture, report: Report, options: AnalyzeOptions) -> None:
        if not report.summary:
            report.summary = (f"{capture.frames} frames, {len(capture.datagrams)} UDP datagrams, "
                              f"{len(capture.rtp_streams)} RTP streams, {len(capture.sip)} SIP messages")
        for stream in capture.rtp_streams:
            te = find_te_payload(stream, capture, options)
            if te is None:
                continue
            recs = [r for r in stream.packets if r.packet.payload_type == te.pt]
            other = Counter(r.packet.payload_type for r in stream.packets if r.packet.payload_type != te.pt)
            desc = f"telephone-event PT {te.pt}/{te.rate} ({te.how}), {len(recs)} event packets"
            if other:
                desc += ", audio PT " + ", ".join(f"{pt} x{n}" for pt, n in sorted(other.items()))
            report.stream(stream.label, desc)
            self._stream(capture, report, stream.label, recs, te.rate)

    def _stream(self, capture: Capture, report: Report, label: str, recs: list[RtpRecord], rate: int) -> None:
        rx = Receiver(rate)
        rel = capture.relative
        seen_seq: dict[int, bytes] = {}
        markers: dict[tuple[int, int], bool] = {}
        end_counts: Counter[tuple[int, int]] = Counter()
        events: list = []
        last = 0.0
        for r in recs:
            p = r.packet
            last = r.time
            deadline = rx.next_deadline()
            if deadline is not None and deadline <= r.time:
                events += rx.poll(deadline)
            ev = parse_event(p.payload)
            if p.sequence in seen_seq:
                # Resending the end packet with its sequence number unchanged is a common sender
                # style for RFC 4733 §2.5.1.4 retransmission; any other repeat is a duplicate.
                if isinstance(ev, TelephoneEvent) and ev.end and seen_seq[p.sequence] == p.payload:
                    end_counts[(p.timestamp, ev.event)] += 1
                else:
                    report.add_finding(Finding(SOURCE, label, rel(r.time), "duplicate_packet",
                                               f"sequence {p.sequence} seen again (frame {r.frame})"))
                continue
            seen_seq[p.sequence] = p.payload
            if isinstance(ev, TelephoneEvent):
                key = (p.timestamp, ev.event)
                markers[key] = markers.get(key, False) or p.marker
                end_counts[key] += ev.end
            events += rx.receive_rtp(r.time, p)
        events += rx.flush(last + rx.end_timeout)

        starts: dict[tuple[int, int], DigitStarted] = {}
        for e in events:
            if isinstance(e, DigitStarted):
                starts[(e.timestamp, e.code)] = e
            elif isinstance(e, DigitEnded):
                s = starts.pop((e.timestamp, e.code), None)
                start_time = s.at if s is not None else e.at
                notes = []
                if e.reason != "end":
                    notes.append(f"ended by {e.reason}")
                if e.late:
                    notes.append("late")
                if e.duration > 0xFFFF:
                    notes.append("long event (segments)")
                report.add_digit(Digit(SOURCE, label, e.digit, rel(start_time), e.seconds, e.volume,
                                       ", ".join(notes)))
                key = (e.timestamp, e.code)
                if not markers.get(key, True):
                    report.add_finding(Finding(SOURCE, label, rel(start_time), "missing_marker",
                                               f"no packet of digit {e.digit} (ts {e.timestamp}) had the marker bit"))
                ends = end_counts.get(key, 0)
                if 0 < ends < 3:
                    report.add_finding(Finding(SOURCE, label, rel(e.at), "few_end_packets",
                                               f"digit {e.digit} (ts {e.timestamp}): {ends} end packet(s), 3 expected"))
            elif isinstance(e, Anomaly):
                kind = _KIND_NAMES.get(e.kind, e.kind)
                if kind is None:
                    continue
                report.add_finding(Finding(SOURCE, label, rel(e.at), kind, e.detail))


ANALYZER = TelephoneEventAnalyzer()
