"""The analysis report: digit rows and findings from every analyzer, printed as text or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Digit:
    """One key press found in the capture.

    ``source`` names the analyzer ("rfc4733", later "inband", "sip-info"); ``stream`` is the label
    of the RTP stream or SIP dialog it came from; ``start`` is seconds since the first frame;
    ``duration`` seconds (None if unknown); ``volume`` the RFC 4733 attenuation in dB below 0 dBm0
    (None if the source has none); ``note`` anything worth saying about this row.
    """

    source: str
    stream: str
    digit: str
    start: float
    duration: float | None = None
    volume: int | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """An anomaly. ``kind`` is a short stable name ("missing_marker", "missing_end", ...)."""

    source: str
    stream: str
    time: float
    kind: str
    detail: str


@dataclass(slots=True)
class StreamSummary:
    label: str
    description: str = ""  # e.g. "telephone-event PT 101/8000 (from SDP), 42 packets"


@dataclass(slots=True)
class Report:
    capture: str
    summary: str = ""
    streams: dict[str, StreamSummary] = field(default_factory=dict)
    digits: list[Digit] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def stream(self, label: str, description: str = "") -> StreamSummary:
        """Get or create the section for a stream; analyzers add their description to it."""
        s = self.streams.get(label)
        if s is None:
            s = self.streams[label] = StreamSummary(label, description)
        elif description and description not in s.description:
            s.description = f"{s.description}; {description}" if s.description else description
        return s

    def add_digit(self, digit: Digit) -> None:
        self.stream(digit.stream)
        self.digits.append(digit)

    def add_finding(self, finding: Finding) -> None:
        self.stream(finding.stream)
        self.findings.append(finding)

    def to_json(self) -> dict[str, Any]:
        return {
            "capture": self.capture,
            "summary": self.summary,
            "streams": [asdict(s) for s in self.streams.values()],
            "digits": [asdict(d) for d in sorted(self.digits, key=lambda d: d.start)],
            "findings": [asdict(f) for f in sorted(self.findings, key=lambda f: f.time)],
            "notes": list(self.notes),
        }

    def render_json(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def render_text(self) -> str:
        lines = [f"{self.capture}: {self.summary}" if self.summary else self.capture]
        for note in self.notes:
            lines.append(f"note: {note}")
        for label, s in self.streams.items():
            digits = sorted((d for d in self.digits if d.stream == label), key=lambda d: d.start)
            findings = sorted((f for f in self.findings if f.stream == label), key=lambda f: f.time)
            lines.append("")
            lines.append(f"{label}" + (f"  [{s.description}]" if s.description else ""))
            if digits:
                lines.append(f"  {'digit':<6}{'source':<10}{'start s':>10}{'duration ms':>13}{'volume':>10}")
                for d in digits:
                    dur = f"{d.duration * 1000:.0f}" if d.duration is not None else "-"
                    vol = f"-{d.volume} dBm0" if d.volume is not None else "-"
                    note = f"  {d.note}" if d.note else ""
                    lines.append(f"  {d.digit:<6}{d.source:<10}{d.start:>10.3f}{dur:>13}{vol:>10}{note}")
            else:
                lines.append("  no digits")
            if findings:
                lines.append("  anomalies:")
                for f in findings:
                    lines.append(f"    {f.time:>9.3f}  {f.kind}: {f.detail}")
        by_source: dict[str, list[Digit]] = {}
        for d in sorted(self.digits, key=lambda d: d.start):
            by_source.setdefault(d.source, []).append(d)
        lines.append("")
        if not by_source:
            lines.append("digits: none found")
        for source, ds in by_source.items():
            lines.append(f"digits ({source}): {''.join(d.digit for d in ds)}")
        return "\n".join(lines)
