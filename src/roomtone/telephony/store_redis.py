"""The Redis backend of the telephony store (``sip.db: redis://host:port/N``).

Same records and semantics as :class:`roomtone.telephony.store.SQLiteTelephonyStore`: the
serialised LiveKit protobuf messages, keyed by id, listed in id order (bytewise, as SQLite's
``ORDER BY id``), with upserts and deletes. Layout, under a key prefix (default ``roomtone:``,
``?key_prefix=...`` in the URL to change it)::

    <prefix>sip:trunks:inbound    hash  trunk id -> SIPInboundTrunkInfo bytes
    <prefix>sip:trunks:outbound   hash  trunk id -> SIPOutboundTrunkInfo bytes
    <prefix>sip:rules             hash  rule id  -> SIPDispatchRuleInfo bytes

One hash per kind is enough: the API lists, filters and pages in Python over the whole set
(trunks and rules number in the hundreds, not millions), so no secondary index is needed. A put
that moves a trunk id between directions, and a delete that must report the direction, run as
one MULTI/EXEC transaction so other servers sharing the Redis never see a half-applied change.

The client is ``redis.asyncio`` (redis-py). Connection failures and timeouts become
:class:`StoreUnavailable` with the (password-free) address in the message; other Redis errors
become :class:`StoreError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from livekit.protocol.sip import SIPDispatchRuleInfo, SIPInboundTrunkInfo, SIPOutboundTrunkInfo
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from roomtone.numeric import is_ascii_decimal
from roomtone.telephony.store import Direction, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "roomtone:"
T = TypeVar("T")


def is_redis_url(value: str) -> bool:
    return value.startswith(("redis://", "rediss://"))


def redact(url: str) -> str:
    """The URL without its password (for logs and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


class RedisTelephonyStore:
    """Trunks and dispatch rules in Redis; several roomtone servers may share one."""

    def __init__(self, url: str, *, key_prefix: str | None = None) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix_in_url = [v for k, v in query if k == "key_prefix"]
        rest = [(k, v) for k, v in query if k != "key_prefix"]
        self.key_prefix = key_prefix if key_prefix is not None else (prefix_in_url[-1] if prefix_in_url else DEFAULT_PREFIX)
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
        self.location = redact(self.url)
        db = parts.path.strip("/")
        if db and not is_ascii_decimal(db):  # redis-py would silently fall back to database 0
            raise StoreError(f"invalid Redis URL {self.location}: the path must be a database number, like /0")
        try:
            # Short timeouts and a single retry: an unreachable Redis should answer the API
            # client within seconds, not hang it. URL query options (socket_timeout=...) win.
            self._redis: aioredis.Redis = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=3, socket_timeout=5, retry=Retry(NoBackoff(), 1),
            )
        except (ValueError, RedisError) as exc:
            raise StoreError(f"invalid Redis URL {self.location}: {exc}") from exc
        self._closing: set[asyncio.Task[None]] = set()
        p = self.key_prefix
        self._keys: dict[str, str] = {
            "inbound": f"{p}sip:trunks:inbound",
            "outbound": f"{p}sip:trunks:outbound",
            "rules": f"{p}sip:rules",
        }

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except (TimeoutError, RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.error("telephony store: Redis at %s is unreachable: %s", self.location, exc)
            raise StoreUnavailable(f"Redis at {self.location} is unreachable: {exc}") from exc
        except RedisError as exc:
            log.error("telephony store: Redis at %s failed: %s", self.location, exc)
            raise StoreError(f"Redis at {self.location}: {exc}") from exc

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless Redis answers (startup check)."""
        await self._call(self._redis.ping)  # type: ignore[arg-type]

    def close(self) -> None:
        """Drop the connections; async under the hood, so scheduled on the running loop.
        Code running on a loop should prefer ``await aclose()``, which waits for it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            task = loop.create_task(self.aclose())
            self._closing.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._closing.discard)
        else:
            asyncio.run(self.aclose())

    async def aclose(self) -> None:
        try:
            await self._redis.aclose()
        except (RedisError, OSError, RuntimeError) as exc:  # a loop that is gone, a dead socket
            log.debug("closing Redis client for %s: %s", self.location, exc)

    # helpers

    async def _get(self, key: str, item_id: str) -> bytes | None:
        raw: Any = await self._call(lambda: self._redis.hget(key, item_id))  # type: ignore[arg-type,return-value]
        return None if raw is None else bytes(raw)

    async def _list(self, key: str) -> list[bytes]:
        mapping: dict[bytes, bytes] = await self._call(lambda: self._redis.hgetall(key))  # type: ignore[arg-type,return-value]
        return [bytes(mapping[k]) for k in sorted(mapping)]  # bytewise, like SQLite ORDER BY id

    async def _put_trunk(self, direction: Direction, trunk: SIPInboundTrunkInfo | SIPOutboundTrunkInfo) -> None:
        if not trunk.sip_trunk_id:
            raise StoreError("a trunk needs an id before it is stored")
        other = "outbound" if direction == "inbound" else "inbound"
        data = trunk.SerializeToString()

        async def run() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self._keys[other], trunk.sip_trunk_id)  # an id names one trunk
                pipe.hset(self._keys[direction], trunk.sip_trunk_id, data)
                await pipe.execute()

        await self._call(run)

    # trunks

    async def get_inbound_trunk(self, trunk_id: str) -> SIPInboundTrunkInfo | None:
        raw = await self._get(self._keys["inbound"], trunk_id)
        return None if raw is None else SIPInboundTrunkInfo.FromString(raw)

    async def get_outbound_trunk(self, trunk_id: str) -> SIPOutboundTrunkInfo | None:
        raw = await self._get(self._keys["outbound"], trunk_id)
        return None if raw is None else SIPOutboundTrunkInfo.FromString(raw)

    async def list_inbound_trunks(self) -> list[SIPInboundTrunkInfo]:
        return [SIPInboundTrunkInfo.FromString(r) for r in await self._list(self._keys["inbound"])]

    async def list_outbound_trunks(self) -> list[SIPOutboundTrunkInfo]:
        return [SIPOutboundTrunkInfo.FromString(r) for r in await self._list(self._keys["outbound"])]

    async def put_inbound_trunk(self, trunk: SIPInboundTrunkInfo) -> None:
        await self._put_trunk("inbound", trunk)

    async def put_outbound_trunk(self, trunk: SIPOutboundTrunkInfo) -> None:
        await self._put_trunk("outbound", trunk)

    async def delete_trunk(self, trunk_id: str) -> Direction | None:
        async def run() -> list[Any]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self._keys["inbound"], trunk_id)
                pipe.hdel(self._keys["outbound"], trunk_id)
                return list(await pipe.execute())

        removed_in, removed_out = await self._call(run)
        if removed_in:
            return "inbound"
        return "outbound" if removed_out else None

    # dispatch rules

    async def get_dispatch_rule(self, rule_id: str) -> SIPDispatchRuleInfo | None:
        raw = await self._get(self._keys["rules"], rule_id)
        return None if raw is None else SIPDispatchRuleInfo.FromString(raw)

    async def list_dispatch_rules(self) -> list[SIPDispatchRuleInfo]:
        return [SIPDispatchRuleInfo.FromString(r) for r in await self._list(self._keys["rules"])]

    async def put_dispatch_rule(self, rule: SIPDispatchRuleInfo) -> None:
        if not rule.sip_dispatch_rule_id:
            raise StoreError("a dispatch rule needs an id before it is stored")
        data = rule.SerializeToString()
        await self._call(lambda: self._redis.hset(self._keys["rules"], rule.sip_dispatch_rule_id, data))  # type: ignore[arg-type,return-value]

    async def delete_dispatch_rule(self, rule_id: str) -> bool:
        removed: Any = await self._call(lambda: self._redis.hdel(self._keys["rules"], rule_id))  # type: ignore[arg-type,return-value]
        return bool(removed)
