"""The ``livekit.SIP`` twirp service: trunks, dispatch rules and SIP participants.

Trunk and rule management needs the ``sip.admin`` grant; placing or transferring calls needs
``sip.call`` (livekit/livekit ``pkg/service/sip.go``). Records are validated and checked for
conflicts with the ones already stored (:mod:`roomtone.telephony.matching`) before they are
saved, so a configuration that could never route a call is refused with ``invalid_argument``
instead of failing later on a live call.

Call control (CreateSIPParticipant, TransferSIPParticipant) is delegated to the telephony
object passed to :func:`roomtone.api.install`; when none is wired in, those methods answer
``unavailable`` with a message saying so.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from google.protobuf.message import Message
from livekit.protocol import models
from livekit.protocol import sip as sip_pb

from roomtone.api.grants import ensure_admin, ensure_sip_admin, ensure_sip_call
from roomtone.api.twirp import Service, TwirpError, invalid_argument, not_found
from roomtone.rtc.tokens import Claims
from roomtone.telephony import matching
from roomtone.telephony.errors import TelephonyError
from roomtone.telephony.ids import RULE_PREFIX, TRUNK_PREFIX, new_id
from roomtone.telephony.store import StoreError, StoreUnavailable, TelephonyStore

log = logging.getLogger(__name__)


class CallControl(Protocol):
    """What the SIP service needs from the telephony bridge to place and move calls."""

    store: TelephonyStore

    async def create_sip_participant(self, req: sip_pb.CreateSIPParticipantRequest) -> sip_pb.SIPParticipantInfo: ...

    async def transfer_sip_participant(self, req: sip_pb.TransferSIPParticipantRequest) -> None: ...


def _now(ts: Any) -> None:
    ts.FromNanoseconds(time.time_ns())


def apply_list_update(current: list[str], update: models.ListUpdate) -> list[str]:
    """LiveKit ListUpdate: ``clear`` or ``set`` replace, then ``remove``, then ``add`` (no duplicates)."""
    result = list(current)
    if update.clear:
        result = []
    if update.set:
        result = list(update.set)
    result = [v for v in result if v not in set(update.remove)]
    for value in update.add:
        if value not in result:
            result.append(value)
    return result


def apply_update(target: Message, update: Message) -> None:
    """Copy each field present in a ``*Update`` message onto the record of the same field name."""
    for fd, value in update.ListFields():
        dest = target.DESCRIPTOR.fields_by_name.get(fd.name)
        if dest is None:
            continue
        if fd.message_type is not None and fd.message_type.full_name == "livekit.ListUpdate":
            container = getattr(target, fd.name)
            new_values = apply_list_update(list(container), value)
            del container[:]
            container.extend(new_values)
        elif fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            container = getattr(target, fd.name)
            for k, v in value.items():
                if v:
                    container[k] = v
                else:
                    container.pop(k, None)
        elif fd.message_type is not None:
            getattr(target, fd.name).CopyFrom(value)
        else:
            setattr(target, fd.name, value)

def _updated(current: Any, req: Any, id_field: str) -> Any:
    """The record an Update*Request asks for: ``replace`` (keeping id and creation time) or a
    field ``update`` of ``current``; shared by trunks and dispatch rules."""
    action = req.WhichOneof("action")
    if action is None:
        raise invalid_argument("one of replace or update is required")
    record = type(current)()
    wanted = getattr(req, id_field)
    if action == "replace":
        record.CopyFrom(req.replace)
        given = getattr(record, id_field)
        if given and given != wanted:
            raise invalid_argument(f"replace.{id_field} does not match {id_field}")
        setattr(record, id_field, wanted)
        record.created_at.CopyFrom(current.created_at)
    else:
        record.CopyFrom(current)
        apply_update(record, req.update)
    return record



def _paginate(items: list[Any], page: models.Pagination, key: str) -> list[Any]:
    items = sorted(items, key=lambda i: getattr(i, key))
    if page.after_id:
        items = [i for i in items if getattr(i, key) > page.after_id]
    if page.limit > 0:
        items = items[: page.limit]
    return items


def _config_error(exc: matching.ConfigError) -> TwirpError:
    return invalid_argument(str(exc))


def build_service(telephony: Any) -> Service:
    store: TelephonyStore = telephony.store
    svc = Service("livekit.SIP")

    async def guarded(coro: Any) -> Any:
        try:
            return await coro
        except StoreUnavailable as exc:
            log.error("telephony store unavailable: %s", exc)
            raise TwirpError("unavailable", f"storage unavailable: {exc}") from None
        except StoreError as exc:
            log.error("telephony store failure: %s", exc)
            raise TwirpError("internal", f"storage error: {exc}") from None

    # ---- inbound trunks

    async def updated_record(req: Any, id_field: str, load: Any, what: str) -> Any:
        if not getattr(req, id_field):
            raise invalid_argument(f"{id_field} is required")
        current = await guarded(load(getattr(req, id_field)))
        if current is None:
            raise not_found(f"{what} {getattr(req, id_field)!r} not found")
        return _updated(current, req, id_field)

    async def save_inbound(trunk: sip_pb.SIPInboundTrunkInfo, creating: bool) -> None:
        try:
            matching.validate_inbound_trunk(trunk)
            others = [t for t in await store.list_inbound_trunks() if t.sip_trunk_id != trunk.sip_trunk_id]
            check = sip_pb.SIPInboundTrunkInfo()
            check.CopyFrom(trunk)
            if creating:
                check.sip_trunk_id = ""  # so the error names it "<new>"
            matching.check_trunk_conflicts([*others, check])
        except matching.ConfigError as exc:
            raise _config_error(exc) from None
        await store.put_inbound_trunk(trunk)

    async def create_inbound(claims: Claims, req: sip_pb.CreateSIPInboundTrunkRequest) -> Message:
        ensure_sip_admin(claims)
        if not req.HasField("trunk"):
            raise invalid_argument("trunk is required")
        trunk = sip_pb.SIPInboundTrunkInfo()
        trunk.CopyFrom(req.trunk)
        if trunk.sip_trunk_id:
            raise invalid_argument("trunk.sip_trunk_id must be empty: the server assigns it")
        trunk.sip_trunk_id = new_id(TRUNK_PREFIX)
        _now(trunk.created_at)
        _now(trunk.updated_at)
        await guarded(save_inbound(trunk, creating=True))
        log.info("created inbound SIP trunk %s (%s) numbers=%s", trunk.sip_trunk_id, trunk.name, list(trunk.numbers))
        return trunk

    async def update_inbound(claims: Claims, req: sip_pb.UpdateSIPInboundTrunkRequest) -> Message:
        ensure_sip_admin(claims)
        trunk = await updated_record(req, "sip_trunk_id", store.get_inbound_trunk, "inbound SIP trunk")
        _now(trunk.updated_at)
        await guarded(save_inbound(trunk, creating=False))
        log.info("updated inbound SIP trunk %s", trunk.sip_trunk_id)
        return trunk

    async def get_inbound(claims: Claims, req: sip_pb.GetSIPInboundTrunkRequest) -> Message:
        ensure_sip_admin(claims)
        trunk = await guarded(store.get_inbound_trunk(req.sip_trunk_id))
        if trunk is None:
            raise not_found(f"inbound SIP trunk {req.sip_trunk_id!r} not found")
        return sip_pb.GetSIPInboundTrunkResponse(trunk=trunk)

    async def list_inbound(claims: Claims, req: sip_pb.ListSIPInboundTrunkRequest) -> Message:
        ensure_sip_admin(claims)
        items = await guarded(store.list_inbound_trunks())
        if req.trunk_ids:
            items = [t for t in items if t.sip_trunk_id in req.trunk_ids]
        if req.numbers:
            wanted = {matching.normalize_number(n) for n in req.numbers}
            items = [t for t in items if not t.numbers or wanted & {matching.normalize_number(n) for n in t.numbers}]
        return sip_pb.ListSIPInboundTrunkResponse(items=_paginate(items, req.page, "sip_trunk_id"))

    # ---- outbound trunks

    async def create_outbound(claims: Claims, req: sip_pb.CreateSIPOutboundTrunkRequest) -> Message:
        ensure_sip_admin(claims)
        if not req.HasField("trunk"):
            raise invalid_argument("trunk is required")
        trunk = sip_pb.SIPOutboundTrunkInfo()
        trunk.CopyFrom(req.trunk)
        if trunk.sip_trunk_id:
            raise invalid_argument("trunk.sip_trunk_id must be empty: the server assigns it")
        try:
            matching.validate_outbound_trunk(trunk)
        except matching.ConfigError as exc:
            raise _config_error(exc) from None
        trunk.sip_trunk_id = new_id(TRUNK_PREFIX)
        _now(trunk.created_at)
        _now(trunk.updated_at)
        await guarded(store.put_outbound_trunk(trunk))
        log.info("created outbound SIP trunk %s (%s) to %s", trunk.sip_trunk_id, trunk.name, trunk.address)
        return trunk

    async def update_outbound(claims: Claims, req: sip_pb.UpdateSIPOutboundTrunkRequest) -> Message:
        ensure_sip_admin(claims)
        trunk = await updated_record(req, "sip_trunk_id", store.get_outbound_trunk, "outbound SIP trunk")
        try:
            matching.validate_outbound_trunk(trunk)
        except matching.ConfigError as exc:
            raise _config_error(exc) from None
        _now(trunk.updated_at)
        await guarded(store.put_outbound_trunk(trunk))
        log.info("updated outbound SIP trunk %s", trunk.sip_trunk_id)
        return trunk

    async def get_outbound(claims: Claims, req: sip_pb.GetSIPOutboundTrunkRequest) -> Message:
        ensure_sip_admin(claims)
        trunk = await guarded(store.get_outbound_trunk(req.sip_trunk_id))
        if trunk is None:
            raise not_found(f"outbound SIP trunk {req.sip_trunk_id!r} not found")
        return sip_pb.GetSIPOutboundTrunkResponse(trunk=trunk)

    async def list_outbound(claims: Claims, req: sip_pb.ListSIPOutboundTrunkRequest) -> Message:
        ensure_sip_admin(claims)
        items = await guarded(store.list_outbound_trunks())
        if req.trunk_ids:
            items = [t for t in items if t.sip_trunk_id in req.trunk_ids]
        if req.numbers:
            wanted = {matching.normalize_number(n) for n in req.numbers}
            items = [t for t in items if wanted & {matching.normalize_number(n) for n in t.numbers}]
        return sip_pb.ListSIPOutboundTrunkResponse(items=_paginate(items, req.page, "sip_trunk_id"))

    async def delete_trunk(claims: Claims, req: sip_pb.DeleteSIPTrunkRequest) -> Message:
        ensure_sip_admin(claims)
        if not req.sip_trunk_id:
            raise invalid_argument("sip_trunk_id is required")
        inbound = await guarded(store.get_inbound_trunk(req.sip_trunk_id))
        outbound = None if inbound is not None else await guarded(store.get_outbound_trunk(req.sip_trunk_id))
        direction = await guarded(store.delete_trunk(req.sip_trunk_id))
        if direction is None:
            raise not_found(f"SIP trunk {req.sip_trunk_id!r} not found")
        info = sip_pb.SIPTrunkInfo(sip_trunk_id=req.sip_trunk_id)
        if inbound is not None:
            info.kind = sip_pb.SIPTrunkInfo.TRUNK_INBOUND
            info.name, info.metadata = inbound.name, inbound.metadata
            info.inbound_numbers.extend(inbound.allowed_numbers)
            info.inbound_addresses.extend(inbound.allowed_addresses)
        elif outbound is not None:
            info.kind = sip_pb.SIPTrunkInfo.TRUNK_OUTBOUND
            info.name, info.metadata = outbound.name, outbound.metadata
            info.outbound_address = outbound.address
        log.info("deleted %s SIP trunk %s", direction, req.sip_trunk_id)
        return info

    # ---- dispatch rules

    async def save_rule(rule: sip_pb.SIPDispatchRuleInfo, creating: bool) -> None:
        try:
            matching.validate_dispatch_rule(rule)
            others = [r for r in await store.list_dispatch_rules() if r.sip_dispatch_rule_id != rule.sip_dispatch_rule_id]
            check = sip_pb.SIPDispatchRuleInfo()
            check.CopyFrom(rule)
            if creating:
                check.sip_dispatch_rule_id = ""
            matching.check_rule_conflicts([*others, check])
        except matching.ConfigError as exc:
            raise _config_error(exc) from None
        await store.put_dispatch_rule(rule)

    async def create_rule(claims: Claims, req: sip_pb.CreateSIPDispatchRuleRequest) -> Message:
        ensure_sip_admin(claims)
        rule = sip_pb.SIPDispatchRuleInfo()
        if req.HasField("dispatch_rule"):
            rule.CopyFrom(req.dispatch_rule)
            if rule.sip_dispatch_rule_id:
                raise invalid_argument("dispatch_rule.sip_dispatch_rule_id must be empty: the server assigns it")
        else:  # the deprecated flat fields
            rule.rule.CopyFrom(req.rule)
            rule.trunk_ids.extend(req.trunk_ids)
            rule.hide_phone_number = req.hide_phone_number
            rule.inbound_numbers.extend(req.inbound_numbers)
            rule.name, rule.metadata = req.name, req.metadata
            rule.attributes.update(req.attributes)
            rule.room_preset = req.room_preset
            if req.HasField("room_config"):
                rule.room_config.CopyFrom(req.room_config)
        rule.sip_dispatch_rule_id = new_id(RULE_PREFIX)
        _now(rule.created_at)
        _now(rule.updated_at)
        await guarded(save_rule(rule, creating=True))
        log.info("created SIP dispatch rule %s (%s)", rule.sip_dispatch_rule_id, rule.name)
        return rule

    async def update_rule(claims: Claims, req: sip_pb.UpdateSIPDispatchRuleRequest) -> Message:
        ensure_sip_admin(claims)
        rule = await updated_record(req, "sip_dispatch_rule_id", store.get_dispatch_rule, "SIP dispatch rule")
        _now(rule.updated_at)
        await guarded(save_rule(rule, creating=False))
        log.info("updated SIP dispatch rule %s", rule.sip_dispatch_rule_id)
        return rule

    async def list_rules(claims: Claims, req: sip_pb.ListSIPDispatchRuleRequest) -> Message:
        ensure_sip_admin(claims)
        items = await guarded(store.list_dispatch_rules())
        if req.dispatch_rule_ids:
            items = [r for r in items if r.sip_dispatch_rule_id in req.dispatch_rule_ids]
        if req.trunk_ids:
            items = [r for r in items if not r.trunk_ids or set(r.trunk_ids) & set(req.trunk_ids)]
        return sip_pb.ListSIPDispatchRuleResponse(items=_paginate(items, req.page, "sip_dispatch_rule_id"))

    async def delete_rule(claims: Claims, req: sip_pb.DeleteSIPDispatchRuleRequest) -> Message:
        ensure_sip_admin(claims)
        if not req.sip_dispatch_rule_id:
            raise invalid_argument("sip_dispatch_rule_id is required")
        rule = await guarded(store.get_dispatch_rule(req.sip_dispatch_rule_id))
        if rule is None or not await guarded(store.delete_dispatch_rule(req.sip_dispatch_rule_id)):
            raise not_found(f"SIP dispatch rule {req.sip_dispatch_rule_id!r} not found")
        log.info("deleted SIP dispatch rule %s", req.sip_dispatch_rule_id)
        return rule

    # ---- calls

    async def create_participant(claims: Claims, req: sip_pb.CreateSIPParticipantRequest) -> Message:
        ensure_sip_call(claims)
        create = getattr(telephony, "create_sip_participant", None)
        if create is None:
            raise TwirpError("unavailable", "outbound calls are not available: no SIP gateway is running")
        try:
            result: Message = await create(req)
        except TelephonyError as exc:
            raise TwirpError(exc.code, exc.message, exc.meta) from None
        return result

    async def transfer_participant(claims: Claims, req: sip_pb.TransferSIPParticipantRequest) -> Message:
        ensure_admin(claims, req.room_name)
        ensure_sip_call(claims)
        transfer = getattr(telephony, "transfer_sip_participant", None)
        if transfer is None:
            raise TwirpError("unavailable", "call transfer is not available: no SIP gateway is running")
        try:
            await transfer(req)
        except TelephonyError as exc:
            raise TwirpError(exc.code, exc.message, exc.meta) from None
        return sip_pb.TransferSIPParticipantResponse()

    async def list_legacy(claims: Claims, req: sip_pb.ListSIPTrunkRequest) -> Message:
        ensure_sip_admin(claims)
        raise TwirpError(
            "unimplemented", "ListSIPTrunk is deprecated: use ListSIPInboundTrunk and ListSIPOutboundTrunk"
        )

    svc.method("CreateSIPInboundTrunk", sip_pb.CreateSIPInboundTrunkRequest, create_inbound)
    svc.method("UpdateSIPInboundTrunk", sip_pb.UpdateSIPInboundTrunkRequest, update_inbound)
    svc.method("GetSIPInboundTrunk", sip_pb.GetSIPInboundTrunkRequest, get_inbound)
    svc.method("ListSIPInboundTrunk", sip_pb.ListSIPInboundTrunkRequest, list_inbound)
    svc.method("CreateSIPOutboundTrunk", sip_pb.CreateSIPOutboundTrunkRequest, create_outbound)
    svc.method("UpdateSIPOutboundTrunk", sip_pb.UpdateSIPOutboundTrunkRequest, update_outbound)
    svc.method("GetSIPOutboundTrunk", sip_pb.GetSIPOutboundTrunkRequest, get_outbound)
    svc.method("ListSIPOutboundTrunk", sip_pb.ListSIPOutboundTrunkRequest, list_outbound)
    svc.method("DeleteSIPTrunk", sip_pb.DeleteSIPTrunkRequest, delete_trunk)
    svc.method("CreateSIPDispatchRule", sip_pb.CreateSIPDispatchRuleRequest, create_rule)
    svc.method("UpdateSIPDispatchRule", sip_pb.UpdateSIPDispatchRuleRequest, update_rule)
    svc.method("ListSIPDispatchRule", sip_pb.ListSIPDispatchRuleRequest, list_rules)
    svc.method("DeleteSIPDispatchRule", sip_pb.DeleteSIPDispatchRuleRequest, delete_rule)
    svc.method("CreateSIPParticipant", sip_pb.CreateSIPParticipantRequest, create_participant)
    svc.method("TransferSIPParticipant", sip_pb.TransferSIPParticipantRequest, transfer_participant)
    svc.method("ListSIPTrunk", sip_pb.ListSIPTrunkRequest, list_legacy)
    return svc
