"""Transactions (RFC 3261 §17, RFC 6026) driven by a virtual clock: every timer and schedule."""

from __future__ import annotations

import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roomtone.sip.message import Request, Response, parse
from roomtone.sip.transaction import (
    AckTimeout,
    RequestReceived,
    ResponseReceived,
    Send,
    State,
    StrayResponse,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
)
from tests.sip.test_message import mutated

DEST = ("127.0.0.1", 5060)
SRC = ("127.0.0.1", 5070)


def request(method="INVITE", branch="z9hG4bKabc", cseq=1):
    r = Request(method, "sip:bob@127.0.0.1")
    r.add("Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={branch}")
    r.add("Max-Forwards", "70")
    r.add("From", "<sip:alice@127.0.0.1>;tag=a1")
    r.add("To", "<sip:bob@127.0.0.1>")
    r.add("Call-ID", "call-1")
    r.add("CSeq", f"{cseq} {method}")
    return r


def response(req, status, tag="b1"):
    return Response.for_request(req, status, to_tag=tag)


def run_until(layer, end, step=0.01, start=0.0):
    """Advance the virtual clock to ``end`` by jumping to each deadline; return (time, event)s."""
    out = []
    now = start
    while True:
        d = layer.next_deadline()
        if d is None or d > end:
            break
        now = max(now, d)
        layer.tick(now)
        out += [(round(now, 6), e) for e in layer.pop_events()]
    return out


def sends(events):
    return [t for t, e in events if isinstance(e, Send) and e.retransmit]


# ---------------------------------------------------------------- INVITE client


def test_invite_client_timer_a_schedule_then_timer_b():
    layer = TransactionLayer()
    tx = layer.send_request(request(), DEST, reliable=False, now=0.0)
    first = layer.pop_events()
    assert isinstance(first[0], Send) and not first[0].retransmit
    ev = run_until(layer, 100)
    # A: T1, then doubling: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5; B at 64*T1 = 32
    assert sends(ev) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    timeouts = [(t, e.timer) for t, e in ev if isinstance(e, TransactionTimeout)]
    assert timeouts == [(32.0, "B")]
    assert tx.state is State.TERMINATED and not layer.clients


def test_invite_client_reliable_no_retransmissions():
    layer = TransactionLayer()
    layer.send_request(request(), DEST, reliable=True, now=0.0)
    layer.pop_events()
    ev = run_until(layer, 100)
    assert sends(ev) == []
    assert [(t, e.timer) for t, e in ev if isinstance(e, TransactionTimeout)] == [(32.0, "B")]


def test_invite_client_provisional_stops_a_and_b():
    layer = TransactionLayer()
    req = request()
    tx = layer.send_request(req, DEST, reliable=False, now=0.0)
    layer.pop_events()
    layer.tick(0.5)
    assert sends([(0.5, e) for e in layer.pop_events()]) == [0.5]
    layer.receive(response(req, 180), DEST, False, 0.7)
    ev = layer.pop_events()
    assert isinstance(ev[0], ResponseReceived) and ev[0].response.status == 180
    assert tx.state is State.PROCEEDING
    assert run_until(layer, 200) == []  # no more retransmissions, no timeout in Proceeding


def test_invite_client_non2xx_acks_and_timer_d():
    layer = TransactionLayer()
    req = request()
    tx = layer.send_request(req, DEST, reliable=False, now=0.0)
    layer.pop_events()
    resp = response(req, 486)
    layer.receive(resp, DEST, False, 1.0)
    ev = layer.pop_events()
    acks = [e.message for e in ev if isinstance(e, Send)]
    assert len(acks) == 1 and acks[0].method == "ACK"
    ack = acks[0]
    assert ack.top_via.branch == "z9hG4bKabc" and ack.to.tag == "b1" and ack.cseq == (1, "ACK")
    assert isinstance(parse(ack.to_bytes()), Request)
    assert [e.response.status for e in ev if isinstance(e, ResponseReceived)] == [486]
    assert tx.state is State.COMPLETED
    # retransmitted 486 -> ACK again, not passed up
    layer.receive(resp, DEST, False, 2.0)
    ev = layer.pop_events()
    assert len(ev) == 1 and isinstance(ev[0], Send) and ev[0].message.method == "ACK" and ev[0].retransmit
    # Timer D = 32 s
    ev = run_until(layer, 100)
    assert [(t, type(e).__name__) for t, e in ev] == [(33.0, "TransactionTerminated")]


