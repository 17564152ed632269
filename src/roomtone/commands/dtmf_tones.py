"""``roomtone dtmf tones SEQUENCE -o out.wav``: write DTMF tones (Q.23) to a WAV file.

Linear 16-bit PCM by default; ``--ulaw`` / ``--alaw`` write G.711 WAV (format tags 7 / 6), what a
telephone line would carry.
"""

from __future__ import annotations

import argparse
import logging
import sys

from roomtone.dtmf.digits import DtmfError
from roomtone.dtmf.tones import (
    DEFAULT_GAP_SECONDS,
    DEFAULT_HIGH_DBM0,
    DEFAULT_LOW_DBM0,
    DEFAULT_TONE_SECONDS,
    ToneGenerator,
)
from roomtone.media.g711 import write_wav

GROUP = "dtmf"
log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tones", help="write DTMF tones for a digit sequence to a WAV file")
    p.add_argument("sequence", help='digits 0-9 * # A-D, pauses w , (0.5 s) and W (1 s), e.g. "123#w456"')
    p.add_argument("-o", "--output", required=True, help="WAV file to write")
    p.add_argument("--rate", type=int, default=8000, help="sample rate in Hz (default 8000; 16000, 48000...)")
    enc = p.add_mutually_exclusive_group()
    enc.add_argument("--ulaw", action="store_true", help="write G.711 µ-law WAV")
    enc.add_argument("--alaw", action="store_true", help="write G.711 A-law WAV")
    p.add_argument("--tone-ms", type=float, default=DEFAULT_TONE_SECONDS * 1000, help="tone length (default 100)")
    p.add_argument("--gap-ms", type=float, default=DEFAULT_GAP_SECONDS * 1000, help="gap after each tone (default 100)")
    p.add_argument("--low-dbm0", type=float, default=DEFAULT_LOW_DBM0, help="low-group level (default -7)")
    p.add_argument("--high-dbm0", type=float, default=DEFAULT_HIGH_DBM0, help="high-group level (default -5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    encoding = "ulaw" if args.ulaw else "alaw" if args.alaw else "pcm16"
    try:
        gen = ToneGenerator(sample_rate=args.rate, low_dbm0=args.low_dbm0, high_dbm0=args.high_dbm0)
        audio, placed = gen.sequence(args.sequence, args.tone_ms / 1000, args.gap_ms / 1000)
    except DtmfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        write_wav(args.output, audio, args.rate, encoding)
    except OSError as exc:
        print(f"error: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    log.info("wrote %d tones, %d samples at %d Hz (%s) to %s", len(placed), len(audio), args.rate, encoding,
             args.output)
    print(f"{args.output}: {len(placed)} tones, {len(audio) / args.rate:.3f} s, {args.rate} Hz, {encoding}")
    return 0
