"""Digest authentication: RFC vectors, client/server round trips, replay and stale handling, fuzzing.

The real-peer checks at the end put our Challenger in front of SIPp, pjsua2 and baresip through a
raw loopback UDP responder (tests/phones/raw.py), so they do not depend on roomtone's UA.
"""

from __future__ import annotations

import re
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomtone.sip import sdp
from roomtone.sip.auth import (
    MD5_ONLY,
    AuthError,
    AuthStatus,
    Challenge,
    Challenger,
    DigestClient,
    choose_challenge,
    compute_ha1,
    compute_response,
    parse_challenges,
    parse_credentials,
)
from tests.phones.baresip import baresip_phone
from tests.phones.common import free_port
from tests.phones.pjsua import pjsua_phone
from tests.phones.raw import RawMessage, RawUas, response
from tests.phones.sipp import run_sipp, sipp, uac_scenario

# RFC 7616 §3.9.1
RFC7616_SHA256_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC7616_MD5_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def _param(header: str, name: str) -> str:
    m = re.search(rf'\b{name}="?([^",]*)"?', header)
    assert m, f"{name} missing from {header}"
    return m.group(1)


def test_rfc7616_sha256_vector():
    client = DigestClient("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616_CNONCE)
    value = client.respond(RFC7616_SHA256_CHALLENGE, "GET", "/dir/index.html")
    assert isinstance(value, str)
    assert _param(value, "response") == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert _param(value, "nc") == "00000001"
    assert _param(value, "qop") == "auth"
    assert _param(value, "algorithm") == "SHA-256"
    assert _param(value, "opaque") == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def test_rfc7616_md5_vector():
    client = DigestClient("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616_CNONCE)
    value = client.respond(RFC7616_MD5_CHALLENGE, "GET", "/dir/index.html")
    assert isinstance(value, str)
    assert _param(value, "response") == "8ca523f5e9506fed4657c9700eebdbec"


def test_rfc2617_classic_vector():
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    client = DigestClient("Mufasa", "Circle Of Life", cnonce_factory=lambda: "0a4f113b")
    value = client.respond(challenge, "GET", "/dir/index.html")
    assert isinstance(value, str)
    assert _param(value, "response") == "6629fae49393a05397450978507c4ef1"
    # No algorithm in the challenge: MD5 by default, and we do not add one the server did not use.
    assert "algorithm" not in value


def test_prefers_sha256_when_both_offered_in_either_order():
    for values in ([RFC7616_MD5_CHALLENGE, RFC7616_SHA256_CHALLENGE],
                   [RFC7616_SHA256_CHALLENGE + ", " + RFC7616_MD5_CHALLENGE]):
        parsed = parse_challenges(values)
        assert isinstance(parsed, list) and len(parsed) == 2
        chosen = choose_challenge(parsed)
        assert chosen is not None and chosen.algorithm == "SHA-256"


def test_skips_unknown_schemes_and_algorithms():
    parsed = parse_challenges(['Basic realm="x"', 'Digest realm="r", nonce="n", algorithm=FOO-1',
                               'Digest realm="r", nonce="n2", algorithm=md5'])
    assert isinstance(parsed, list)
    assert [(c.nonce, c.algorithm) for c in parsed] == [("n2", "MD5")]
    err = parse_challenges('Basic realm="x"')
    assert isinstance(err, AuthError) and "Basic" in err.reason


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("", "empty"),
        ('Digest nonce="n", realm="unterminated', "unterminated"),
        ('Digest realm="a", realm="b", nonce="n"', "duplicate"),
        ('realm="a"', "before any auth scheme"),
        ("Digest nonce=\"n\"", "no realm"),
        ('Digest realm="r"', "no nonce"),
        ('Digest realm="r" nonce="n"', "expected ','"),
    ],
)
def test_malformed_challenges_give_reasons(value, fragment):
    err = parse_challenges(value)
    assert isinstance(err, AuthError)
    assert fragment in err.reason


