"""``roomtone dtmf codes [SEQUENCE]``: show the RFC 4733 event table, or how a sequence is read."""

from __future__ import annotations

import argparse
import sys

from roomtone.dtmf import CANONICAL, DtmfError, Pause, parse_sequence

GROUP = "dtmf"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("codes", help="print the DTMF event table, or parse a digit sequence")
    p.add_argument("sequence", nargs="?", help='a sequence such as "12w3#" to explain step by step')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.sequence is None:
        print("code  digit")
        for code, ch in enumerate(CANONICAL):
            print(f"{code:>4}  {ch}{'  (flash)' if code == 16 else ''}")
        return 0
    try:
        steps = parse_sequence(args.sequence)
    except DtmfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for step in steps:
        if isinstance(step, Pause):
            print(f"pause {step.seconds:g} s")
        else:
            print(f"tone  {step.digit} (event {step.code})")
    return 0
