"""The asyncio user agent, two instances talking over real loopback sockets (UDP and TCP)."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from roomtone.sip.auth import Challenger
from roomtone.sip.message import Response, parse
from roomtone.sip.ua import CallFailed, CallState, DigestAuthenticator, Reply, UserAgent
from tests.waiting import wait_for

OFFER = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
ANSWER = OFFER.replace(b"40000", b"40002")


@pytest.fixture
async def pair():
    a = UserAgent("127.0.0.1", 0, user="alice")
    b = UserAgent("127.0.0.1", 0, user="bob")
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


def uri(ua, transport="udp"):
    tp = "" if transport == "udp" else f";transport={transport}"
    return f"sip:bob@127.0.0.1:{ua.port}{tp}"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_call_info_reinvite_bye(pair, transport):
    a, b = pair
    got_info = []
    answered = asyncio.Event()
    inbound = []

    async def on_invite(call):
        inbound.append(call)
        assert call.remote_body == OFFER
        await call.ring()

        def on_request(c, req):
            if req.method == "INFO":
                got_info.append(req.body)
                return Reply(200) if req.body.startswith(b"Signal=") else 415
            return None

        call.on_request = on_request
        await call.answer(ANSWER)
        answered.set()

    b.on_invite = on_invite
    states = []
    call = await a.invite(uri(b, transport), OFFER, on_provisional=lambda c, r: states.append(r.status))
    ok = await call.wait_answered()
    assert ok.status == 200 and call.remote_body == ANSWER
    assert 180 in states
    await asyncio.wait_for(answered.wait(), 5)
    bcall = inbound[0]
    assert bcall.state is CallState.ESTABLISHED and call.state is CallState.ESTABLISHED
    r = await call.info(b"Signal=5\r\nDuration=160\r\n")
    assert r.status == 200 and got_info == [b"Signal=5\r\nDuration=160\r\n"]
    r = await call.info(b"garbage", "text/plain")
    assert r.status == 415
    # re-INVITE (hold) from the caller: default handler answers with the callee's local body
    hold = OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    r = await call.reinvite(hold)
    assert r.status == 200 and r.body == ANSWER
    assert bcall.remote_body == hold
    # re-INVITE from the callee side, then BYE from the callee
    r = await bcall.reinvite(ANSWER)
    assert r.status == 200
    await bcall.bye()
    await asyncio.wait_for(call.wait_ended(), 5)
    assert call.end_reason == "remote BYE" and bcall.state is CallState.ENDED


async def test_bye_from_caller_and_481_after(pair):
    a, b = pair

    async def on_invite(call):
        await call.answer(ANSWER)

    b.on_invite = on_invite
    call = await a.call(uri(b), OFFER)
    dialog = call.dialog
    await call.bye()
    assert call.state is CallState.ENDED
    await wait_for(lambda: not b.calls, 5, "the callee forgot the ended call")
    # an in-dialog request for the now-unknown dialog gets 481
    a.dialogs.add(dialog)
    call.state = CallState.ESTABLISHED
    call.dialog = dialog
    r = await call.info(b"Signal=1\r\n")
    assert r.status == 481


async def test_reject_and_cancel(pair):
    a, b = pair

    async def on_invite(call):
        if b"reject" in call.request.uri.encode():
            await call.reject(486)
        else:
            await call.ring()  # never answers: the caller cancels

    b.on_invite = on_invite
    with pytest.raises(CallFailed) as exc:
        await a.call(uri(b).replace("bob", "reject"), OFFER)
    assert exc.value.status == 486
    call = await a.invite(uri(b), OFFER)
    while call.state is not CallState.EARLY:
        await asyncio.sleep(0.01)
    await call.cancel()
    assert call.state is CallState.ENDED and call.end_status == 487 and call.end_reason == "cancelled"
    await wait_for(lambda: not b.calls, 5, "the callee forgot the cancelled call")


async def test_no_handler_480_and_options(pair):
    a, b = pair
    with pytest.raises(CallFailed) as exc:
        await a.call(uri(b), OFFER)
    assert exc.value.status == 480
    r = await a.options(uri(b))
    assert r.status == 200 and "INVITE" in r.get("allow")


async def test_incoming_iterator(pair):
    a, b = pair

    async def serve():
        async for call in b.incoming():
            await call.answer(ANSWER)
            return call

    task = asyncio.create_task(serve())
    await asyncio.sleep(0)
    call = await a.call(uri(b, "tcp"), OFFER)
    bcall = await asyncio.wait_for(task, 5)
    assert bcall.transport == "TCP" and call.remote_body == ANSWER
    await call.hangup()


async def test_digest_auth_challenge_and_retry(pair):
    a, b = pair
    challenger = Challenger("roomtone.test", os.urandom(32))
    b.authenticator = DigestAuthenticator(challenger, lambda user, realm: "s3cret" if user == "alice" else None)
    identities = []

    async def on_invite(call):
        identities.append(call.identity)
        await call.answer(ANSWER)

    b.on_invite = on_invite
    with pytest.raises(CallFailed) as exc:
        await a.call(uri(b), OFFER)
    assert exc.value.status == 401  # no credentials
    with pytest.raises(CallFailed) as exc:
        await a.call(uri(b), OFFER, auth=("alice", "wrong"))
    assert exc.value.status == 403
    call = await a.call(uri(b), OFFER, auth=("alice", "s3cret"))
    assert identities == ["alice"]
    assert call.request.get("authorization", "").startswith("Digest ")
    assert call.request.cseq[0] == 2
    await call.hangup()


async def test_malformed_request_answered_with_400_and_rport(pair):
    _, b = pair
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    port = sock.getsockname()[1]
    try:
        raw = (
            b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.9:5999;branch=z9hG4bKbad;rport\r\n"
            b"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: bad1\r\n"
            b"CSeq: one OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        sock.sendto(raw, ("127.0.0.1", b.port))
        data, _ = await asyncio.get_running_loop().run_in_executor(None, sock.recvfrom, 65535)
        # the 400 echoes the headers as the client sent them (bad CSeq included, so the client
        # can match it), hence it is checked as text rather than re-parsed
        assert data.startswith(b"SIP/2.0 400 Bad Request (malformed CSeq: 'one OPTIONS')\r\n")
        assert b"Call-ID: bad1\r\n" in data and b"received=127.0.0.1" in data
        # a good OPTIONS: rport makes the answer come back to our real port, with received/rport
        good = raw.replace(b"CSeq: one", b"CSeq: 1")
        sock.sendto(good, ("127.0.0.1", b.port))
        data, _ = await asyncio.get_running_loop().run_in_executor(None, sock.recvfrom, 65535)
        resp = parse(data)
        assert isinstance(resp, Response) and resp.status == 200
        assert resp.top_via.params["received"] == "127.0.0.1"
        assert resp.top_via.params["rport"] == str(port)
        # an in-dialog request for an unknown dialog: 481
        bye = good.replace(b"OPTIONS", b"BYE").replace(b"To: <sip:bob@127.0.0.1>", b"To: <sip:bob@127.0.0.1>;tag=zz")
        sock.sendto(bye, ("127.0.0.1", b.port))
        data, _ = await asyncio.get_running_loop().run_in_executor(None, sock.recvfrom, 65535)
        resp = parse(data)
        assert isinstance(resp, Response) and resp.status == 481
    finally:
        sock.close()


async def test_100_trying_only_when_the_application_is_slow(pair):
    a, b = pair

    async def on_invite(call):
        if b"slow" in call.request.uri.encode():
            await asyncio.sleep(0.4)
        await call.answer(ANSWER)

    b.on_invite = on_invite
    seen = []
    call = await a.invite(uri(b).replace("bob", "slow"), OFFER, on_provisional=lambda c, r: seen.append(r.status))
    await call.wait_answered()
    assert seen == [100]
    await call.hangup()
    seen.clear()
    call = await a.invite(uri(b), OFFER, on_provisional=lambda c, r: seen.append(r.status))
    await call.wait_answered()
    assert seen == []  # answered at once: no 100 needed (RFC 3261 §17.2.1, 200 ms rule)
    await call.hangup()


async def test_ring_timeout_cancels(pair):
    a, b = pair
    callee = []

    async def on_invite(call):
        callee.append(call)
        await call.ring()

    b.on_invite = on_invite
    call = await a.invite(uri(b), OFFER, timeout=0.3)
    with pytest.raises(CallFailed) as exc:
        await call.wait_answered()
    assert exc.value.status == 487
    assert call.end_reason == "no answer (timeout)"
    await wait_for(lambda: callee[0].state is CallState.ENDED, 5, "the callee saw the CANCEL")
    assert callee[0].end_reason == "cancelled"


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def test_call_over_tls(tmp_path):
    import ssl

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=cert)
    a = UserAgent("127.0.0.1", 0, transports=("UDP", "TLS"), tls_server_context=server_ctx,
                  tls_client_context=client_ctx)
    b = UserAgent("127.0.0.1", 0, transports=("UDP", "TLS"), tls_server_context=server_ctx,
                  tls_client_context=client_ctx)
    await a.start()
    await b.start()
    try:
        got = []

        async def on_invite(call):
            got.append(call)
            call.on_request = lambda c, r: 200
            await call.answer(ANSWER)

        b.on_invite = on_invite
        tls_port = b.transport.local["TLS"][1]
        call = await a.call(f"sip:bob@127.0.0.1:{tls_port};transport=tls", OFFER)
        assert got[0].transport == "TLS" and call.transport == "TLS"
        assert "transport=tls" in got[0].request.get("contact")
        assert (await call.info(b"Signal=1\r\n")).status == 200
        await got[0].bye()  # callee-side BYE travels back over TLS to the caller's TLS contact
        await asyncio.wait_for(call.wait_ended(), 5)
    finally:
        await a.close()
        await b.close()


async def test_garbage_datagrams_do_not_hurt_the_ua(pair, caplog):
    """Random and mutated datagrams at a live UA: it logs, answers what it can, keeps working."""
    import random

    from tests.sip.test_message import INVITE, RESPONSE

    a, b = pair
    rng = random.Random(1234)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        for i in range(300):
            base = bytearray(rng.choice([INVITE, RESPONSE]))
            for _ in range(rng.randint(1, 5)):
                pos = rng.randrange(len(base))
                if rng.random() < 0.5:
                    base[pos] = rng.randrange(256)
                else:
                    base[pos:pos] = rng.choice([b";", b",", b"\r\n", b"<", b'"', b":", b" "])
            data = bytes(base) if i % 3 else bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
            sock.sendto(data, ("127.0.0.1", b.port))
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
    finally:
        sock.close()
    r = await a.options(uri(b))
    assert r.status == 200
    bugs = [rec for rec in caplog.records if rec.levelname in ("ERROR", "CRITICAL")]
    assert not bugs, [rec.getMessage() for rec in bugs[:3]]


async def test_tcp_response_after_connection_closed_goes_to_via_sent_by(pair):
    """RFC 3261 §18.2.2: if the request's connection is gone, connect to the Via sent-by."""
    _, b = pair
    closed = asyncio.Event()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_conn(reader, writer):
        try:
            while True:
                got.put_nowait(await reader.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    listen_port = server.sockets[0].getsockname()[1]

    async def on_invite(call):
        await closed.wait()
        await call.reject(486)

    b.on_invite = on_invite
    reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
    invite = (
        f"INVITE sip:bob@127.0.0.1:{b.port};transport=tcp SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:{listen_port};branch=z9hG4bKtcpgone\r\n"
        "From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: tcpgone\r\n"
        "CSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1;transport=tcp>\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    writer.write(invite)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await asyncio.sleep(0.1)
    closed.set()
    heads = []
    try:
        while not heads or not heads[-1].startswith(b"SIP/2.0 486 "):
            heads.append(await asyncio.wait_for(got.get(), 5))
    finally:
        server.close()
    assert heads[-1].startswith(b"SIP/2.0 486 ") and b"tcpgone" in heads[-1]


async def test_out_of_dialog_request_handler(pair):
    a, b = pair
    seen = []

    async def on_request(req, source):
        seen.append((req.method, req.body, source.transport))
        return Reply(202, reason="Accepted")

    r = await a.request("MESSAGE", uri(b), b"hello", content_type="text/plain")
    assert r.status == 501  # no handler: refused, not swallowed
    b.on_request = on_request
    r = await a.request("MESSAGE", uri(b, "tcp"), b"hello", content_type="text/plain")
    assert r.status == 202 and r.to.tag
    assert seen == [("MESSAGE", b"hello", "TCP")]


async def test_call_over_ipv6_loopback():
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    a = UserAgent("::1", 0)
    b = UserAgent("::1", 0)
    await a.start()
    await b.start()
    try:
        got = []

        async def on_invite(call):
            got.append(call)
            await call.answer(ANSWER)

        b.on_invite = on_invite
        for tp in ("", ";transport=tcp"):
            call = await a.call(f"sip:bob@[::1]:{b.port}{tp}", OFFER)
            assert got[-1].request.top_via.host == "[::1]"
            assert got[-1].remote_address.host == "::1"
            assert "[::1]" in got[-1].request.get("contact")
            await got[-1].bye()
            await asyncio.wait_for(call.wait_ended(), 5)
    finally:
        await a.close()
        await b.close()


async def test_cancel_before_any_provisional_sends_one_cancel(pair):
    a, b = pair
    cancels = []
    original = b._handle_cancel

    def counting(req, tx):
        cancels.append(req)
        original(req, tx)

    b._handle_cancel = counting

    async def on_invite(call):
        await asyncio.sleep(0.3)  # the 100 Trying goes out at 200 ms
        try:
            await call.ring()
            await call.progress(ANSWER)
        except CallFailed:
            pass  # already cancelled: fine

    b.on_invite = on_invite
    call = await a.invite(uri(b), OFFER)
    await call.cancel()  # nothing received yet: RFC 3261 §9.1 says wait for a provisional
    assert call.state is CallState.ENDED and call.end_status == 487
    await asyncio.sleep(0.5)
    assert len(cancels) == 1


async def test_no_state_left_behind_after_many_calls():
    """After calls end and timers run out, every table is empty again (no leaks)."""
    from roomtone.sip.transaction import Timers

    fast = Timers(t1=0.01, t2=0.04, t4=0.05, d=0.1)  # so Timers D/I/J/K/L/M expire quickly
    a = UserAgent("127.0.0.1", 0, timers=fast)
    b = UserAgent("127.0.0.1", 0, timers=fast)
    await a.start()
    await b.start()
    try:
        async def on_invite(call):
            call.on_request = lambda c, r: 200
            await call.answer(ANSWER)

        b.on_invite = on_invite
        for i in range(20):
            call = await a.call(uri(b, "tcp" if i % 2 else "udp"), OFFER)
            await call.info(b"Signal=1\r\n")
            await (call.hangup() if i % 3 else b.calls[0].hangup())
            await asyncio.wait_for(call.wait_ended(), 5)
        r = await a.options(uri(b))
        assert r.status == 200
        await asyncio.sleep(1.0)  # 64*T1 = 0.64 s: every transaction has terminated
        for ua in (a, b):
            assert not ua.calls and len(ua.dialogs) == 0
            assert not ua.layer.clients and not ua.layer.servers and not ua.layer._ok
            assert not ua._pending and not ua._tasks
            assert ua.layer.next_deadline() is None
    finally:
        await a.close()
        await b.close()