def test_invite_client_timer_d_zero_on_tcp():
    layer = TransactionLayer()
    req = request()
    tx = layer.send_request(req, DEST, reliable=True, now=0.0)
    layer.receive(response(req, 603), DEST, True, 1.0)
    layer.pop_events()
    run_until(layer, 1.0)
    assert tx.state is State.TERMINATED


def test_invite_client_2xx_accepted_then_timer_m():
    layer = TransactionLayer()
    req = request()
    tx = layer.send_request(req, DEST, reliable=False, now=0.0)
    layer.pop_events()
    ok = response(req, 200)
    layer.receive(ok, DEST, False, 0.2)
    ev = layer.pop_events()
    assert [type(e).__name__ for e in ev] == ["ResponseReceived"]  # no ACK from the transaction
    assert tx.state is State.ACCEPTED
    layer.receive(ok, DEST, False, 1.0)  # retransmitted 2xx passed up so the TU re-ACKs
    assert [type(e).__name__ for e in layer.pop_events()] == ["ResponseReceived"]
    ev = run_until(layer, 100)
    assert [(t, type(e).__name__) for t, e in ev] == [(32.2, "TransactionTerminated")]
    layer.receive(ok, DEST, False, 40.0)
    assert isinstance(layer.pop_events()[0], StrayResponse)


# ---------------------------------------------------------------- non-INVITE client


def test_non_invite_client_timer_e_schedule_and_f():
    layer = TransactionLayer()
    layer.send_request(request("OPTIONS"), DEST, reliable=False, now=0.0)
    layer.pop_events()
    ev = run_until(layer, 100)
    # E: 0.5, 1.5, 3.5, 7.5, then capped at T2=4: 11.5, 15.5, ..., 31.5; F at 32
    assert sends(ev) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [(t, e.timer) for t, e in ev if isinstance(e, TransactionTimeout)] == [(32.0, "F")]


def test_non_invite_client_proceeding_uses_t2():
    layer = TransactionLayer()
    req = request("BYE")
    layer.send_request(req, DEST, reliable=False, now=0.0)
    layer.pop_events()
    layer.receive(response(req, 100), DEST, False, 0.1)
    assert isinstance(layer.pop_events()[0], ResponseReceived)
    ev = run_until(layer, 20)
    # E fires at 0.5 (already scheduled), then every T2 since we are in Proceeding
    assert sends(ev) == [0.5, 4.5, 8.5, 12.5, 16.5]


def test_non_invite_client_completed_timer_k():
    layer = TransactionLayer()
    req = request("INFO")
    tx = layer.send_request(req, DEST, reliable=False, now=0.0)
    layer.pop_events()
    ok = response(req, 200)
    layer.receive(ok, DEST, False, 0.3)
    assert [e.response.status for e in layer.pop_events()] == [200]
    layer.receive(ok, DEST, False, 0.4)  # absorbed
    assert layer.pop_events() == []
    ev = run_until(layer, 100)
    assert [(t, type(e).__name__) for t, e in ev] == [(5.3, "TransactionTerminated")]  # K = T4
    assert tx.state is State.TERMINATED


def test_non_invite_client_reliable_k_zero():
    layer = TransactionLayer()
    req = request("INFO")
    tx = layer.send_request(req, DEST, reliable=True, now=0.0)
    layer.receive(response(req, 200), DEST, True, 0.3)
    run_until(layer, 0.3)
    assert tx.state is State.TERMINATED
    assert [e for e in layer.pop_events() if isinstance(e, Send) and e.retransmit] == []


# ---------------------------------------------------------------- INVITE server


def incoming(layer, req, reliable=False, now=0.0):
    layer.receive(req, SRC, reliable, now)
    ev = layer.pop_events()
    assert isinstance(ev[0], RequestReceived)
    return ev[0].transaction


def test_invite_server_retransmitted_invite_resends_provisional():
    layer = TransactionLayer()
    req = request()
    tx = incoming(layer, req)
    assert tx.state is State.PROCEEDING
    tx.respond(response(req, 180), 0.1)
    assert [e.message.status for e in layer.pop_events()] == [180]
    layer.receive(request(), SRC, False, 0.5)  # retransmission: not a new request
    ev = layer.pop_events()
    assert len(ev) == 1 and isinstance(ev[0], Send) and ev[0].message.status == 180


def test_invite_server_non2xx_timer_g_and_h():
    layer = TransactionLayer()
    req = request()
    tx = incoming(layer, req)
    tx.respond(response(req, 486), 0.0)
    layer.pop_events()
    ev = run_until(layer, 100)
    # G: 0.5, 1.5, 3.5, 7.5 then every T2 until H at 32
    assert sends(ev) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [(t, e.timer) for t, e in ev if isinstance(e, TransactionTimeout)] == [(32.0, "H")]


