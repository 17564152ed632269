"""The ``roomtone`` command line.

Subcommands live in ``roomtone.commands``: each module there defines ``GROUP`` (for example
``"dtmf"`` for ``roomtone dtmf ...``, or ``None`` for a top-level command such as ``serve``) and
``register(subparsers)`` which adds its parsers and sets ``func`` (a callable taking the parsed
namespace and returning an exit code). Discovery keeps this file free of per-feature edits.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

# Before numpy loads: OpenBLAS worker threads stall the 20 ms media clock on a busy machine
# (measured: the detector bank's small matrix product went from 0.2 ms to 5.8 ms).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import roomtone  # noqa: E402
import roomtone.commands  # noqa: E402

GROUP_HELP = {
    "dtmf": "DTMF tools: tones, detection, capture analysis",
    "sip": "SIP tools: check messages, place and answer test calls",
    "api": "call a roomtone (or LiveKit) server's HTTP API",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roomtone", description=roomtone.__doc__)
    parser.add_argument("--version", action="version", version=f"roomtone {roomtone.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    modules = sorted(m.name for m in pkgutil.iter_modules(roomtone.commands.__path__))
    for name in modules:
        module = importlib.import_module(f"roomtone.commands.{name}")
        group = getattr(module, "GROUP", None)
        if group is None:
            module.register(top)
            continue
        if group not in groups:
            gp = top.add_parser(group, help=GROUP_HELP.get(group, f"{group} commands"))
            gp.set_defaults(func=lambda _args, _gp=gp: (_gp.print_help(), 2)[1])
            groups[group] = gp.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
        module.register(groups[group])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
