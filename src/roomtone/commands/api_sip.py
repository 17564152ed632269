"""``roomtone api ...``: SIP trunks, dispatch rules and DTMF on a roomtone (or LiveKit) server.

Connection settings come from ``--url``/``--api-key``/``--api-secret`` or the environment
variables the LiveKit tools use (``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``).

    roomtone api send-dtmf --room lobby --identity sip_+15550100 "12w#"
    roomtone api list-trunks
    roomtone api list-rules
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from google.protobuf import json_format

GROUP = "api"


def _connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("LIVEKIT_URL", "http://127.0.0.1:7880"), help="server URL")
    p.add_argument("--api-key", default=os.environ.get("LIVEKIT_API_KEY"), help="API key")
    p.add_argument("--api-secret", default=os.environ.get("LIVEKIT_API_SECRET"), help="API secret")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("send-dtmf", help="make a SIP participant play DTMF digits to its phone")
    _connection(p)
    p.add_argument("--room", required=True)
    p.add_argument("--identity", required=True, help="identity of the SIP participant")
    p.add_argument("--method", default="", choices=["", "auto", "rfc4733", "info", "inband"],
                   help="DTMF method (default: the trunk's mode)")
    p.add_argument("--wait", action="store_true", help="return only after the last tone was sent")
    p.add_argument("digits", help='digits, e.g. "123#"; w , = 0.5 s pause, W = 1 s')
    p.set_defaults(func=lambda a: _run(_send_dtmf, a))

    p = sub.add_parser("list-trunks", help="list inbound and outbound SIP trunks")
    _connection(p)
    p.set_defaults(func=lambda a: _run(_list_trunks, a))

    p = sub.add_parser("list-rules", help="list SIP dispatch rules")
    _connection(p)
    p.set_defaults(func=lambda a: _run(_list_rules, a))


def _run(fn: Any, args: argparse.Namespace) -> int:
    if not args.api_key or not args.api_secret:
        print("error: --api-key and --api-secret (or LIVEKIT_API_KEY/LIVEKIT_API_SECRET) are required",
              file=sys.stderr)
        return 2
    try:
        return int(asyncio.run(fn(args)))
    except Exception as exc:  # network errors, twirp errors: one clear line, exit 1
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _print(msg: Any) -> None:
    print(json_format.MessageToJson(msg, indent=None, preserving_proto_field_name=True))


async def _send_dtmf(args: argparse.Namespace) -> int:
    from roomtone.api.client import send_dtmf

    resp = await send_dtmf(
        args.url, args.api_key, args.api_secret, room=args.room, identity=args.identity,
        digits=args.digits, method=args.method, wait=args.wait,
    )
    _print(resp)
    return 0


async def _list_trunks(args: argparse.Namespace) -> int:
    from livekit import api

    async with api.LiveKitAPI(args.url, args.api_key, args.api_secret) as client:
        inbound = await client.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        outbound = await client.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
    for t in inbound.items:
        print("inbound ", end="")
        _print(t)
    for o in outbound.items:
        print("outbound ", end="")
        _print(o)
    return 0


async def _list_rules(args: argparse.Namespace) -> int:
    from livekit import api

    async with api.LiveKitAPI(args.url, args.api_key, args.api_secret) as client:
        rules = await client.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
    for r in rules.items:
        _print(r)
    return 0
