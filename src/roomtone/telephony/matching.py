"""Trunk matching and dispatch-rule evaluation: pure functions over the stored protobuf records.

The rules follow livekit/protocol ``sip/sip.go`` (``MatchTrunk``, ``MatchDispatchRule``,
``EvaluateDispatchRule``) so that a LiveKit configuration behaves the same here:

* An inbound trunk matches a call when the calling number is in ``allowed_numbers`` (or that
  list is empty), the source address is in ``allowed_addresses`` (single addresses or CIDR
  prefixes; empty = any), and the called number is one of ``numbers``. A trunk with no
  ``numbers`` is a default trunk, used only when no specific trunk matched; two matching
  specific trunks, or two matching default trunks, are a configuration conflict.
* Numbers compare after normalisation to a leading ``+`` (``15550100`` == ``+15550100``).
* Dispatch rules: rules naming the matched trunk win over rules naming no trunk; within a
  set, PIN-protected rules win, then direct < individual < callee, then rules that name
  inbound numbers. Two rules with the same trunk+number+PIN are a conflict, refused at
  creation time.
* PIN: with no PIN entered, a PIN rule asks for one (``DispatchDecision.request_pin``); with a
  PIN entered only PIN rules with that PIN match; an empty PIN ended with ``#`` (``no_pin``)
  matches only open rules.
* Identity ``sip_<caller>``, name ``Phone <caller>``; ``hide_phone_number`` hashes the identity,
  keeps four digits in the name and leaves out ``sip.phoneNumber``/``sip.trunkPhoneNumber``/``sip.hostname``.
* The ``sip.*`` attribute names live here (``ATTR_*``), with :func:`call_attributes` for those
  naming the SIP dialog (``sip.callIDFull``, ``sip.callTag``, ``sip.hostname``).

Differences from LiveKit, on purpose: ``inbound_numbers`` and a rule's ``numbers`` are compared
after normalisation (LiveKit compares ``inbound_numbers`` verbatim), and malformed addresses in
``allowed_addresses`` are refused when the trunk is saved rather than silently never matching.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from livekit.protocol.sip import SIPDispatchRuleInfo, SIPInboundTrunkInfo, SIPOutboundTrunkInfo

from roomtone.telephony.ids import random_suffix
from roomtone.telephony.options import validate_trunk_metadata
from roomtone.telephony.sip_headers import HeaderError, check_header_names, check_headers, check_include

log = logging.getLogger(__name__)

ATTR_CALL_ID = "sip.callID"
ATTR_TRUNK_ID = "sip.trunkID"
ATTR_RULE_ID = "sip.ruleID"
ATTR_TRUNK_NUMBER = "sip.trunkPhoneNumber"
ATTR_PHONE_NUMBER = "sip.phoneNumber"
ATTR_CALL_STATUS = "sip.callStatus"
ATTR_HOSTNAME = "sip.hostname"
ATTR_CALL_ID_FULL = "sip.callIDFull"
ATTR_CALL_TAG = "sip.callTag"


def call_attributes(*, sip_call_id: str = "", remote_tag: str = "", hostname: str = "") -> dict[str, str]:
    """The attributes naming the SIP call itself, as LiveKit sets them, so a room application can
    find the call in a carrier's or PBX's logs: ``sip.callIDFull`` is the Call-ID header (our
    ``sip.callID`` is our own ``SCL_`` id); ``sip.callTag`` is the far end's dialog tag, the
    caller's From tag inbound and the callee's To tag outbound (livekit/sip ``pkg/sip`` ``Tag()``,
    ``HeadersToAttrs``); ``sip.hostname`` is the caller's From host inbound and the trunk address
    outbound (livekit/protocol ``rpc/sip.go``, left out with ``hide_phone_number`` by the callers
    of this function). Empty values are left out (an empty attribute value deletes the key)."""
    attrs = {ATTR_CALL_ID_FULL: sip_call_id, ATTR_CALL_TAG: remote_tag, ATTR_HOSTNAME: hostname}
    return {k: v for k, v in attrs.items() if v}


class ConfigError(ValueError):
    """A trunk or rule that cannot be saved; the message says which field and why."""


class MatchConflict(Exception):
    """Stored configuration is ambiguous for this call (two trunks or rules tie)."""


class NoDispatchMatch(Exception):
    """No dispatch rule accepts the call."""


def normalize_number(number: str) -> str:
    number = number.strip()
    if not number:
        return ""
    return number if number.startswith("+") else "+" + number


def _numbers_match(number: str, allowed: Iterable[str]) -> bool:
    allowed = list(allowed)
    if not allowed:
        return True
    norm = normalize_number(number)
    return any(norm == normalize_number(a) for a in allowed)


def parse_address_mask(mask: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``192.0.2.7`` or ``192.0.2.0/24`` (or IPv6); raises ConfigError naming the bad entry."""
    try:
        return ipaddress.ip_network(mask.strip(), strict=False)
    except ValueError:
        raise ConfigError(f"allowed_addresses: {mask!r} is not an IP address or CIDR prefix") from None


