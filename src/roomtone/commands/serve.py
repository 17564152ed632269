"""``roomtone serve``: the room server on embedded defaults (127.0.0.1:7880).

Keys come from ``--config`` (YAML ``keys:``), ``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET`` or
``LIVEKIT_KEYS``; with none, development credentials are generated and printed, as
``livekit-server --dev`` does, so a first run needs nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys

import roomtone
from roomtone import config as config_mod

GROUP = None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the LiveKit-compatible room server")
    p.add_argument("--config", metavar="FILE", help="YAML config file (livekit-server layout)")
    p.add_argument("--bind", metavar="ADDR", help=f"address to listen on (default {config_mod.DEFAULT_BIND})")
    p.add_argument("--port", type=int, help=f"port to listen on (default {config_mod.DEFAULT_PORT})")
    p.add_argument("--keys", metavar='"KEY: SECRET"', help="API key pairs, one per line (as LIVEKIT_KEYS)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from roomtone.server import RunningServer, serve_forever

    verbose = getattr(args, "verbose", 0)
    if verbose == 0:
        logging.getLogger().setLevel(logging.INFO)
    # aioice/aiortc debug output (every STUN check, every SDP) drowns our own; -vv still shows ours.
    for name in ("aioice", "aiortc", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING if verbose < 2 else logging.INFO)
    try:
        env = dict(os.environ)
        if args.keys:
            env["LIVEKIT_KEYS"] = args.keys
        cfg = config_mod.load(args.config, env, bind=args.bind, port=args.port)
    except config_mod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    generated = config_mod.ensure_keys(cfg)
    _load_detector_kernels()
    # Start-up leaves ~150k long-lived objects (numba, aiortc, protobuf); a full collection over
    # them paused the server 25-36 ms (seen as relay p99 outliers). Frozen, collections skip them.
    gc.collect()
    gc.freeze()

    def ready(server: RunningServer) -> None:
        print(f"roomtone {roomtone.__version__} listening on {server.url}", flush=True)
        if generated:
            ((key, secret),) = cfg.keys.items()
            print("No API keys configured: generated development credentials (not for production)")
            print(f"  API key:    {key}")
            print(f"  API secret: {secret}", flush=True)
        else:
            print(f"API keys: {', '.join(sorted(cfg.keys))}", flush=True)

    try:
        asyncio.run(serve_forever(cfg, on_ready=ready))
    except OSError as exc:
        print(f"error: cannot listen on {cfg.bind}:{cfg.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _load_detector_kernels() -> None:
    """Compile (or load from cache) the in-band detector's numba kernels before audio flows:
    doing it lazily inside the 20 ms media loop would stall every call for up to 3 s."""
    import time

    from roomtone.dtmf.detector import load_kernels

    started = time.perf_counter()
    accelerated = load_kernels()
    logging.getLogger(__name__).info(
        "in-band DTMF detector: %s (%.1f s)",
        "numba kernels" if accelerated else "numpy path (numba unavailable or ROOMTONE_DTMF_NUMBA=0)",
        time.perf_counter() - started,
    )
