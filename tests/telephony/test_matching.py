"""Trunk matching and dispatch-rule evaluation (pure functions)."""

from __future__ import annotations

import pytest
from livekit.protocol.sip import (
    SIPDispatchRule,
    SIPDispatchRuleCallee,
    SIPDispatchRuleDirect,
    SIPDispatchRuleIndividual,
    SIPDispatchRuleInfo,
    SIPInboundTrunkInfo,
)

from roomtone.telephony import matching as m


def trunk(tid: str, **kw) -> SIPInboundTrunkInfo:  # type: ignore[no-untyped-def]
    return SIPInboundTrunkInfo(sip_trunk_id=tid, **kw)


def direct(rid: str, room: str, pin: str = "", **kw) -> SIPDispatchRuleInfo:  # type: ignore[no-untyped-def]
    return SIPDispatchRuleInfo(
        sip_dispatch_rule_id=rid,
        rule=SIPDispatchRule(dispatch_rule_direct=SIPDispatchRuleDirect(room_name=room, pin=pin)),
        **kw,
    )


def test_number_normalisation() -> None:
    assert m.normalize_number("15550100") == "+15550100"
    assert m.normalize_number("+15550100") == "+15550100"
    assert m.normalize_number("") == ""


@pytest.mark.parametrize(
    ("source", "masks", "ok"),
    [
        ("10.1.2.3", [], True),
        ("10.1.2.3", ["10.1.2.3"], True),
        ("10.1.2.3", ["10.1.2.4"], False),
        ("10.1.2.3", ["10.0.0.0/8"], True),
        ("11.1.2.3", ["10.0.0.0/8", "192.0.2.0/24"], False),
        ("192.0.2.77", ["10.0.0.0/8", "192.0.2.0/24"], True),
        ("::ffff:10.1.2.3", ["10.0.0.0/8"], True),
        ("2001:db8::5", ["2001:db8::/32"], True),
        ("[2001:db8::5]", ["2001:db9::/32"], False),
        ("not-an-ip", ["10.0.0.0/8"], False),
        (None, ["10.0.0.0/8"], False),
    ],
)
def test_address_allowed(source: str | None, masks: list[str], ok: bool) -> None:
    assert m.address_allowed(source, masks) is ok


def test_match_trunk_specific_beats_default_and_filters() -> None:
    default = trunk("ST_def", allowed_addresses=["127.0.0.0/8"])
    specific = trunk("ST_num", numbers=["+15550100"])
    picky = trunk("ST_picky", numbers=["+15550200"], allowed_numbers=["+1999"], allowed_addresses=["10.0.0.0/8"])
    trunks = [default, specific, picky]
    assert m.match_trunk(trunks, "127.0.0.1", "+1234", "15550100") is specific
    assert m.match_trunk(trunks, "127.0.0.1", "+1234", "+15550999") is default
    assert m.match_trunk(trunks, "192.0.2.1", "+1234", "+15550999") is None
    # picky: right caller + right address only
    assert m.match_trunk(trunks, "10.0.0.9", "1999", "+15550200") is picky
    assert m.match_trunk(trunks, "10.0.0.9", "+1998", "+15550200") is None
    assert m.match_trunk(trunks, "127.0.0.1", "+1999", "+15550200") is default


def test_match_trunk_conflicts() -> None:
    with pytest.raises(m.MatchConflict):
        m.match_trunk([trunk("ST_a", numbers=["+1"]), trunk("ST_b", numbers=["1"])], "127.0.0.1", "+2", "+1")
    with pytest.raises(m.MatchConflict):
        m.match_trunk([trunk("ST_a", auth_username="u"), trunk("ST_b", auth_username="v")], "127.0.0.1", "+2", "+1")


def test_trunk_validation() -> None:
    with pytest.raises(m.ConfigError, match="for security"):
        m.validate_inbound_trunk(trunk(""))
    with pytest.raises(m.ConfigError, match="together"):
        m.validate_inbound_trunk(trunk("", auth_username="u"))
    with pytest.raises(m.ConfigError, match="999.1.1.1"):
        m.validate_inbound_trunk(trunk("", allowed_addresses=["999.1.1.1"]))
    m.validate_inbound_trunk(trunk("", allowed_addresses=["10.0.0.0/8"]))
    with pytest.raises(m.ConfigError, match="conflicting"):
        m.check_trunk_conflicts([trunk("ST_a", numbers=["+1"]), trunk("", numbers=["1"])])
    # different caller filters do not conflict
    m.check_trunk_conflicts([trunk("ST_a", numbers=["+1"], allowed_numbers=["+7"]), trunk("", numbers=["1"])])


def test_dispatch_priority_and_trunk_specific_rules() -> None:
    t = trunk("ST_t", numbers=["+1"])
    wildcard = direct("SDR_w", "wild")
    specific = direct("SDR_s", "spec", trunk_ids=["ST_t"])
    other_trunk = direct("SDR_o", "other", trunk_ids=["ST_other"])
    rules = [wildcard, specific, other_trunk]
    assert m.match_dispatch_rule(t, rules, "+2", "+1") is specific
    assert m.match_dispatch_rule(trunk("ST_x", numbers=["+1"]), rules, "+2", "+1") is wildcard
    assert m.match_dispatch_rule(None, rules, "+2", "+1") is wildcard
    with pytest.raises(m.NoDispatchMatch):
        m.match_dispatch_rule(t, [], "+2", "+1")
    with pytest.raises(m.NoDispatchMatch):
        m.match_dispatch_rule(t, [other_trunk], "+2", "+1")


