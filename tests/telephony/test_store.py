"""The SQLite telephony store: round trips, upserts, deletes, reopen."""

from __future__ import annotations

from pathlib import Path

import pytest
from livekit.protocol.sip import (
    SIPDispatchRule,
    SIPDispatchRuleDirect,
    SIPDispatchRuleInfo,
    SIPInboundTrunkInfo,
    SIPOutboundTrunkInfo,
)

from roomtone.telephony.store import SQLiteTelephonyStore, StoreError


async def test_round_trip_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "t.sqlite"
    store = SQLiteTelephonyStore(path)
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
    store.close()

    store = SQLiteTelephonyStore(path)
    assert await store.list_inbound_trunks() == [inbound]
    assert await store.get_outbound_trunk("ST_a") == outbound
    assert await store.list_dispatch_rules() == [rule]
    assert await store.delete_trunk("ST_a") == "outbound"
    assert await store.delete_trunk("ST_a") is None
    assert await store.delete_dispatch_rule("SDR_1") is True
    assert await store.delete_dispatch_rule("SDR_1") is False
    assert await store.list_outbound_trunks() == []
    store.close()


async def test_refuses_records_without_ids_and_bad_files(tmp_path: Path) -> None:
    store = SQLiteTelephonyStore(":memory:")
    with pytest.raises(StoreError):
        await store.put_inbound_trunk(SIPInboundTrunkInfo(name="no id"))
    store.close()
    bad = tmp_path / "garbage.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        SQLiteTelephonyStore(bad)
