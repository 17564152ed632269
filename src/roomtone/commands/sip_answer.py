"""``roomtone sip answer --listen HOST:PORT``: a test phone that answers and prints digits.

Each received digit, whatever carried it (RFC 4733, SIP INFO, in-band tones), is printed once as
a JSON line: ``{"digit","code","method","duration_ms","call_id","at"}`` (``at``: Unix time the key
press began). ``--for SECONDS`` stops after that long (default: until interrupted). ``--dtmf``
sends digits back to each caller once answered (``--method`` chooses how).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from roomtone.commands.sip_call import (
    add_media_options,
    fail,
    host_port,
    options_from,
    print_digit,
    print_json,
    run_checked,
)
from roomtone.dtmf.digits import DtmfError

GROUP = "sip"
log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("answer", help="answer test calls and print each received digit as a JSON line")
    p.add_argument("--listen", type=lambda t: host_port(t, 5060), default=("127.0.0.1", 5060),
                   metavar="HOST:PORT", help="where to listen for SIP (UDP and TCP; default 127.0.0.1:5060)")
    p.add_argument("--for", dest="duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds (default: run until interrupted)")
    p.add_argument("--dtmf", default="", help="digits to send to each caller after answering")
    p.add_argument("--events", action="store_true", help="also print call start/end lines")
    add_media_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, _run)


async def _run(args: argparse.Namespace) -> int:
    from roomtone.media.call import MediaCall, answer_call
    from roomtone.media.engine import MediaEngine
    from roomtone.media.ports import PortAllocator
    from roomtone.sip.ua import CallFailed, UserAgent

    host, port = args.listen
    engine = MediaEngine(host, PortAllocator(*args.rtp_ports))
    ua = UserAgent(host, port, transports=("UDP", "TCP"), user="roomtone")
    options = options_from(args)
    tasks: set[asyncio.Task[None]] = set()

    async def talk(call: MediaCall) -> None:
        try:
            sent = await call.send_dtmf(args.dtmf, args.method)
            if args.events:
                print_json({"event": "dtmf_sent", "call_id": call.call_id, "digits": sent.digits,
                            "method": sent.method})
        except (DtmfError, ValueError, CallFailed) as exc:
            log.warning("call %s: could not send %r: %s", call.call_id, args.dtmf, exc)

    async def on_invite(sip_call) -> None:
        try:
            call = await answer_call(sip_call, engine, options)
        except CallFailed as exc:
            log.info("call %s not established: %s", sip_call.call_id, exc)
            return
        if call is None:
            return
        call.on_dtmf = lambda ev: print_digit(ev, call.call_id)
        if args.events:
            print_json({"event": "answered", "call_id": call.call_id, "codec": call.negotiated.codec.name,
                        "telephone_event": call.telephone_event})
            call.add_listener(lambda c: print_json({"event": "ended", "call_id": c.call_id,
                                                    "reason": c.end_reason}) if c.ended else None)
        if args.dtmf:
            t = asyncio.get_running_loop().create_task(talk(call))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    ua.on_invite = on_invite
    try:
        try:
            await ua.start()
        except OSError as exc:
            return fail(f"cannot listen on {host}:{port}: {exc}")
        print(f"listening on {host}:{ua.port}", file=sys.stderr, flush=True)
        if args.duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(args.duration)
        return 0
    finally:
        for t in tasks:
            t.cancel()
        await ua.close()
        await engine.close()