def test_invite_server_ack_confirms_and_timer_i():
    layer = TransactionLayer()
    req = request()
    tx = incoming(layer, req)
    resp = response(req, 404)
    tx.respond(resp, 0.0)
    layer.pop_events()
    layer.tick(0.5)
    layer.pop_events()
    ack = Request("ACK", req.uri)
    for n in ("via", "from", "call-id"):
        ack.add(n, req.get(n))
    ack.add("To", resp.get("to"))
    ack.add("CSeq", "1 ACK")
    layer.receive(ack, SRC, False, 0.9)
    assert layer.pop_events() == []  # absorbed by the transaction, not passed to the TU
    assert tx.state is State.CONFIRMED
    ev = run_until(layer, 100)
    assert [(t, type(e).__name__) for t, e in ev] == [(5.9, "TransactionTerminated")]  # I = T4


def test_invite_server_reliable_no_g_i_zero():
    layer = TransactionLayer()
    req = request()
    tx = incoming(layer, req, reliable=True)
    tx.respond(response(req, 480), 0.0)
    layer.pop_events()
    ack = make_ack_like(req, tx.last_response)
    layer.receive(ack, SRC, True, 0.1)
    ev = run_until(layer, 100)
    assert sends(ev) == []
    assert tx.state is State.TERMINATED


def make_ack_like(req, resp):
    from roomtone.sip.transaction import make_ack

    return make_ack(req, resp)


def test_invite_server_2xx_retransmitted_by_core_until_ack():
    layer = TransactionLayer()
    req = request()
    tx = incoming(layer, req)
    ok = response(req, 200)
    layer.send_2xx(tx, ok, 0.0)
    layer.pop_events()
    assert tx.state is State.ACCEPTED
    ev = run_until(layer, 4.0)
    assert sends(ev) == [0.5, 1.5, 3.5]
    ack = Request("ACK", "sip:bob@127.0.0.1")
    ack.add("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKnewbranch")
    for n in ("from", "call-id"):
        ack.add(n, req.get(n))
    ack.add("To", ok.get("to"))
    ack.add("CSeq", "1 ACK")
    layer.receive(ack, SRC, False, 4.0)
    ev = layer.pop_events()
    assert len(ev) == 1 and isinstance(ev[0], RequestReceived) and ev[0].request.method == "ACK"
    ev = run_until(layer, 100, start=4.0)
    assert sends(ev) == []
    assert [(t, type(e).__name__) for t, e in ev] == [(32.0, "TransactionTerminated")]  # L


def test_2xx_without_ack_gives_ack_timeout():
    layer = TransactionLayer()
    req = request()
    tx = incoming(layer, req, reliable=True)
    layer.send_2xx(tx, response(req, 200), 0.0)
    layer.pop_events()
    ev = run_until(layer, 100)
    assert sends(ev) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [t for t, e in ev if isinstance(e, AckTimeout)] == [32.0]


def test_invite_server_accepted_absorbs_retransmitted_invite():
    layer = TransactionLayer()
    req = request()
    tx = incoming(layer, req)
    layer.send_2xx(tx, response(req, 200), 0.0)
    layer.pop_events()
    layer.receive(request(), SRC, False, 0.1)
    assert layer.pop_events() == []


# ---------------------------------------------------------------- non-INVITE server


def test_non_invite_server_timer_j_and_retransmit_final():
    layer = TransactionLayer()
    req = request("OPTIONS")
    tx = incoming(layer, req)
    assert tx.state is State.TRYING
    layer.receive(request("OPTIONS"), SRC, False, 0.1)
    assert layer.pop_events() == []  # Trying absorbs retransmissions
    tx.respond(response(req, 200), 0.2)
    layer.pop_events()
    layer.receive(request("OPTIONS"), SRC, False, 1.0)
    ev = layer.pop_events()
    assert len(ev) == 1 and ev[0].message.status == 200 and ev[0].retransmit
    ev = run_until(layer, 100)
    assert [(t, type(e).__name__) for t, e in ev] == [(32.2, "TransactionTerminated")]  # J


def test_non_invite_server_reliable_j_zero():
    layer = TransactionLayer()
    req = request("BYE")
    tx = incoming(layer, req, reliable=True)
    tx.respond(response(req, 200), 0.0)
    run_until(layer, 0.0)
    assert tx.state is State.TERMINATED


