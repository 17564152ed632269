"""Where SIP trunks and dispatch rules live: a small storage interface and its SQLite backend.

The records are LiveKit's own protobuf messages (``SIPInboundTrunkInfo``,
``SIPOutboundTrunkInfo``, ``SIPDispatchRuleInfo`` from ``livekit.protocol.sip``), stored
serialised so that every field the API accepts survives a restart, including fields this
server does not act on yet. A few fields are copied into indexed columns (direction, name,
numbers, trunk ids) for listing and filtering.

The interface is async so that a networked backend (Redis) can implement it without blocking
the event loop. The SQLite backend uses the standard library's ``sqlite3``: each operation is a
short local transaction, cheap enough to run inline on the loop.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Literal, Protocol

from livekit.protocol.sip import SIPDispatchRuleInfo, SIPInboundTrunkInfo, SIPOutboundTrunkInfo

log = logging.getLogger(__name__)

Direction = Literal["inbound", "outbound"]


class StoreError(Exception):
    """The store could not read or write (corrupt file, disk full ...)."""


class StoreUnavailable(StoreError):
    """The store's server cannot be reached (Redis down or unreachable); retrying later may work."""


class TrunkStore(Protocol):
    async def get_inbound_trunk(self, trunk_id: str) -> SIPInboundTrunkInfo | None: ...
    async def get_outbound_trunk(self, trunk_id: str) -> SIPOutboundTrunkInfo | None: ...
    async def list_inbound_trunks(self) -> list[SIPInboundTrunkInfo]: ...
    async def list_outbound_trunks(self) -> list[SIPOutboundTrunkInfo]: ...
    async def put_inbound_trunk(self, trunk: SIPInboundTrunkInfo) -> None: ...
    async def put_outbound_trunk(self, trunk: SIPOutboundTrunkInfo) -> None: ...
    async def delete_trunk(self, trunk_id: str) -> Direction | None:
        """Delete an inbound or outbound trunk; returns which one it was, or None if unknown."""
        ...


class RuleStore(Protocol):
    async def get_dispatch_rule(self, rule_id: str) -> SIPDispatchRuleInfo | None: ...
    async def list_dispatch_rules(self) -> list[SIPDispatchRuleInfo]: ...
    async def put_dispatch_rule(self, rule: SIPDispatchRuleInfo) -> None: ...
    async def delete_dispatch_rule(self, rule_id: str) -> bool: ...


class TelephonyStore(TrunkStore, RuleStore, Protocol):
    def close(self) -> None: ...


def open_store(db: str) -> TelephonyStore:
    """The store named by the ``sip.db`` setting: ``redis://`` or ``rediss://`` URLs select the
    Redis backend (:mod:`roomtone.telephony.store_redis`), anything else is a SQLite path."""
    if db.startswith(("redis://", "rediss://")):
        from roomtone.telephony.store_redis import RedisTelephonyStore  # redis-py only when used

        return RedisTelephonyStore(db)
    return SQLiteTelephonyStore(db)