def test_quoted_string_escapes_and_unquoted_nonce_with_slashes():
    parsed = parse_challenges(r'Digest realm="a \"quoted\" realm", nonce=abc/def+g==, stale=TRUE')
    assert isinstance(parsed, list)
    assert parsed[0].realm == 'a "quoted" realm'
    assert parsed[0].nonce == "abc/def+g=="
    assert parsed[0].stale is True


def test_nonce_count_increments_per_nonce():
    client = DigestClient("u", "p")
    ch = Challenge(realm="r", nonce="n1", algorithm="MD5", qop=("auth",))
    ncs = [_param(client.authorize(ch, "INVITE", "sip:a@b"), "nc") for _ in range(3)]
    assert ncs == ["00000001", "00000002", "00000003"]
    other = Challenge(realm="r", nonce="n2", algorithm="MD5", qop=("auth",))
    assert _param(client.authorize(other, "INVITE", "sip:a@b"), "nc") == "00000001"
    # preemptive re-use takes the next count of the last nonce answered for the realm
    pre = client.preemptive("REGISTER", "sip:b")
    assert pre is not None and _param(pre, "nc") == "00000002" and _param(pre, "nonce") == "n2"


def test_legacy_no_qop_and_auth_int_computations():
    ha1 = compute_ha1("MD5", "u", "r", "p")
    legacy = compute_response(algorithm="MD5", ha1=ha1, nonce="n", method="INVITE", uri="sip:x")
    import hashlib

    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()

    assert legacy == md5(f"{ha1}:n:{md5('INVITE:sip:x')}")
    body = b"v=0\r\n"
    ai = compute_response(algorithm="MD5", ha1=ha1, nonce="n", method="INVITE", uri="sip:x",
                          qop="auth-int", nc=1, cnonce="c", body=body)
    ha2 = md5("INVITE:sip:x:" + hashlib.md5(body).hexdigest())
    assert ai == md5(f"{ha1}:n:00000001:c:auth-int:{ha2}")
    sess = compute_response(algorithm="MD5-sess", ha1=ha1, nonce="n", method="INVITE", uri="sip:x",
                            qop="auth", nc=1, cnonce="c")
    assert sess == md5(f"{md5(f'{ha1}:n:c')}:n:00000001:c:auth:{md5('INVITE:sip:x')}")


# --------------------------------------------------------------------------- server

SECRET = b"0123456789abcdef0123456789abcdef"
USERS = {"alice": "wonderland"}


def lookup(user: str, realm: str):
    return USERS.get(user)


def _round_trip(challenger: Challenger, client: DigestClient, now: float, uri="sip:bob@127.0.0.1",
                method="INVITE"):
    header = client.respond(challenger.challenge(now), method, uri)
    assert isinstance(header, str)
    return header, challenger.verify(header, method, uri, now + 1, lookup)


@pytest.mark.parametrize("algs", [("SHA-256", "MD5"), ("MD5",), ("SHA-256-sess",), ("SHA-512-256",), ("MD5-sess",)])
def test_challenger_accepts_good_password(algs):
    ch = Challenger("roomtone", SECRET, algorithms=algs)
    header, result = _round_trip(ch, DigestClient("alice", "wonderland"), 1000.0)
    assert result.ok, result
    assert result.username == "alice"
    assert _param(header, "algorithm") == algs[0]


def test_challenger_rejects_bad_password_unknown_user_and_replay():
    ch = Challenger("roomtone", SECRET)
    _, result = _round_trip(ch, DigestClient("alice", "looking-glass"), 1000.0)
    assert result.status is AuthStatus.BAD_PASSWORD
    _, result = _round_trip(ch, DigestClient("mallory", "x"), 1000.0)
    assert result.status is AuthStatus.UNKNOWN_USER
    header, result = _round_trip(ch, DigestClient("alice", "wonderland"), 1000.0)
    assert result.ok
    again = ch.verify(header, "INVITE", "sip:bob@127.0.0.1", 1002.0, lookup)
    assert again.status is AuthStatus.REPLAY and "already used" in again.reason


