"""``roomtone dtmf detect FILE.wav``: print the DTMF digits heard in a WAV file.

Reads 16-bit linear PCM, µ-law and A-law WAV (multichannel files: first channel). Prints one line
per digit with its start time and duration, then the digit string.
"""

from __future__ import annotations

import argparse
import logging
import sys

from roomtone.dtmf.detector import detect
from roomtone.dtmf.digits import DtmfError
from roomtone.media.g711 import WavError, read_wav

GROUP = "dtmf"
log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detect in-band DTMF digits in a WAV file (PCM, µ-law, A-law)")
    p.add_argument("file", help="WAV file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        audio = read_wav(args.file)
    except (OSError, WavError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        found = detect(audio.samples, audio.sample_rate)
    except DtmfError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        import json

        print(json.dumps({"file": args.file, "sample_rate": audio.sample_rate, "encoding": audio.encoding,
                          "digits": [{"digit": d.digit, "start": round(d.start, 4), "duration": round(d.duration, 4)}
                                     for d in found]}))
        return 0
    print(f"{args.file}: {audio.encoding}, {audio.sample_rate} Hz, {len(audio.samples) / audio.sample_rate:.3f} s")
    print("digit   start (s)  duration (s)")
    for d in found:
        print(f"{d.digit:>5}  {d.start:10.4f}  {d.duration:12.4f}")
    print(f"digits: {''.join(d.digit for d in found)}")
    return 0