def describe(db: str) -> str:
    """``db`` for a log line: a Redis URL loses its password."""
    if db.startswith(("redis://", "rediss://")):
        from roomtone.telephony.store_redis import redact

        return redact(db)
    return db


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sip_trunks (
    id TEXT PRIMARY KEY,
    direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    name TEXT NOT NULL,
    numbers TEXT NOT NULL,
    message BLOB NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sip_trunks_direction ON sip_trunks (direction, id);
CREATE TABLE IF NOT EXISTS sip_dispatch_rules (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    trunk_ids TEXT NOT NULL,
    message BLOB NOT NULL,
    updated_at REAL NOT NULL
);
"""


class SQLiteTelephonyStore:
    """Trunks and dispatch rules in one SQLite file (``":memory:"`` for a throwaway store)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open telephony store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                with self._db:
                    return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"telephony store {self.path}: {exc}") from exc

    # trunks

    def _load_trunk(self, direction: Direction, trunk_id: str) -> bytes | None:
        rows = self._exec("SELECT message FROM sip_trunks WHERE id = ? AND direction = ?", (trunk_id, direction))
        return bytes(rows[0][0]) if rows else None

    def _list_trunks(self, direction: Direction) -> list[bytes]:
        rows = self._exec("SELECT message FROM sip_trunks WHERE direction = ? ORDER BY id", (direction,))
        return [bytes(r[0]) for r in rows]

    def _put_trunk(self, direction: Direction, trunk: SIPInboundTrunkInfo | SIPOutboundTrunkInfo) -> None:
        if not trunk.sip_trunk_id:
            raise StoreError("a trunk needs an id before it is stored")
        self._exec(
            "INSERT INTO sip_trunks (id, direction, name, numbers, message, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET direction = excluded.direction, name = excluded.name,"
            " numbers = excluded.numbers, message = excluded.message, updated_at = excluded.updated_at",
            (
                trunk.sip_trunk_id,
                direction,
                trunk.name,
                json.dumps(list(trunk.numbers)),
                trunk.SerializeToString(),
                time.time(),
            ),
        )

    async def get_inbound_trunk(self, trunk_id: str) -> SIPInboundTrunkInfo | None:
        raw = self._load_trunk("inbound", trunk_id)
        return None if raw is None else SIPInboundTrunkInfo.FromString(raw)

    async def get_outbound_trunk(self, trunk_id: str) -> SIPOutboundTrunkInfo | None:
        raw = self._load_trunk("outbound", trunk_id)
        return None if raw is None else SIPOutboundTrunkInfo.FromString(raw)

    async def list_inbound_trunks(self) -> list[SIPInboundTrunkInfo]:
        return [SIPInboundTrunkInfo.FromString(r) for r in self._list_trunks("inbound")]

    async def list_outbound_trunks(self) -> list[SIPOutboundTrunkInfo]:
        return [SIPOutboundTrunkInfo.FromString(r) for r in self._list_trunks("outbound")]

    async def put_inbound_trunk(self, trunk: SIPInboundTrunkInfo) -> None:
        self._put_trunk("inbound", trunk)

    async def put_outbound_trunk(self, trunk: SIPOutboundTrunkInfo) -> None:
        self._put_trunk("outbound", trunk)

    async def delete_trunk(self, trunk_id: str) -> Direction | None:
        rows = self._exec("DELETE FROM sip_trunks WHERE id = ? RETURNING direction", (trunk_id,))
        if not rows:
            return None
        return "inbound" if rows[0][0] == "inbound" else "outbound"

    # dispatch rules

    async def get_dispatch_rule(self, rule_id: str) -> SIPDispatchRuleInfo | None:
        rows = self._exec("SELECT message FROM sip_dispatch_rules WHERE id = ?", (rule_id,))
        return SIPDispatchRuleInfo.FromString(bytes(rows[0][0])) if rows else None

    async def list_dispatch_rules(self) -> list[SIPDispatchRuleInfo]:
        rows = self._exec("SELECT message FROM sip_dispatch_rules ORDER BY id")
        return [SIPDispatchRuleInfo.FromString(bytes(r[0])) for r in rows]

    async def put_dispatch_rule(self, rule: SIPDispatchRuleInfo) -> None:
        if not rule.sip_dispatch_rule_id:
            raise StoreError("a dispatch rule needs an id before it is stored")
        self._exec(
            "INSERT INTO sip_dispatch_rules (id, name, trunk_ids, message, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET name = excluded.name, trunk_ids = excluded.trunk_ids,"
            " message = excluded.message, updated_at = excluded.updated_at",
            (
                rule.sip_dispatch_rule_id,
                rule.name,
                json.dumps(list(rule.trunk_ids)),
                rule.SerializeToString(),
                time.time(),
            ),
        )

    async def delete_dispatch_rule(self, rule_id: str) -> bool:
        rows = self._exec("DELETE FROM sip_dispatch_rules WHERE id = ? RETURNING id", (rule_id,))
        return bool(rows)