def test_challenger_nonce_counts_may_arrive_out_of_order_but_not_twice():
    ch = Challenger("roomtone", SECRET)
    client = DigestClient("alice", "wonderland")
    challenge = parse_challenges(ch.challenge(50.0))
    assert isinstance(challenge, list)
    headers = [client.authorize(challenge[0], "INFO", "sip:b@h") for _ in range(3)]
    assert [ch.verify(h, "INFO", "sip:b@h", 51.0, lookup).ok for h in (headers[2], headers[0], headers[1])] == [True] * 3
    assert ch.verify(headers[0], "INFO", "sip:b@h", 51.0, lookup).status is AuthStatus.REPLAY


def test_challenger_stale_nonce_then_client_retries_silently():
    ch = Challenger("roomtone", SECRET, nonce_ttl=30.0)
    client = DigestClient("alice", "wonderland")
    header = client.respond(ch.challenge(0.0), "INVITE", "sip:b@h")
    assert isinstance(header, str)
    result = ch.verify(header, "INVITE", "sip:b@h", 31.0, lookup)
    assert result.status is AuthStatus.STALE and result.stale
    rechallenge = ch.challenge(31.0, stale=result.stale)
    assert all("stale=true" in v for v in rechallenge)
    assert client.should_retry(rechallenge)  # stale: retry without asking the user
    header = client.respond(rechallenge, "INVITE", "sip:b@h")
    assert isinstance(header, str)
    assert ch.verify(header, "INVITE", "sip:b@h", 32.0, lookup).ok


def test_client_should_not_loop_on_wrong_password():
    ch = Challenger("roomtone", SECRET)
    client = DigestClient("alice", "bad")
    first = ch.challenge(0.0)
    assert client.should_retry(first)
    client.respond(first, "INVITE", "sip:b@h")
    assert not client.should_retry(ch.challenge(1.0))


def test_challenger_rejects_forged_and_foreign_nonces_and_mismatches():
    ch = Challenger("roomtone", SECRET)
    other = Challenger("roomtone", b"another-secret-of-32-bytes......")
    client = DigestClient("alice", "wonderland")
    header = client.respond(other.challenge(0.0), "INVITE", "sip:b@h")
    assert isinstance(header, str)
    assert ch.verify(header, "INVITE", "sip:b@h", 1.0, lookup).status is AuthStatus.BAD_NONCE
    header = client.respond(ch.challenge(0.0), "INVITE", "sip:b@h")
    assert isinstance(header, str)
    r = ch.verify(header, "INVITE", "sip:other@h", 1.0, lookup)
    assert r.status is AuthStatus.MALFORMED and "request-URI" in r.reason
    r = ch.verify(header, "BYE", "sip:b@h", 1.0, lookup)  # method is inside HA2
    assert r.status is AuthStatus.BAD_PASSWORD
    # issued in the future (clock skew > 5 s) is refused
    assert ch.verify(client.respond(ch.challenge(100.0), "INVITE", "sip:b@h"), "INVITE", "sip:b@h",
                     10.0, lookup).status is AuthStatus.BAD_NONCE
    assert ch.verify(None, "INVITE", "sip:b@h", 1.0, lookup).status is AuthStatus.MISSING
    assert ch.verify("Basic Zm9vOmJhcg==", "INVITE", "sip:b@h", 1.0, lookup).status is AuthStatus.MALFORMED


def test_challenger_accepts_stored_ha1_instead_of_password():
    ch = Challenger("roomtone", SECRET)
    table = {"alice": {"SHA-256": compute_ha1("SHA-256", "alice", "roomtone", "wonderland")}}
    client = DigestClient("alice", "wonderland")
    header = client.respond(ch.challenge(0.0), "REGISTER", "sip:roomtone")
    assert isinstance(header, str)
    assert ch.verify(header, "REGISTER", "sip:roomtone", 1.0, lambda u, r: table.get(u)).ok
    # only an MD5 HA1 stored while the client used SHA-256: cannot verify, says so
    md5_only = {"alice": {"MD5": compute_ha1("MD5", "alice", "roomtone", "wonderland")}}
    r = ch.verify(header, "REGISTER", "sip:roomtone", 1.0, lambda u, r: md5_only.get(u))
    assert r.status is AuthStatus.UNKNOWN_USER and "SHA-256" in r.reason


