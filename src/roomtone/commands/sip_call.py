"""``roomtone sip call URI --dtmf DIGITS``: a test phone that calls, sends digits, hangs up.

Prints one JSON line per digit the far end sends back (``digit``, ``code``, ``method``,
``duration_ms``, ``call_id``, ``at``) and a final ``{"result": ...}`` line saying what happened:
the negotiated codec, whether telephone-event was agreed, the method used, the digits sent and how
the call ended. Exit status 0 when the call was answered and the digits went out, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from roomtone.dtmf.digits import DtmfError, parse_sequence
from roomtone.media.call import METHODS, CallOptions
from roomtone.media.dtmf_mux import DtmfEvent

GROUP = "sip"
log = logging.getLogger(__name__)

# --- shared with ``sip answer`` ------------------------------------------------------------


def host_port(text: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST``, ``:PORT`` or ``[v6]:PORT``."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    try:
        return host or "127.0.0.1", int(port) if port else default_port
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad address {text!r}: expected HOST:PORT") from None


def port_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        first, last = int(lo), int(hi if sep else lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port range {text!r}: expected FIRST-LAST") from None
    if not 1 <= first < last <= 65535:
        raise argparse.ArgumentTypeError(f"bad port range {text!r}")
    return first, last


def add_media_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rtp-ports", type=port_range, default=(20000, 30000), metavar="FIRST-LAST",
                   help="RTP port range (default 20000-30000)")
    p.add_argument("--codecs", default="PCMU,PCMA,G722", help="codecs in preference order")
    p.add_argument("--no-telephone-event", action="store_true", help="do not offer/accept RFC 4733")
    p.add_argument("--no-inband", action="store_true", help="switch in-band DTMF detection off")
    p.add_argument("--tone-ms", type=int, default=160, help="DTMF tone length (default 160)")
    p.add_argument("--gap-ms", type=int, default=120, help="gap between digits (default 120)")
    p.add_argument("--volume", type=int, default=10, help="RFC 4733 volume, dB below 0 dBm0 (default 10)")
    p.add_argument("--method", choices=METHODS, default="auto", help="how to send DTMF (default auto)")
    p.add_argument("--media-timeout", type=float, default=30.0,
                   help="hang up after this many seconds without RTP (0: never)")


def options_from(args: argparse.Namespace) -> CallOptions:
    return CallOptions(
        codecs=tuple(c.strip().upper() for c in args.codecs.split(",") if c.strip()),
        telephone_event=not args.no_telephone_event,
        dtmf_method=args.method,
        tone_ms=args.tone_ms,
        gap_ms=args.gap_ms,
        volume=args.volume,
        inband_detection=not args.no_inband,
        media_timeout=args.media_timeout or None,
    )


def print_json(obj: dict[str, object]) -> None:
    print(json.dumps(obj, separators=(",", ":")), flush=True)


def print_digit(ev: DtmfEvent, call_id: str) -> None:
    print(ev.to_json(call_id, at=ev.wall_start if ev.wall_start is not None else time.time()), flush=True)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def run_checked(args: argparse.Namespace, main: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]) -> int:
    """Reject a bad ``--dtmf`` before any socket is opened, then run ``main(args)``."""
    if args.dtmf:
        try:
            parse_sequence(args.dtmf)
        except DtmfError as exc:
            return fail(str(exc))
    return asyncio.run(main(args))


# --- sip call ------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("call", help="place a test call, send DTMF, hang up, report (JSON lines)")
    p.add_argument("uri", help="whom to call, e.g. sip:bob@127.0.0.1:5080")
    p.add_argument("--dtmf", default="", help='digits to send after answer, e.g. "0123456789*#ABCD" (w, W, , pause)')
    p.add_argument("--bind", type=lambda t: host_port(t, 0), default=("127.0.0.1", 0), metavar="HOST:PORT",
                   help="local SIP address (default 127.0.0.1, any port)")
    p.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    p.add_argument("--user", default="roomtone", help="our user name (From)")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="digest credentials for a 401/407")
    p.add_argument("--wait", type=float, default=1.0, help="seconds to stay on the call after the digits")
    p.add_argument("--answer-timeout", type=float, default=30.0, help="give up if not answered by then")
    add_media_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, _run)


async def _run(args: argparse.Namespace) -> int:
    from roomtone.media.call import place_call
    from roomtone.media.engine import MediaEngine
    from roomtone.media.ports import PortAllocator
    from roomtone.sip.ua import CallFailed, UserAgent

    host, port = args.bind
    engine = MediaEngine(host, PortAllocator(*args.rtp_ports))
    ua = UserAgent(host, port, transports=(args.transport.upper(),), user=args.user)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    result: dict[str, object] = {"uri": args.uri, "answered": False}
    status = 1
    try:
        await ua.start()
        try:
            call = await asyncio.wait_for(
                place_call(ua, engine, args.uri, options_from(args), auth=auth,
                           transport=args.transport.upper()),
                args.answer_timeout)
        except (CallFailed, TimeoutError) as exc:
            result["error"] = f"call failed: {exc}" if str(exc) else "call failed: not answered in time"
            print_json({"result": result})
            return 1
        call.on_dtmf = lambda ev: print_digit(ev, call.call_id)
        neg = call.negotiated
        result.update(answered=True, call_id=call.call_id, codec=neg.codec.name, payload_type=neg.payload_type,
                      telephone_event=call.telephone_event, peer_allows_info=call.peer_allows_info)
        if args.dtmf:
            try:
                sent = await call.send_dtmf(args.dtmf, args.method)
                result.update(method=sent.method, digits_sent=sent.digits)
                status = 0
            except (DtmfError, ValueError, CallFailed) as exc:
                result["error"] = str(exc)
        else:
            status = 0
        if not call.ended:
            try:
                await asyncio.wait_for(call.wait_ended(), args.wait)
            except TimeoutError:
                await call.hangup()
        result["received"] = "".join(ev.digit for ev in call.received)
        result["end_reason"] = call.end_reason
        print_json({"result": result})
        return status
    finally:
        await ua.close()
        await engine.close()
