"""``roomtone dtmf analyze``: find DTMF in a packet capture and say what went wrong.

The tool reads the capture once (:func:`read_capture` -> :class:`Capture`: UDP datagrams, RTP
streams guessed heuristically, SIP messages and their SDP) and hands it to every registered
analyzer, each of which adds rows to one :class:`Report`.

Plug-in interface (how in-band and SIP INFO digits join the same report)
    Add a module to this package, e.g. ``roomtone/analyze/inband.py``, that defines a module-level
    ``ANALYZER`` object with:

    * ``name: str`` -- the source name printed in the report ("inband", "sip-info");
    * ``analyze(capture: Capture, report: Report, options: AnalyzeOptions) -> None`` -- read
      ``capture.rtp_streams`` (each :class:`RtpStream` has ``label``, ``packets`` of
      ``RtpRecord(frame, time, packet: RtpPacket)``, ``payload_types()``), ``capture.sip``
      (:class:`Datagram` with ``payload`` bytes), ``capture.sdp`` (:class:`SdpMedia`), and call
      ``report.add_digit(Digit(source, stream_label, digit, start, duration, volume, note))`` and
      ``report.add_finding(Finding(source, stream_label, time, kind, detail))``; times are
      seconds since the first frame (``capture.relative(t)``); use the RTP stream's ``label`` as
      ``stream`` so digits from different sources line up under the same stream;
    * optional ``order: int`` (default 100; telephone-event is 10) and
      ``add_arguments(parser: argparse.ArgumentParser)`` for extra command-line options, read
      back with ``options.get("dest_name")``.

    Modules are discovered automatically (no edit to this file or the command needed);
    ``register_analyzer(obj)`` registers one programmatically (tests, third parties). An analyzer
    that raises is reported in the output's notes; the others still run.
"""

from __future__ import annotations

from roomtone.analyze.capture import (
    Capture,
    CaptureError,
    Datagram,
    RtpRecord,
    RtpStream,
    SdpMedia,
    parse_sdp,
    read_capture,
)
from roomtone.analyze.registry import (
    AnalyzeOptions,
    Analyzer,
    add_arguments,
    analyzers,
    register_analyzer,
    run_analyzers,
    unregister_analyzer,
)
from roomtone.analyze.report import Digit, Finding, Report, StreamSummary

__all__ = [
    "AnalyzeOptions",
    "Analyzer",
    "Capture",
    "CaptureError",
    "Datagram",
    "Digit",
    "Finding",
    "Report",
    "RtpRecord",
    "RtpStream",
    "SdpMedia",
    "StreamSummary",
    "add_arguments",
    "analyze_file",
    "analyzers",
    "parse_sdp",
    "read_capture",
    "register_analyzer",
    "run_analyzers",
    "unregister_analyzer",
]


def analyze_file(path: str, options: AnalyzeOptions | None = None) -> Report:
    """Read and analyze one capture. Raises :class:`CaptureError` if it cannot be read."""
    return run_analyzers(read_capture(path), options or AnalyzeOptions())