def test_legacy_no_qop_only_when_enabled():
    strict = Challenger("roomtone", SECRET, qop="")
    lenient = Challenger("roomtone", SECRET, qop="", accept_no_qop=True)
    for ch, ok in ((strict, False), (lenient, True)):
        values = ch.challenge(0.0)
        assert "qop" not in values[0]
        header = DigestClient("alice", "wonderland").respond(values, "INVITE", "sip:b@h")
        assert isinstance(header, str) and "nc=" not in header
        assert ch.verify(header, "INVITE", "sip:b@h", 1.0, lookup).ok is ok


def test_parse_credentials_checks_fields():
    good = ('Digest username="a", realm="r", nonce="n", uri="sip:x", response="ABC", qop=auth, '
            'nc=0000000a, cnonce="c"')
    creds = parse_credentials(good)
    assert not isinstance(creds, AuthError)
    assert (creds.nc, creds.response, creds.qop) == (10, "abc", "auth")
    for bad, fragment in [
        (good.replace("nc=0000000a", "nc=12"), "8 hex"),
        (good.replace(', cnonce="c"', ""), "without nc and cnonce"),
        (good.replace('uri="sip:x", ', ""), "no uri"),
        (good.replace("qop=auth", "qop=magic"), "unsupported qop"),
        (good + ", " + good, "exactly one"),
    ]:
        err = parse_credentials(bad)
        assert isinstance(err, AuthError) and fragment in err.reason, (bad, err)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parsers_never_raise(text):
    assert isinstance(parse_challenges(text), list | AuthError)
    assert not isinstance(parse_credentials(text), Exception)
    ch = Challenger("roomtone", SECRET)
    assert ch.verify(text, "INVITE", "sip:b@h", 0.0, lookup).status is not AuthStatus.OK


@settings(max_examples=100, deadline=None)
@given(user=st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
       password=st.text(max_size=20), uri=st.from_regex(r"sip:[a-z0-9]{1,8}@[a-z0-9.]{1,12}", fullmatch=True))
def test_round_trip_any_user(user, password, uri):
    ch = Challenger("roomtone", SECRET)
    header = DigestClient(user, password).respond(ch.challenge(0.0), "MESSAGE", uri)
    assert isinstance(header, str)
    assert ch.verify(header, "MESSAGE", uri, 1.0, lambda u, r: password if u == user else None).ok


# --------------------------------------------------------------------------- real peers


def challenging_uas(challenger: Challenger, results: list, users: dict[str, str], proxy: bool = False) -> RawUas:
    """A loopback UAS that challenges INVITEs with our Challenger and answers with our SDP.

    ``proxy``: challenge as a proxy (407, Proxy-Authenticate / Proxy-Authorization).
    """
    code, reason = (407, "Proxy Authentication Required") if proxy else (401, "Unauthorized")
    ask, answer_header = ("Proxy-Authenticate", "proxy-authorization") if proxy else (
        "WWW-Authenticate", "authorization")

    rtp_port = free_port(span=2, tcp=False, rtp=True)

    def policy(req: RawMessage) -> list[bytes]:
        now = time.time()
        if req.method == "INVITE":
            header = req.header(answer_header)
            if header is None:
                challenge = [(ask, v) for v in challenger.challenge(now)]
                return [response(req, code, reason, extra=challenge)]
            result = challenger.verify(header, "INVITE", req.uri, now, lambda u, r: users.get(u))
            results.append((result, header))
            if not result.ok:
                if result.stale:
                    challenge = [(ask, v) for v in challenger.challenge(now, stale=True)]
                    return [response(req, code, reason, extra=challenge)]
                return [response(req, 403, "Forbidden")]
            offer = sdp.parse_sdp(req.body)
            assert not isinstance(offer, sdp.SdpError), offer
            answer = sdp.build_answer(offer, "127.0.0.1", rtp_port)  # nobody listens: no media needed
            assert isinstance(answer, sdp.Answer), answer
            return [response(req, 200, "OK", body=bytes(answer.sdp), contact=uas.contact)]
        if req.method in ("BYE", "INFO", "OPTIONS"):
            return [response(req, 200, "OK")]
        return []

    uas = RawUas(policy)
    return uas


