"""The telephony object the server and the API share: storage plus (once wired) the SIP gateway.

``Telephony(store)`` is enough for trunk and dispatch-rule management. The SIP bridge attaches
itself with :meth:`Telephony.attach_gateway`; call-control requests (CreateSIPParticipant,
TransferSIPParticipant, SendDTMF) are forwarded to it, and refused with a clear error while no
gateway runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from livekit.protocol import sip as sip_pb

from roomtone.telephony.errors import TelephonyError
from roomtone.telephony.store import SQLiteTelephonyStore, TelephonyStore

log = logging.getLogger(__name__)


class Gateway(Protocol):
    async def create_sip_participant(self, req: sip_pb.CreateSIPParticipantRequest) -> sip_pb.SIPParticipantInfo: ...

    async def transfer_sip_participant(self, req: sip_pb.TransferSIPParticipantRequest) -> None: ...

    async def send_dtmf(
        self, *, room: str, identity: str, digits: str, method: str, wait: bool
    ) -> tuple[str, str, str]: ...


class Telephony:
    def __init__(self, store: TelephonyStore) -> None:
        self.store = store
        self.gateway: Gateway | None = None

    @classmethod
    def open(cls, path: str | Path) -> Telephony:
        """Telephony backed by the SQLite file at ``path`` (created if missing)."""
        return cls(SQLiteTelephonyStore(path))

    def attach_gateway(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def close(self) -> None:
        self.store.close()

    def _gateway(self) -> Gateway:
        if self.gateway is None:
            raise TelephonyError("unavailable", "no SIP gateway is running on this server")
        return self.gateway

    async def create_sip_participant(self, req: sip_pb.CreateSIPParticipantRequest) -> sip_pb.SIPParticipantInfo:
        return await self._gateway().create_sip_participant(req)

    async def transfer_sip_participant(self, req: sip_pb.TransferSIPParticipantRequest) -> None:
        await self._gateway().transfer_sip_participant(req)

    async def send_dtmf(self, *, room: str, identity: str, digits: str, method: str, wait: bool) -> tuple[str, str, str]:
        return await self._gateway().send_dtmf(room=room, identity=identity, digits=digits, method=method, wait=wait)

    def __repr__(self) -> str:
        return f"Telephony(store={self.store!r}, gateway={self.gateway!r})"