def address_allowed(source: str | None, masks: Sequence[str]) -> bool:
    """Whether ``source`` (an IP address string) is inside any of ``masks``; empty list = any."""
    if not masks:
        return True
    if not source:
        return False
    try:
        ip = ipaddress.ip_address(source.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for mask in masks:
        try:
            if ip in parse_address_mask(mask):
                return True
        except ConfigError:
            log.warning("ignoring malformed allowed address %r", mask)
    return False


# ---- validation (API create/update) ---------------------------------------------------------


def _check_trunk_headers(trunk: SIPInboundTrunkInfo | SIPOutboundTrunkInfo) -> None:
    """``headers`` are sent as given, ``headers_to_attributes`` read, ``attributes_to_headers``
    sent: names must be tokens, sent names not ones the UA writes, values free of CR/LF."""
    try:
        check_headers(trunk.headers, "headers")
        check_header_names(trunk.headers_to_attributes, "headers_to_attributes", settable=False)
        check_header_names(trunk.attributes_to_headers.values(), "attributes_to_headers", settable=True)
        check_include(trunk.include_headers)
    except HeaderError as exc:
        raise ConfigError(str(exc)) from None


def _check_options(metadata: str) -> None:
    try:
        validate_trunk_metadata(metadata)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def validate_inbound_trunk(trunk: SIPInboundTrunkInfo) -> None:
    _check_options(trunk.metadata)
    has_auth = bool(trunk.auth_username or trunk.auth_password)
    if has_auth and not (trunk.auth_username and trunk.auth_password):
        raise ConfigError("auth_username and auth_password must be set together")
    if not has_auth and not trunk.allowed_addresses and not trunk.numbers:
        raise ConfigError(
            "for security, one of the fields must be set: auth_username+auth_password, allowed_addresses or numbers"
        )
    for mask in trunk.allowed_addresses:
        parse_address_mask(mask)
    for number in list(trunk.numbers) + list(trunk.allowed_numbers):
        if not number.strip():
            raise ConfigError("numbers and allowed_numbers must not contain empty entries")
    _check_trunk_headers(trunk)


def validate_outbound_trunk(trunk: SIPOutboundTrunkInfo) -> None:
    _check_options(trunk.metadata)
    address = trunk.address.strip()
    if not address:
        raise ConfigError("address: no outbound address specified")
    if address.lower().startswith(("sip:", "sips:")) or ";" in address or "@" in address:
        raise ConfigError(f"address: {address!r} must be a host or host:port, without sip:, user or parameters")
    if not trunk.numbers:
        raise ConfigError("numbers: no trunk numbers specified")
    for number in trunk.numbers:
        if not number.strip():
            raise ConfigError("numbers must not contain empty entries")
    if bool(trunk.auth_username) != bool(trunk.auth_password):
        raise ConfigError("auth_username and auth_password must be set together")
    _check_trunk_headers(trunk)


def _print_id(value: str) -> str:
    return value or "<new>"


def check_trunk_conflicts(trunks: Sequence[SIPInboundTrunkInfo]) -> None:
    """Refuse two inbound trunks that would match the same call (same number and caller filter)."""
    seen: dict[tuple[str, str], SIPInboundTrunkInfo] = {}
    for trunk in trunks:
        numbers = [normalize_number(n) for n in trunk.numbers] or [""]
        callers = [normalize_number(n) for n in trunk.allowed_numbers] or [""]
        addresses = sorted(trunk.allowed_addresses)
        for number in numbers:
            for caller in callers:
                key = (number, caller)
                other = seen.get(key)
                if other is not None and sorted(other.allowed_addresses) == addresses:
                    raise ConfigError(
                        f"conflicting inbound SIP trunks {_print_id(trunk.sip_trunk_id)!r} and "
                        f"{_print_id(other.sip_trunk_id)!r}: same number {number or '<any>'!r} "
                        f"for caller {caller or '<any>'!r}"
                    )
                seen[key] = trunk


def rule_room_and_pin(rule: SIPDispatchRuleInfo) -> tuple[str, str, str]:
    """(kind, room name or prefix, pin) of a rule; raises ConfigError when no rule is set."""
    which = rule.rule.WhichOneof("rule")
    if which == "dispatch_rule_direct":
        return "direct", rule.rule.dispatch_rule_direct.room_name, rule.rule.dispatch_rule_direct.pin
    if which == "dispatch_rule_individual":
        r = rule.rule.dispatch_rule_individual
        return "individual", r.room_prefix, r.pin
    if which == "dispatch_rule_callee":
        c = rule.rule.dispatch_rule_callee
        return "callee", c.room_prefix, c.pin
    raise ConfigError("rule: no dispatch rule set (one of dispatch_rule_direct, _individual, _callee)")


def validate_dispatch_rule(rule: SIPDispatchRuleInfo) -> None:
    kind, room, pin = rule_room_and_pin(rule)
    if kind == "direct" and not room.strip():
        raise ConfigError("rule.dispatch_rule_direct.room_name: a direct rule needs a room name")
    if pin and not all(c in "0123456789" for c in pin):
        raise ConfigError(f"pin: {pin!r} must contain only the digits 0-9")
    if len(pin) > 16:
        raise ConfigError("pin: at most 16 digits")


def check_rule_conflicts(rules: Sequence[SIPDispatchRuleInfo]) -> None:
    """Refuse two rules with the same trunk + inbound number + PIN (LiveKit ValidateDispatchRules)."""
    seen: dict[tuple[str, str, str], SIPDispatchRuleInfo] = {}
    for rule in rules:
        _, _, pin = rule_room_and_pin(rule)
        for trunk in list(rule.trunk_ids) or [""]:
            for number in list(rule.inbound_numbers) or [""]:
                for called in list(rule.numbers) or [""]:
                    key = (pin, trunk, normalize_number(number) + "|" + normalize_number(called))
                    other = seen.get(key)
                    if other is not None:
                        raise ConfigError(
                            "conflicting SIP dispatch rules: same trunk+number+PIN combination for "
                            f"{_print_id(rule.sip_dispatch_rule_id)!r} and {_print_id(other.sip_dispatch_rule_id)!r}"
                        )
                    seen[key] = rule


# ---- inbound call matching ------------------------------------------------------------------


def match_trunk(
    trunks: Iterable[SIPInboundTrunkInfo], source: str | None, calling: str, called: str
) -> SIPInboundTrunkInfo | None:
    """The inbound trunk for a call, or None. Raises MatchConflict when two tie."""
    selected: SIPInboundTrunkInfo | None = None
    defaults: list[SIPInboundTrunkInfo] = []
    called_norm = normalize_number(called)
    for trunk in trunks:
        if not _numbers_match(calling, trunk.allowed_numbers):
            continue
        if not address_allowed(source, trunk.allowed_addresses):
            continue
        if not trunk.numbers:
            defaults.append(trunk)
            continue
        if any(normalize_number(n) == called_norm for n in trunk.numbers):
            if selected is not None:
                raise MatchConflict(
                    f"multiple SIP trunks matched {called!r}: {selected.sip_trunk_id}, {trunk.sip_trunk_id}"
                )
            selected = trunk
    if selected is not None:
        return selected
    if len(defaults) > 1:
        raise MatchConflict(
            f"multiple default SIP trunks matched {called!r}: {', '.join(t.sip_trunk_id for t in defaults)}"
        )
    return defaults[0] if defaults else None


_KIND_ORDER = {"direct": 0, "individual": 1, "callee": 2}


def rule_priority(rule: SIPDispatchRuleInfo) -> int:
    """Lower wins: PIN rules first, then direct < individual < callee, then rules naming numbers."""
    try:
        kind, _, pin = rule_room_and_pin(rule)
    except ConfigError:
        return 1 << 30
    priority = _KIND_ORDER[kind] + (0 if pin else 100)
    if not rule.inbound_numbers:
        priority += 1000
    return priority


def _select(rules: list[SIPDispatchRuleInfo]) -> SIPDispatchRuleInfo | None:
    if not rules:
        return None
    try:
        check_rule_conflicts(rules)
    except ConfigError as exc:
        raise MatchConflict(str(exc)) from None
    return sorted(rules, key=lambda r: (rule_priority(r), rule_room_and_pin(r)[1], r.sip_dispatch_rule_id))[0]


def match_dispatch_rule(
    trunk: SIPInboundTrunkInfo | None,
    rules: Iterable[SIPDispatchRuleInfo],
    calling: str,
    called: str,
    *,
    pin: str = "",
    no_pin: bool = False,
) -> SIPDispatchRuleInfo:
    """The dispatch rule for a call. Raises NoDispatchMatch or MatchConflict."""
    rules = list(rules)
    if not rules:
        raise NoDispatchMatch("no SIP dispatch rules defined")
    specific: list[SIPDispatchRuleInfo] = []
    default: list[SIPDispatchRuleInfo] = []
    for rule in rules:
        if rule.inbound_numbers and not _numbers_match(calling, rule.inbound_numbers):
            continue
        if rule.numbers and not _numbers_match(called, rule.numbers):
            continue
        try:
            _, _, rule_pin = rule_room_and_pin(rule)
        except ConfigError:
            log.error("skipping invalid SIP dispatch rule %s", rule.sip_dispatch_rule_id)
            continue
        if no_pin:
            if rule_pin:
                continue
        elif pin:
            if not rule_pin or rule_pin != pin:
                continue
        if not rule.trunk_ids:
            default.append(rule)
        elif trunk is not None and trunk.sip_trunk_id in rule.trunk_ids:
            specific.append(rule)
    best = _select(specific) or _select(default)
    if best is None:
        if trunk is None:
            raise NoDispatchMatch(f"no SIP trunk or dispatch rule matched for {called!r}")
        raise NoDispatchMatch(f"no SIP dispatch rule matched for {called!r}")
    return best


@dataclass
class DispatchDecision:
    """Where an inbound call goes, or that it must ask for a PIN first."""

    rule_id: str
    trunk_id: str
    request_pin: bool = False
    room: str = ""
    identity: str = ""
    name: str = ""
    metadata: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


def evaluate_dispatch_rule(
    trunk: SIPInboundTrunkInfo | None,
    rule: SIPDispatchRuleInfo,
    *,
    call_id: str,
    calling: str,
    called: str,
    pin: str = "",
    extra_attributes: Mapping[str, str] | None = None,
    room_suffix: Callable[[], str] = random_suffix,
    calling_host: str = "",
) -> DispatchDecision:
    """Turn a matched rule into a room and participant identity (LiveKit EvaluateDispatchRule).

    ``room_suffix`` makes the random part of individual/callee room names (injectable so tests
    and deployments that want predictable names can choose it). ``calling_host`` (the host of the
    caller's From URI) becomes ``sip.hostname`` unless the rule hides the phone number."""
    trunk_id = trunk.sip_trunk_id if trunk is not None else ""
    kind, room, rule_pin = rule_room_and_pin(rule)
    if rule_pin and not pin:
        return DispatchDecision(rule_id=rule.sip_dispatch_rule_id, trunk_id=trunk_id, request_pin=True)
    if rule_pin and rule_pin != pin:
        raise NoDispatchMatch("incorrect PIN for SIP room")
    attrs = dict(rule.attributes)
    attrs.update(extra_attributes or {})
    attrs[ATTR_CALL_ID] = call_id
    attrs[ATTR_TRUNK_ID] = trunk_id
    attrs[ATTR_RULE_ID] = rule.sip_dispatch_rule_id
    shown = calling
    identity = "sip_" + calling
    if rule.hide_phone_number:
        identity = "sip_" + hashlib.sha256(calling.encode()).hexdigest()[:16]
        keep = 4 if len(calling) > 4 else 1
        shown = calling[-keep:]
    else:
        attrs[ATTR_PHONE_NUMBER] = calling
        attrs[ATTR_TRUNK_NUMBER] = called
        attrs.update(call_attributes(hostname=calling_host))
    if kind == "individual":
        if rule.rule.dispatch_rule_individual.no_randomness:
            room = f"{room}_{shown}"
        else:
            room = f"{room}_{shown}_{room_suffix()}"
    elif kind == "callee":
        room = f"{room}_{called}" if room else called
        if rule.rule.dispatch_rule_callee.randomize:
            room += "_" + room_suffix()
    return DispatchDecision(
        rule_id=rule.sip_dispatch_rule_id,
        trunk_id=trunk_id,
        room=room,
        identity=identity,
        name="Phone " + shown,
        metadata=rule.metadata,
        attributes=attrs,
    )