@pytest.mark.interop
def test_sipp_answers_our_md5_challenge():
    """SIPp 3.6.1 computes MD5 only: offer it alone and check SIPp's answer verifies, then a wrong password fails."""
    results: list = []
    ch = Challenger("roomtone", SECRET, algorithms=("MD5",))
    with challenging_uas(ch, results, {"alice": "wonderland"}) as uas:
        # SIPp's default digest uri is "sip:<remote address>", not the Request-URI; we insist on
        # the Request-URI (RFC 7616 §3.4.6), so tell SIPp which one it is.
        auth_uri = ("-auth_uri", f"service@127.0.0.1:{uas.port}")
        good = run_sipp(uac_scenario(auth_code=401, hold_ms=100), f"127.0.0.1:{uas.port}",
                        auth=("alice", "wonderland"), timeout=20, extra=auth_uri)
        assert good.ok, good.report()
        bad = run_sipp(uac_scenario(auth_code=401, hold_ms=100), f"127.0.0.1:{uas.port}",
                       auth=("alice", "nope"), timeout=10, extra=auth_uri)
        assert not bad.ok
    statuses = [r.status for r, _ in results]
    assert statuses == [AuthStatus.OK, AuthStatus.BAD_PASSWORD], results
    assert "algorithm=MD5" in results[0][1] and "nc=00000001" in results[0][1]


@pytest.mark.interop
def test_sipp_answers_a_proxy_challenge_407():
    results: list = []
    ch = Challenger("roomtone", SECRET, algorithms=MD5_ONLY)
    with challenging_uas(ch, results, {"alice": "wonderland"}, proxy=True) as uas:
        result = run_sipp(uac_scenario(auth_code=407, hold_ms=50), f"127.0.0.1:{uas.port}",
                          auth=("alice", "wonderland"), timeout=10,
                          extra=("-auth_uri", f"service@127.0.0.1:{uas.port}"))
        assert result.ok, result.report()
        assert "Proxy-Authorization: Digest" in result.messages
    assert [r.status for r, _ in results] == [AuthStatus.OK]


@pytest.mark.interop
def test_pjsua2_answers_sha256_challenge_when_offered_first():
    results: list = []
    ch = Challenger("roomtone", SECRET)  # SHA-256 then MD5, as two WWW-Authenticate headers
    with challenging_uas(ch, results, {"alice": "wonderland"}) as uas, \
            pjsua_phone(auth=("alice", "wonderland")) as phone:
        phone.call(uas.uri("bob"))
        phone.wait_state("CONFIRMED")
        phone.hangup()
        phone.wait_state("DISCONNECTED")
    assert [r.status for r, _ in results] == [AuthStatus.OK], results
    assert "algorithm=SHA-256" in results[0][1], results[0][1]


@pytest.mark.interop
def test_baresip_answers_our_challenge_and_wrong_password_is_refused():
    results: list = []
    ch = Challenger("roomtone", SECRET, algorithms=("MD5",))
    with challenging_uas(ch, results, {"alice": "wonderland"}) as uas:
        with baresip_phone(auth=("alice", "wonderland")) as phone:
            phone.dial(uas.uri("bob"))
            phone.wait_event("CALL_ESTABLISHED")
            phone.hangup()
            phone.wait_event("CALL_CLOSED")
        with baresip_phone(auth=("alice", "wrong")) as phone:
            phone.dial(uas.uri("bob"))
            closed = phone.wait_event("CALL_CLOSED")
            assert "403" in str(closed.get("param")), closed
    assert [r.status for r, _ in results] == [AuthStatus.OK, AuthStatus.BAD_PASSWORD], results


