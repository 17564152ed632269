"""The telephony store contract, run against every backend: SQLite (a file) and Redis (a real
``redis-server`` started for this module): round trips, upserts, direction moves, listing
order, deletes, reopening (a roomtone restart) and refused records."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from livekit.protocol.sip import (
    SIPDispatchRule,
    SIPDispatchRuleDirect,
    SIPDispatchRuleInfo,
    SIPInboundTrunkInfo,
    SIPOutboundTrunkInfo,
)

from roomtone.telephony.store import SQLiteTelephonyStore, StoreError, TelephonyStore, open_store

Opener = Callable[[], TelephonyStore]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_server() -> Iterator[str]:
    """A throwaway ``redis-server`` on a free loopback port (no persistence); yields its URL base."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout and proc.poll() is not None else ""
                raise AssertionError(f"redis-server did not answer PING on port {port}: {out}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.kill()  # by PID: only the server this fixture started
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


async def close(store: TelephonyStore) -> None:
    """Close and wait for it: the Redis client's sockets must be shut before the test's loop ends."""
    aclose = getattr(store, "aclose", None)
    if aclose is not None:
        await aclose()
    else:
        store.close()


@pytest.fixture(params=["sqlite", "redis"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens a new store instance on the same storage each call (a fresh process would see the same)."""
    if request.param == "sqlite":
        path = tmp_path / "sub" / "t.sqlite"
        return lambda: open_store(str(path))
    base = request.getfixturevalue("redis_server")
    url = f"{base}/0?key_prefix=test-{uuid.uuid4().hex}:"  # isolated from the other tests
    return lambda: open_store(url)


async def test_round_trip_and_reopen(opener: Opener) -> None:
    store = opener()
    inbound = SIPInboundTrunkInfo(sip_trunk_id="ST_b", name="in", numbers=["+1"], headers={"X-A": "1"})
    outbound = SIPOutboundTrunkInfo(sip_trunk_id="ST_a", name="out", address="h", numbers=["+2"])
    rule = SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_1", rule=SIPDispatchRule(dispatch_rule_direct=SIPDispatchRuleDirect(room_name="r"))
    )
    await store.put_inbound_trunk(inbound)
    await store.put_outbound_trunk(outbound)
    await store.put_dispatch_rule(rule)
    assert await store.get_outbound_trunk("ST_b") is None  # directions are separate
    inbound.name = "renamed"
    await store.put_inbound_trunk(inbound)  # upsert
    await close(store)

    store = opener()
    assert await store.list_inbound_trunks() == [inbound]
    assert await store.get_outbound_trunk("ST_a") == outbound
    assert await store.list_dispatch_rules() == [rule]
    assert await store.delete_trunk("ST_a") == "outbound"
    assert await store.delete_trunk("ST_a") is None
    assert await store.delete_dispatch_rule("SDR_1") is True
    assert await store.delete_dispatch_rule("SDR_1") is False
    assert await store.list_outbound_trunks() == []
    await close(store)


async def test_listing_order_upserts_and_direction_moves(opener: Opener) -> None:
    store = opener()
    ids = ["ST_b", "ST_B", "ST_a", "ST_a2", "ST_\u00e9", "ST_0"]
    for i in ids:
        await store.put_inbound_trunk(SIPInboundTrunkInfo(sip_trunk_id=i, name=i))
    for i in ["SDR_z", "SDR_a", "SDR_M"]:
        await store.put_dispatch_rule(SIPDispatchRuleInfo(sip_dispatch_rule_id=i, name=i, trunk_ids=["ST_a"]))
    # id order, bytewise (SQLite's ORDER BY id on TEXT)
    assert [t.sip_trunk_id for t in await store.list_inbound_trunks()] == sorted(ids, key=str.encode)
    assert [r.sip_dispatch_rule_id for r in await store.list_dispatch_rules()] == ["SDR_M", "SDR_a", "SDR_z"]

    # an id names one trunk: storing it as outbound moves it
    await store.put_outbound_trunk(SIPOutboundTrunkInfo(sip_trunk_id="ST_a", name="now outbound", address="x"))
    assert await store.get_inbound_trunk("ST_a") is None
    assert (await store.get_outbound_trunk("ST_a")) == SIPOutboundTrunkInfo(
        sip_trunk_id="ST_a", name="now outbound", address="x"
    )
    assert "ST_a" not in [t.sip_trunk_id for t in await store.list_inbound_trunks()]
    assert await store.delete_trunk("ST_a") == "outbound"
    assert await store.delete_trunk("ST_b") == "inbound"

    rule = SIPDispatchRuleInfo(sip_dispatch_rule_id="SDR_a", name="updated", trunk_ids=["ST_0"], room_preset="p")
    await store.put_dispatch_rule(rule)
    assert await store.get_dispatch_rule("SDR_a") == rule
    assert await store.get_dispatch_rule("SDR_nope") is None
    assert await store.get_inbound_trunk("ST_nope") is None
    await close(store)


async def test_refuses_records_without_ids(opener: Opener) -> None:
    store = opener()
    with pytest.raises(StoreError):
        await store.put_inbound_trunk(SIPInboundTrunkInfo(name="no id"))
    with pytest.raises(StoreError):
        await store.put_outbound_trunk(SIPOutboundTrunkInfo(name="no id"))
    with pytest.raises(StoreError):
        await store.put_dispatch_rule(SIPDispatchRuleInfo(name="no id"))
    assert await store.list_inbound_trunks() == []
    await close(store)


def test_sqlite_refuses_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        SQLiteTelephonyStore(bad)