def test_cancel_finds_invite_and_487():
    layer = TransactionLayer()
    req = request()
    inv = incoming(layer, req)
    cancel = Request("CANCEL", req.uri)
    for n in ("via", "from", "to", "call-id"):
        cancel.add(n, req.get(n))
    cancel.add("CSeq", "1 CANCEL")
    ctx = incoming(layer, cancel)
    assert ctx is not inv and ctx.method == "CANCEL"
    assert layer.find_invite(cancel) is inv
    ctx.respond(response(cancel, 200), 0.1)
    inv.respond(response(req, 487), 0.1)
    statuses = [e.message.status for e in layer.pop_events() if isinstance(e, Send)]
    assert statuses == [200, 487]


def test_late_response_from_tu_is_ignored():
    layer = TransactionLayer()
    req = request("INFO")
    tx = incoming(layer, req)
    tx.respond(response(req, 200), 0.0)
    tx.respond(response(req, 500), 0.1)
    assert [e.message.status for e in layer.pop_events() if isinstance(e, Send)] == [200]


def test_transport_error_terminates():
    layer = TransactionLayer()
    tx = layer.send_request(request("OPTIONS"), DEST, reliable=True, now=0.0)
    tx.transport_error()
    names = [type(e).__name__ for e in layer.pop_events()]
    assert names[-2:] == ["TransactionTimeout", "TransactionTerminated"]
    assert TransactionTerminated and tx.state is State.TERMINATED


# ---------------------------------------------------------------- fuzz


msgs = st.sampled_from(
    [
        lambda: request(),
        lambda: request("OPTIONS"),
        lambda: request("ACK"),
        lambda: request("CANCEL"),
        lambda: response(request(), 180),
        lambda: response(request(), 200),
        lambda: response(request(), 486),
        lambda: response(request("OPTIONS"), 200),
        lambda: request(branch="nocookie"),
        lambda: response(request(branch="z9hG4bKother"), 200),
    ]
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), msgs, st.floats(0, 5), st.booleans(), st.integers(100, 699)), max_size=30))
def test_fuzz_no_exception_escapes(ops):
    # the layer catches and logs internal errors so one bad message cannot stop it; for this test
    # a logged internal error counts as an escape, so watch the logger too
    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append  # type: ignore[method-assign]
    logger = logging.getLogger("roomtone.sip.transaction")
    logger.addHandler(handler)
    try:
        _fuzz(ops)
    finally:
        logger.removeHandler(handler)
    assert not errors, [r.getMessage() for r in errors]


def _fuzz(ops):
    layer = TransactionLayer()
    now = 0.0
    servers = []
    for op, make, dt, reliable, code in ops:
        now += dt
        msg = make()
        if op == 0 and isinstance(msg, Request) and msg.method != "ACK":
            layer.send_request(msg, DEST, reliable, now)
        elif op == 1:
            layer.receive(msg, SRC, reliable, now)
        elif op == 2 and servers:
            tx = servers[-1]
            resp = response(tx.request, code)
            if tx.method == "INVITE" and 200 <= code < 300:
                layer.send_2xx(tx, resp, now)
            else:
                tx.respond(resp, now)
        else:
            layer.tick(now)
        for e in layer.pop_events():
            if isinstance(e, RequestReceived) and e.transaction is not None:
                servers.append(e.transaction)
        d = layer.next_deadline()
        assert d is None or d >= 0
    layer.tick(now + 1000)
    layer.pop_events()
    assert not layer.clients or all(c.state is State.PROCEEDING for c in layer.clients.values())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(mutated(), st.floats(0, 40), st.booleans()), min_size=1, max_size=12))
def test_fuzz_mutated_wire_messages(items):
    """Whatever parses off the wire (mutated valid messages) is fed in; nothing escapes or is logged."""
    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append  # type: ignore[method-assign]
    logger = logging.getLogger("roomtone.sip.transaction")
    logger.addHandler(handler)
    try:
        layer = TransactionLayer()
        layer.send_request(request(), DEST, False, 0.0)
        layer.send_request(request("OPTIONS", branch="z9hG4bKopt"), DEST, True, 0.0)
        now = 0.0
        for data, dt, reliable in items:
            msg = parse(data)
            now += dt
            if isinstance(msg, Request | Response):
                layer.receive(msg, SRC, reliable, now)
            for ev in layer.pop_events():
                if isinstance(ev, RequestReceived) and ev.transaction is not None:
                    ev.transaction.respond(response(ev.request, 486 if ev.request.method == "INVITE" else 200), now)
            layer.tick(now)
            layer.pop_events()
    finally:
        logger.removeHandler(handler)
    assert not errors, [r.getMessage() for r in errors]
