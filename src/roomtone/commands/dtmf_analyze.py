"""``roomtone dtmf analyze CAPTURE``: the DTMF digits in a pcap/pcapng, and what went wrong."""

from __future__ import annotations

import argparse
import sys

GROUP = "dtmf"


def register(sub: argparse._SubParsersAction) -> None:
    from roomtone.analyze import add_arguments

    p = sub.add_parser(
        "analyze",
        help="list DTMF digits and anomalies found in a packet capture",
        description="Read a pcap or pcapng capture and print, per RTP stream, the DTMF digits found "
                    "(digit, start time, duration, volume) and anomalies such as missing marker bits, "
                    "missing end packets, timestamp reuse and duplicated events.",
    )
    p.add_argument("capture", help="capture file (pcap or pcapng), e.g. from tcpdump -w or tshark -w")
    p.add_argument("--te-pt", type=int, metavar="PT", help="telephone-event payload type (default: from SDP, else guessed)")
    p.add_argument("--te-rate", type=int, metavar="HZ", help="telephone-event clock rate (default: from SDP, else guessed)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from roomtone.analyze import AnalyzeOptions, CaptureError, read_capture, run_analyzers

    if args.te_pt is not None and not 0 <= args.te_pt <= 127:
        print(f"error: --te-pt {args.te_pt} is not an RTP payload type (0-127)", file=sys.stderr)
        return 2
    try:
        capture = read_capture(args.capture)
    except CaptureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    options = AnalyzeOptions(args.te_pt, args.te_rate, vars(args))
    report = run_analyzers(capture, options)
    print(report.render_json() if args.json else report.render_text())
    return 0
