"""In-band DTMF in the capture's G.711 audio: the analyzer behind ``roomtone dtmf analyze``'s
``inband`` rows.

Each RTP stream's G.711 packets (PCMU PT 0, PCMA PT 8, or a dynamic PT that an SDP in the
capture maps to PCMU/PCMA) are laid out by RTP timestamp, decoded with
:mod:`roomtone.media.g711`, and run through the same detector the gateway uses
(:func:`roomtone.dtmf.detector.detect`). Gaps (lost packets, or RFC 4733 packets sent instead of
audio) are filled with silence; a timestamp jump of more than 2 s, or backwards, starts a new
segment so a bogus timestamp cannot make us decode hours of silence. Times in the report are
capture times of the audio they were found in.

It also flags streams that carry the same digit both ways (in-band tones *and* RFC 4733
events): a receiver that honours both sees every digit twice.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter

import numpy as np

from roomtone.analyze.capture import Capture, RtpRecord, RtpStream
from roomtone.analyze.registry import AnalyzeOptions
from roomtone.analyze.report import Digit, Finding, Report
from roomtone.dtmf.detector import detect
from roomtone.media.g711 import decode
from roomtone.media.rtp import ts_diff

log = logging.getLogger(__name__)

SOURCE = "inband"
_STATIC = {0: "ulaw", 8: "alaw"}
_MAX_GAP_SAMPLES = 2 * 8000


def _g711_payload_types(stream: RtpStream, capture: Capture) -> dict[int, str]:
    """PT -> codec for the G.711 payload types in ``stream``."""
    found: dict[int, str] = {}
    maps: dict[int, str] = {}
    media = capture.sdp_for(stream.dst, stream.dport)
    for m in ([media] if media is not None else []) + list(reversed(capture.sdp)):
        for pt, (name, rate) in m.rtpmap.items():
            if rate == 8000 and name.upper() in ("PCMU", "PCMA") and pt not in maps:
                maps[pt] = "ulaw" if name.upper() == "PCMU" else "alaw"
    for pt in stream.payload_types():
        codec = maps.get(pt) or _STATIC.get(pt)
        if codec:
            found[pt] = codec
    return found


def _segments(recs: list[RtpRecord]) -> list[tuple[float, list[tuple[int, bytes]]]]:
    """Split packets into runs of plausible timestamps: (capture time of the run's first sample,
    [(sample offset, payload)])."""
    out: list[tuple[float, list[tuple[int, bytes]]]] = []
    base_ts = 0
    base_time = 0.0
    cur: list[tuple[int, bytes]] = []
    last_off = 0
    for r in recs:  # capture order
        p = r.packet
        if cur:
            off = ts_diff(p.timestamp, base_ts)
            if off < -_MAX_GAP_SAMPLES or off > last_off + _MAX_GAP_SAMPLES:
                out.append((base_time, cur))
                cur = []
        if not cur:
            base_ts, base_time, last_off = p.timestamp, r.time, 0
            off = 0
        if off >= 0:
            cur.append((off, p.payload))
            last_off = max(last_off, off + len(p.payload))
    if cur:
        out.append((base_time, cur))
    return out


class InbandAnalyzer:
    name = SOURCE
    order = 30

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--no-inband", action="store_true",
                            help="skip in-band DTMF detection in G.711 audio")

    def analyze(self, capture: Capture, report: Report, options: AnalyzeOptions) -> None:
        if options.get("no_inband"):
            return
        for stream in capture.rtp_streams:
            pts = _g711_payload_types(stream, capture)
            if not pts:
                continue
            counts: Counter[str] = Counter()
            found = 0
            audio_seconds = 0.0
            for pt, codec in pts.items():
                recs = [r for r in stream.packets if r.packet.payload_type == pt]
                counts[f"{'PCMU' if codec == 'ulaw' else 'PCMA'} PT {pt} x{len(recs)}"] += 1
                for t0, packets in _segments(recs):
                    length = max(off + len(pl) for off, pl in packets)
                    codes = np.full(length, 0xFF if codec == "ulaw" else 0xD5, dtype=np.uint8)
                    seen = np.zeros(length, dtype=bool)
                    for off, pl in packets:
                        span = slice(off, off + len(pl))
                        fresh = ~seen[span]  # a duplicated packet does not overwrite the first copy
                        codes[span][fresh] = np.frombuffer(pl, dtype=np.uint8)[fresh]
                        seen[span] = True
                    audio_seconds += length / 8000
                    for d in detect(decode(codes, codec), 8000):
                        found += 1
                        report.add_digit(Digit(SOURCE, stream.label, d.digit, capture.relative(t0 + d.start),
                                               d.duration, None, f"in-band tones in {codec}"))
            report.stream(stream.label, f"in-band: {', '.join(counts)}, {audio_seconds:.1f} s audio, "
                                        f"{found} digits")
            te = any(96 <= pt <= 127 and pt not in pts for pt in stream.payload_types())
            if found and te:
                first = min(d.start for d in report.digits if d.source == SOURCE and d.stream == stream.label)
                report.add_finding(Finding(
                    SOURCE, stream.label, first, "inband_and_rfc4733",
                    "DTMF tones are in the audio while the stream also carries telephone-event packets: "
                    "a receiver that honours both sees each digit twice (mute in-band DTMF or stop "
                    "sending RFC 4733)"))


ANALYZER = InbandAnalyzer()
