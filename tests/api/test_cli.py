"""`roomtone api ...` subcommands, run as a real process against a live API server."""

from __future__ import annotations

import asyncio
import json
import sys

from livekit import api

from .conftest import API_KEY, API_SECRET, ApiServer


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roomtone.cli", "api", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def conn(server: ApiServer) -> list[str]:
    return ["--url", server.url, "--api-key", API_KEY, "--api-secret", API_SECRET]


async def test_list_trunks_and_rules(api_server: ApiServer) -> None:
    async with api.LiveKitAPI(api_server.url, API_KEY, API_SECRET) as client:
        trunk = await client.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(name="cli", numbers=["+15550700"]))
        )
        rule = await client.sip.create_dispatch_rule(
            api.CreateSIPDispatchRuleRequest(
                dispatch_rule=api.SIPDispatchRuleInfo(
                    rule=api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name="x"))
                )
            )
        )
    code, out, err = await run_cli("list-trunks", *conn(api_server))
    assert code == 0, err
    kind, _, body = out.strip().partition(" ")
    assert kind == "inbound" and json.loads(body)["sip_trunk_id"] == trunk.sip_trunk_id
    code, out, err = await run_cli("list-rules", *conn(api_server))
    assert code == 0, err
    assert json.loads(out)["sip_dispatch_rule_id"] == rule.sip_dispatch_rule_id


async def test_send_dtmf_errors_are_reported(api_server: ApiServer) -> None:
    # no gateway attached to this server: a clear error and exit status 1
    code, out, err = await run_cli("send-dtmf", *conn(api_server), "--room", "r", "--identity", "sip_x", "12#")
    assert code == 1 and "unavailable" in err and out == ""
    code, _, err = await run_cli("send-dtmf", "--url", api_server.url, "--room", "r", "--identity", "i", "1")
    assert code == 2 and "api-key" in err
    code, _, err = await run_cli(
        "send-dtmf", "--url", api_server.url, "--api-key", API_KEY, "--api-secret", "wrong-secret-xxxxxxxxxxxxxxxxxxxxxxxx",
        "--room", "r", "--identity", "i", "1",
    )
    assert code == 1 and "unauthenticated" in err