@pytest.mark.interop
def test_measured_algorithm_order_compatibility():
    """Facts the MD5_ONLY advice rests on: which offer orders each old client survives.

    pjsua2 answers the first challenge; SIPp 3.6.1 needs MD5 first; baresip 1.0.0 needs MD5 alone.
    If a packaged client changes, this test says so and the advice in auth.py should change too.
    """
    outcomes: dict[tuple[str, tuple[str, ...]], bool] = {}
    for algs in (("SHA-256", "MD5"), ("MD5", "SHA-256"), MD5_ONLY):
        results: list = []
        ch = Challenger("roomtone", SECRET, algorithms=algs)
        with challenging_uas(ch, results, {"alice": "wonderland"}) as uas:
            sipp_result = run_sipp(uac_scenario(auth_code=401, hold_ms=50), f"127.0.0.1:{uas.port}",
                                   auth=("alice", "wonderland"), timeout=5,
                                   extra=("-auth_uri", f"service@127.0.0.1:{uas.port}"))
            outcomes["sipp", algs] = sipp_result.ok
            with baresip_phone(auth=("alice", "wonderland")) as phone:
                phone.dial(uas.uri("bob"))
                ev = phone.events.wait(lambda e: e.get("type") in ("CALL_ESTABLISHED", "CALL_CLOSED"), 10)
                outcomes["baresip", algs] = bool(ev and ev["type"] == "CALL_ESTABLISHED")
        assert all(r.ok for r, _ in results), results  # whatever they sent verified
    assert outcomes == {
        ("sipp", ("SHA-256", "MD5")): False, ("sipp", ("MD5", "SHA-256")): True, ("sipp", MD5_ONLY): True,
        ("baresip", ("SHA-256", "MD5")): False, ("baresip", ("MD5", "SHA-256")): False,
        ("baresip", MD5_ONLY): True,
    }


_SIPP_REGISTRAR = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="SIPp registrar challenging with MD5 qop=auth">
  <recv request="REGISTER"/>
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="sipp.test", nonce="4f1c9a7e22d0b385", algorithm=MD5, qop="auth", opaque="op1"
Content-Length: 0

]]></send>
  <recv request="REGISTER">
    <action><verifyauth assign_to="authvalid" username="alice" password="wonderland"/></action>
  </recv>
  <nop hide="true" test="authvalid" next="ok"/>
  <send><![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <nop next="end"/>
  <label id="ok"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="end"/>
</scenario>
"""


def _register(sock: socket.socket, dest: tuple[str, int], cseq: int, authorization: str | None) -> str:
    port = sock.getsockname()[1]
    lines = [
        f"REGISTER sip:127.0.0.1:{dest[1]} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-rt-{cseq};rport",
        "Max-Forwards: 70",
        f"From: <sip:alice@127.0.0.1>;tag=rt{port}",
        "To: <sip:alice@127.0.0.1>",
        f"Call-ID: reg-{port}@127.0.0.1",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:alice@127.0.0.1:{port}>",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    sock.sendto(("\r\n".join(lines + ["Content-Length: 0", "", ""])).encode(), dest)
    data, _ = sock.recvfrom(65535)
    return data.decode()


@pytest.mark.interop
@pytest.mark.parametrize("password, expected", [("wonderland", 200), ("looking-glass", 403)])
def test_digest_client_answers_sipp_challenge(password, expected):
    """The client side against a real verifier: SIPp's verifyauth checks our Authorization."""
    with sipp(_SIPP_REGISTRAR, timeout=10) as registrar:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", free_port(span=1, tcp=False)))
        sock.settimeout(5)
        try:
            dest = ("127.0.0.1", registrar.port)
            first = _register(sock, dest, 1, None)
            assert first.startswith("SIP/2.0 401")
            values = [line.split(":", 1)[1].strip() for line in first.split("\r\n")
                      if line.lower().startswith("www-authenticate:")]
            client = DigestClient("alice", password)
            uri = f"sip:127.0.0.1:{registrar.port}"
            header = client.respond(values, "REGISTER", uri)
            assert isinstance(header, str) and 'opaque="op1"' in header
            second = _register(sock, dest, 2, header)
            assert second.startswith(f"SIP/2.0 {expected}"), second
        finally:
            sock.close()
