"""``roomtone sip check FILE``: parse one SIP message from a file and summarize it.

Useful when debugging a carrier: paste a message from a capture into a file and see whether
roomtone accepts it, and if not, the exact 400 reason it would answer with. Bare-LF files (as
saved by most editors) are accepted: lines are converted to CRLF before parsing, unless the file
already uses CRLF. ``-`` reads standard input.
"""

from __future__ import annotations

import argparse
import sys

from roomtone.sip.message import ParseError, Request, SipSyntaxError, parse

GROUP = "sip"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="parse one SIP message from a file and print a summary")
    p.add_argument("file", help="file holding one SIP message ('-' for stdin)")
    p.set_defaults(func=run)


def _normalize(data: bytes) -> bytes:
    if b"\r\n" in data:
        return data
    head, sep, body = data.partition(b"\n\n")
    return head.replace(b"\n", b"\r\n") + (b"\r\n\r\n" + body if sep else b"\r\n\r\n")


def run(args: argparse.Namespace) -> int:
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    msg = parse(_normalize(data))
    if isinstance(msg, ParseError):
        resp = msg.response()
        if resp is not None:
            print(f"{resp.status} {resp.reason}")
        else:
            print(f"dropped: {msg}")
        return 1
    first = f"request {msg.method} {msg.uri}" if isinstance(msg, Request) else f"response {msg.status} {msg.reason}"
    try:
        branch = msg.top_via.branch or "(none)"
    except SipSyntaxError:
        branch = "(unparseable)"
    num, method = msg.cseq
    print(first)
    print(f"Call-ID: {msg.call_id}")
    print(f"CSeq: {num} {method}")
    print(f"Via branch: {branch}")
    print(f"Body: {msg.content_type or '(no type)'}, {len(msg.body)} bytes")
    return 0
