"""Dialogs (RFC 3261 §12): creation on both sides, routes, CSeq, target refresh, glare."""

from __future__ import annotations

from roomtone.sip.dialog import Dialog, DialogTable, is_in_dialog
from roomtone.sip.message import Request, Response, parse


def invite():
    r = Request("INVITE", "sip:bob@biloxi.example.com")
    r.add("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1")
    r.add("Max-Forwards", "70")
    r.add("From", "Alice <sip:alice@atlanta.example.com>;tag=a1")
    r.add("To", "Bob <sip:bob@biloxi.example.com>")
    r.add("Call-ID", "c1")
    r.add("CSeq", "10 INVITE")
    r.add("Contact", "<sip:alice@192.0.2.1:5070>")
    r.add("Record-Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>")
    return r


def ok_for(req, contact="<sip:bob@192.0.2.2:5080>"):
    resp = Response.for_request(req, 200, to_tag="b1")
    resp.add("Contact", contact)
    return resp


def test_uac_dialog_reverses_record_route_and_uses_contact():
    req = invite()
    d = Dialog.from_uac(req, ok_for(req), local_contact="<sip:alice@192.0.2.1:5070>")
    assert d.id == ("c1", "a1", "b1")
    assert d.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert d.remote_target == "sip:bob@192.0.2.2:5080"
    bye = d.create_request("BYE")
    assert bye.uri == "sip:bob@192.0.2.2:5080"
    assert bye.get_all("route") == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert bye.cseq == (11, "BYE")
    assert bye.from_.tag == "a1" and bye.to.tag == "b1" and bye.from_.display == "Alice"
    assert d.next_hop().host == "p2.example.com"
    info = d.create_request("INFO", b"Signal=5\r\n", "application/dtmf-relay")
    assert info.cseq == (12, "INFO") and info.get("content-type") == "application/dtmf-relay"
    assert "contact" not in info
    reinv = d.create_request("INVITE", b"v=0\r\n")
    assert reinv.get("contact") == "<sip:alice@192.0.2.1:5070>"
    ack = d.create_ack(reinv.cseq[0])
    assert ack.cseq == (13, "ACK") and d.local_seq == 13


def test_uas_dialog_keeps_record_route_order_and_validates_cseq():
    req = invite()
    d = Dialog.from_uas(req, "b1")
    assert d.id == ("c1", "b1", "a1")
    assert d.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert d.remote_target == "sip:alice@192.0.2.1:5070"
    bye = d.create_request("BYE")
    assert bye.cseq == (1, "BYE") and bye.from_.tag == "b1" and bye.to.tag == "a1"
    assert isinstance(parse(_with_via(bye).to_bytes()), Request)
    # peer's in-dialog requests
    later = d_request("INFO", 11)
    assert d.check_request(later) is None and d.remote_seq == 11
    assert d.check_request(d_request("INFO", 11)) == 500
    assert d.check_request(d_request("INFO", 5)) == 500


def d_request(method, cseq, contact=None):
    r = Request(method, "sip:bob@192.0.2.2:5080")
    r.add("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx")
    r.add("From", "Alice <sip:alice@atlanta.example.com>;tag=a1")
    r.add("To", "Bob <sip:bob@biloxi.example.com>;tag=b1")
    r.add("Call-ID", "c1")
    r.add("CSeq", f"{cseq} {method}")
    if contact:
        r.add("Contact", contact)
    return r


def _with_via(req):
    req.prepend("Via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKq")
    return req


def test_target_refresh_from_reinvite_and_its_2xx():
    req = invite()
    d = Dialog.from_uas(req, "b1")
    reinv = d_request("INVITE", 11, contact="<sip:alice@198.51.100.7:6000>")
    assert d.check_request(reinv) is None
    assert d.remote_target == "sip:alice@198.51.100.7:6000"
    # our own re-INVITE's 2xx refreshes too
    mine = d.create_request("INVITE")
    ok = Response.for_request(_with_via(mine), 200)
    ok.add("Contact", "<sip:alice@203.0.113.9>")
    d.on_response(ok)
    assert d.remote_target == "sip:alice@203.0.113.9"


def test_glare_491_and_pending_500():
    d = Dialog.from_uas(invite(), "b1")
    d.invite_in_progress = True
    assert d.check_request(d_request("INVITE", 11)) == 491
    d.invite_in_progress = False
    d.remote_invite_pending = True
    assert d.check_request(d_request("INVITE", 12)) == 500
    d.remote_invite_pending = False
    assert d.check_request(d_request("INVITE", 13)) is None


def test_strict_route_rewrites_request_uri():
    req = invite()
    req.set("Record-Route", "<sip:strict.example.com>")
    d = Dialog.from_uac(req, ok_for(req))
    bye = d.create_request("BYE")
    assert bye.uri == "sip:strict.example.com"
    assert bye.get_all("route") == ["<sip:bob@192.0.2.2:5080>"]


def test_table_lookup_and_unknown_dialog():
    table = DialogTable()
    req = invite()
    d = Dialog.from_uas(req, "b1")
    table.add(d)
    assert table.for_request(d_request("BYE", 11)) is d
    other = d_request("BYE", 11)
    other.set("To", "<sip:bob@biloxi.example.com>;tag=zzz")
    assert is_in_dialog(other) and table.for_request(other) is None  # a UA answers 481
    assert not is_in_dialog(req)
    uac = Dialog.from_uac(req, ok_for(req))
    table.add(uac)
    assert table.for_response(ok_for(req)) is uac
    table.remove(d)
    assert table.for_request(d_request("BYE", 11)) is None and d.terminated