def test_dispatch_inbound_numbers_and_called_numbers() -> None:
    vip = direct("SDR_vip", "vip", inbound_numbers=["+1777"])
    everyone = direct("SDR_all", "all", numbers=["+1000"])
    assert m.match_dispatch_rule(None, [vip, everyone], "1777", "+1000") is vip
    assert m.match_dispatch_rule(None, [vip, everyone], "+1778", "+1000") is everyone
    with pytest.raises(m.NoDispatchMatch):
        m.match_dispatch_rule(None, [vip, everyone], "+1778", "+1001")


def test_pin_rules() -> None:
    open_rule = direct("SDR_open", "open")
    pin_rule = direct("SDR_pin", "secret", pin="4321")
    rules = [open_rule, pin_rule]
    chosen = m.match_dispatch_rule(None, rules, "+2", "+1")
    assert chosen is pin_rule  # PIN rules are preferred ...
    decision = m.evaluate_dispatch_rule(None, chosen, call_id="SCL_x", calling="+2", called="+1")
    assert decision.request_pin and not decision.room  # ... and ask for the PIN
    assert m.match_dispatch_rule(None, rules, "+2", "+1", pin="4321") is pin_rule
    with pytest.raises(m.NoDispatchMatch):  # a wrong PIN never falls back to the open rule
        m.match_dispatch_rule(None, rules, "+2", "+1", pin="1111")
    assert m.match_dispatch_rule(None, rules, "+2", "+1", no_pin=True) is open_rule
    ok = m.evaluate_dispatch_rule(None, pin_rule, call_id="SCL_x", calling="+2", called="+1", pin="4321")
    assert ok.room == "secret" and not ok.request_pin
    with pytest.raises(m.NoDispatchMatch):
        m.evaluate_dispatch_rule(None, pin_rule, call_id="SCL_x", calling="+2", called="+1", pin="0000")


def test_evaluate_rooms_identity_and_attributes() -> None:
    t = trunk("ST_t", numbers=["+15550100"])
    ind = SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_i",
        rule=SIPDispatchRule(dispatch_rule_individual=SIPDispatchRuleIndividual(room_prefix="call")),
        attributes={"team": "a"},
        metadata="meta",
    )
    d = m.evaluate_dispatch_rule(t, ind, call_id="SCL_1", calling="+15557777", called="+15550100")
    assert d.room.startswith("call_+15557777_") and len(d.room) == len("call_+15557777_") + 12
    assert d.identity == "sip_+15557777" and d.name == "Phone +15557777" and d.metadata == "meta"
    assert d.attributes == {
        "team": "a",
        "sip.callID": "SCL_1",
        "sip.trunkID": "ST_t",
        "sip.ruleID": "SDR_i",
        "sip.phoneNumber": "+15557777",
        "sip.trunkPhoneNumber": "+15550100",
    }
    ind.rule.dispatch_rule_individual.no_randomness = True
    assert m.evaluate_dispatch_rule(t, ind, call_id="c", calling="+15557777", called="+1").room == "call_+15557777"

    callee = SIPDispatchRuleInfo(
        sip_dispatch_rule_id="SDR_c", rule=SIPDispatchRule(dispatch_rule_callee=SIPDispatchRuleCallee(room_prefix="n"))
    )
    assert m.evaluate_dispatch_rule(t, callee, call_id="c", calling="+2", called="+15550100").room == "n_+15550100"
    callee.rule.dispatch_rule_callee.room_prefix = ""
    callee.rule.dispatch_rule_callee.randomize = True
    room = m.evaluate_dispatch_rule(t, callee, call_id="c", calling="+2", called="+15550100").room
    assert room.startswith("+15550100_") and len(room) == len("+15550100_") + 12

    hidden = direct("SDR_h", "r", hide_phone_number=True)
    h = m.evaluate_dispatch_rule(t, hidden, call_id="c", calling="+15557777", called="+15550100")
    assert h.name == "Phone 7777" and "7777" not in h.identity and h.identity.startswith("sip_")
    assert "sip.phoneNumber" not in h.attributes and "sip.trunkPhoneNumber" not in h.attributes


def test_rule_validation_and_conflicts() -> None:
    with pytest.raises(m.ConfigError):
        m.validate_dispatch_rule(SIPDispatchRuleInfo())
    with pytest.raises(m.ConfigError, match="room name"):
        m.validate_dispatch_rule(direct("", ""))
    with pytest.raises(m.ConfigError, match="digits"):
        m.validate_dispatch_rule(direct("", "r", pin="12#"))
    with pytest.raises(m.ConfigError, match="conflicting"):
        m.check_rule_conflicts([direct("SDR_a", "a"), direct("", "b")])
    m.check_rule_conflicts([direct("SDR_a", "a"), direct("", "b", pin="1")])
    m.check_rule_conflicts([direct("SDR_a", "a"), direct("", "b", trunk_ids=["ST_1"])])


def test_roomtone_trunk_options_in_metadata() -> None:
    from roomtone.telephony.options import TrunkOptions, trunk_options

    assert trunk_options("plain text") == TrunkOptions()
    assert trunk_options('{"other": 1}') == TrunkOptions()
    opts = trunk_options('{"roomtone": {"dtmf_mode": "info", "allow_sip_to_sip": true}}')
    assert opts.dtmf_mode == "info" and opts.allow_sip_to_sip and opts.publish_pre_join
    assert trunk_options('{"roomtone": {"dtmf_mode": "smoke"}}').dtmf_mode == "auto"
    with pytest.raises(m.ConfigError, match="dtmf_mode"):
        m.validate_inbound_trunk(trunk("", numbers=["+1"], metadata='{"roomtone": {"dtmf_mode": "x"}}'))
    with pytest.raises(m.ConfigError, match="unknown option"):
        m.validate_inbound_trunk(trunk("", numbers=["+1"], metadata='{"roomtone": {"dtmf_mod": "info"}}'))
