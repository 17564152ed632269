"""Redis-only behaviour of the telephony store, against real ``redis-server`` processes: shared
by two roomtone instances at once, key prefixes, Redis down or going away (clear errors, then
recovery), and ``roomtone serve`` with ``sip.db: redis://...`` answering the livekit-api client
and keeping its trunks across a restart. The backend-neutral contract is in test_store.py."""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from livekit import api
from livekit.protocol.sip import SIPDispatchRuleInfo, SIPInboundTrunkInfo

from roomtone.telephony.store import StoreError, StoreUnavailable, open_store
from roomtone.telephony.store_redis import RedisTelephonyStore
from tests.serve_process import start_serve, stop_serve
from tests.telephony.test_store import free_port
from tests.telephony.test_store import redis_server as redis_server  # noqa: F401  (the module fixture)

KEY, SECRET = "APIredis", "redis-secret-" + "x" * 24


def start_redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=1).ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"redis-server on {port} did not answer PING")


def stop_redis(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def own_redis() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A redis-server this test may kill."""
    port = free_port()
    proc = start_redis(port)
    try:
        yield port, proc
    finally:
        if proc.poll() is None:
            stop_redis(proc)


async def test_two_instances_share_one_redis_and_prefixes_isolate(redis_server: str) -> None:  # noqa: F811
    a = RedisTelephonyStore(f"{redis_server}/0")
    b = RedisTelephonyStore(f"{redis_server}/0")
    other = RedisTelephonyStore(f"{redis_server}/0?key_prefix=elsewhere:")
    assert isinstance(open_store(f"{redis_server}/0"), RedisTelephonyStore) and a.key_prefix == "roomtone:"
    trunk = SIPInboundTrunkInfo(sip_trunk_id=f"ST_{uuid.uuid4().hex}", name="shared", numbers=["+1"])
    await a.put_inbound_trunk(trunk)
    assert await b.get_inbound_trunk(trunk.sip_trunk_id) == trunk  # written by a, read by b, both open
    assert await other.get_inbound_trunk(trunk.sip_trunk_id) is None
    assert await other.list_inbound_trunks() == []
    raw = redis.Redis.from_url(f"{redis_server}/0")
    assert raw.hget("roomtone:sip:trunks:inbound", trunk.sip_trunk_id) == trunk.SerializeToString()
    raw.close()
    assert await b.delete_trunk(trunk.sip_trunk_id) == "inbound"
    assert await a.get_inbound_trunk(trunk.sip_trunk_id) is None
    for s in (a, b, other):
        await s.aclose()


async def test_redis_down_is_a_clear_error_and_recovers(
    own_redis: tuple[int, subprocess.Popen[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    port, proc = own_redis
    store = RedisTelephonyStore(f"redis://:hunter2@127.0.0.1:{port}/0")
    await store.put_dispatch_rule(SIPDispatchRuleInfo(sip_dispatch_rule_id="SDR_1", name="before"))
    stop_redis(proc)
    caplog.set_level(logging.ERROR, logger="roomtone.telephony.store_redis")
    with pytest.raises(StoreUnavailable) as info:
        await store.list_dispatch_rules()
    assert f"127.0.0.1:{port}" in str(info.value) and "unreachable" in str(info.value)
    assert "hunter2" not in str(info.value)  # the password never reaches messages or logs
    assert isinstance(info.value, StoreError)  # what the API layer already handles
    with pytest.raises(StoreUnavailable):
        await store.put_inbound_trunk(SIPInboundTrunkInfo(sip_trunk_id="ST_x"))
    with pytest.raises(StoreUnavailable):
        await store.ping()
    assert any("unreachable" in r.getMessage() for r in caplog.records)
    assert not any("hunter2" in r.getMessage() for r in caplog.records)

    # the same store works again once Redis is back (empty: this one kept nothing on disk)
    proc2 = start_redis(port)
    try:
        assert await store.list_dispatch_rules() == []
        await store.put_inbound_trunk(SIPInboundTrunkInfo(sip_trunk_id="ST_x"))
        assert [t.sip_trunk_id for t in await store.list_inbound_trunks()] == ["ST_x"]
    finally:
        await store.aclose()
        stop_redis(proc2)


async def test_nothing_listening_and_bad_urls() -> None:
    store = open_store(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable, match="unreachable"):
        await store.get_inbound_trunk("ST_1")
    await store.aclose()  # type: ignore[attr-defined]
    with pytest.raises(StoreError):
        open_store("redis://127.0.0.1:6379/not-a-db-number")


# ---- roomtone serve with sip.db: redis://...


def start_redis_serve(tmp_path: Path, port: int, sip_port: int, redis_url: str) -> subprocess.Popen[str]:
    return start_serve(tmp_path, {"port": port, "keys": {KEY: SECRET}, "sip": {"port": sip_port, "db": redis_url}})


async def test_serve_with_redis_store(tmp_path: Path) -> None:
    redis_port, port, sip_port = free_port(), free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    proc = start_redis_serve(tmp_path, port, sip_port, url)  # Redis not started yet
    redis_proc: subprocess.Popen[bytes] | None = None
    try:
        lk = api.LiveKitAPI(f"http://127.0.0.1:{port}", KEY, SECRET)
        request = api.CreateSIPInboundTrunkRequest(
            trunk=api.SIPInboundTrunkInfo(name="carrier", numbers=["+15550100"], allowed_addresses=["127.0.0.1"])
        )
        with pytest.raises(api.TwirpError) as info:
            await lk.sip.create_inbound_trunk(request)
        # a clear 503 naming the store
        assert info.value.code == "unavailable" and info.value.status == 503
        assert "unreachable" in info.value.message and f"127.0.0.1:{redis_port}" in info.value.message

        redis_proc = start_redis(redis_port)  # the same server, without a restart, now works
        trunk = await lk.sip.create_inbound_trunk(request)
        assert trunk.sip_trunk_id.startswith("ST_")
        listed = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        assert [t.sip_trunk_id for t in listed.items] == [trunk.sip_trunk_id]
        await lk.aclose()
    finally:
        first_log = stop_serve(proc)
    try:
        assert f"stored in {url}" in first_log
        assert "not reachable at startup" in first_log

        proc = start_redis_serve(tmp_path, port, sip_port, url)  # a restart: the trunk is in Redis
        try:
            lk = api.LiveKitAPI(f"http://127.0.0.1:{port}", KEY, SECRET)
            listed = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
            assert [(t.sip_trunk_id, t.name, list(t.numbers)) for t in listed.items] == [
                (trunk.sip_trunk_id, "carrier", ["+15550100"])
            ]
            await lk.aclose()
        finally:
            second_log = stop_serve(proc)
        assert "Traceback" not in first_log + second_log
        raw = redis.Redis(port=redis_port)
        assert raw.hkeys("roomtone:sip:trunks:inbound") == [trunk.sip_trunk_id.encode()]
        raw.close()
    finally:
        if redis_proc is not None:
            stop_redis(redis_proc)


async def test_gateway_refuses_calls_with_503_while_the_store_is_down(caplog: pytest.LogCaptureFixture) -> None:
    from roomtone.rooms import RoomManager
    from roomtone.sip.ua import CallFailed, UserAgent
    from roomtone.telephony.gateway import GatewayConfig, SipGateway
    from roomtone.telephony.service import Telephony
    from tests.phones.common import free_port

    store = RedisTelephonyStore(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    rooms = RoomManager()
    gateway = SipGateway(Telephony(store), rooms, GatewayConfig(sip_port=0, transports=("UDP",)))
    await gateway.start()
    phone = UserAgent("127.0.0.1", 0, user="caller")
    await phone.start()
    offer = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
    try:
        with pytest.raises(CallFailed) as info:
            await phone.call(f"sip:+15550100@127.0.0.1:{gateway.port}", offer)
        assert info.value.status == 503
        assert "SIP trunk store" in caplog.text and "unreachable" in caplog.text
        assert "Traceback" not in caplog.text  # an operational state, told in one line
    finally:
        await phone.close()
        await gateway.close()
        await rooms.close()
        await store.aclose()
