"""SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), client and server, sans-IO.

Why our own: the digest code inside Python SIP libraries is MD5-only, keeps no nonce counts, or
raises on odd headers; ``requests``' HTTPDigestAuth is tied to HTTP I/O. This module is pure
functions and small objects: no sockets, no clock (callers pass ``now`` in seconds), no exceptions
out of parsing (bad input gives an :class:`AuthError` value).

Client side (answering a 401/407 from a trunk)::

    client = DigestClient("alice", "secret")
    value = client.respond(resp.headers("WWW-Authenticate"), "INVITE", "sip:bob@example.com")
    if isinstance(value, AuthError): ...            # nothing we can answer; give up, log value.reason
    else: request.set("Authorization", value)       # (Proxy-Authorization for a 407)

``respond`` prefers SHA-512-256, then SHA-256, then MD5 when several challenges are offered, keeps
a nonce count per nonce, and answers ``qop=auth`` (or ``auth-int`` when that is all the server
offers, hashing the body) or the legacy RFC 2069 form when the challenge has no qop.
``should_retry`` tells a UA whether a fresh challenge is worth answering (stale nonce or a realm we
have not answered) or means the password was wrong (stop, do not loop).

Server side (challenging inbound requests)::

    challenger = Challenger(realm="roomtone", secret=os.urandom(32))
    result = challenger.verify(req.header("Authorization"), "INVITE", str(req.uri), now, lookup)
    if not result.ok: send 401 with challenger.challenge(now, stale=result.stale)

Which algorithms to offer is a compatibility choice, measured against real clients
(tests/sip/test_auth.py): pjsua2 2.15 answers the *first* challenge it can compute (SHA-256 when it
comes first); SIPp 3.6.1 answers only MD5 and fails when the first challenge is SHA-256; baresip
1.0.0 fails whenever any SHA-256 challenge is present. The default offers SHA-256 then MD5
(RFC 8760); a trunk facing such clients should use ``algorithms=MD5_ONLY``.

Nonces are stateless: base64url(issue time ‖ random ‖ HMAC-SHA256(secret, realm ‖ time ‖ random)),
so any worker holding the secret can verify them and an expired one is answered with
``stale=true`` (the client retries silently with the same password). The only state is the set
of nonce counts seen per live nonce, to refuse replays; it is pruned as nonces expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

log = logging.getLogger(__name__)

#: algorithm name (canonical spelling) -> hashlib name. SHA-512-256 only when OpenSSL has it.
_HASHES: dict[str, str] = {"MD5": "md5", "SHA-256": "sha256"}
try:
    hashlib.new("sha512_256", b"")
    _HASHES["SHA-512-256"] = "sha512_256"
except ValueError:  # pragma: no cover - depends on the OpenSSL build
    pass

#: preference when a server offers several challenges: strongest first (RFC 7616 §3.7).
PREFERENCE: tuple[str, ...] = ("SHA-512-256", "SHA-256", "MD5")

#: for peers that break on SHA-256 challenges (see the module docstring)
MD5_ONLY: tuple[str, ...] = ("MD5",)

SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(
    a + s for a in PREFERENCE if a in _HASHES for s in ("", "-sess")
)

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_MAX_HEADER = 8192


@dataclass(frozen=True)
class AuthError:
    """A header we cannot use; ``reason`` says why in words fit for a log line or a reason phrase."""

    reason: str


@dataclass(frozen=True)
class Challenge:
    """One ``Digest`` challenge from a WWW-Authenticate or Proxy-Authenticate header."""

    realm: str
    nonce: str
    algorithm: str = "MD5"  # canonical spelling, e.g. "SHA-256-sess"
    qop: tuple[str, ...] = ()  # lower-case options offered, e.g. ("auth", "auth-int")
    opaque: str | None = None
    stale: bool = False
    userhash: bool = False
    domain: str | None = None
    algorithm_given: bool = True  # False when the header had no algorithm= (MD5 by default)


@dataclass(frozen=True)
class Credentials:
    """A parsed ``Digest`` Authorization / Proxy-Authorization header value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: int | None = None
    cnonce: str | None = None
    opaque: str | None = None
    userhash: bool = False


def _canonical_algorithm(name: str | None) -> str | None:
    """Case-insensitive algorithm name -> canonical spelling, or None if we cannot compute it."""
    if name is None:
        return "MD5"
    upper = name.strip().upper()
    base, sess = (upper[:-5], "-sess") if upper.endswith("-SESS") else (upper, "")
    return base + sess if base in _HASHES else None


def _hash(algorithm: str, data: str | bytes) -> str:
    base = algorithm[:-5] if algorithm.endswith("-sess") else algorithm
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(_HASHES[base], raw).hexdigest()


# --------------------------------------------------------------------------- parsing


def _parse_auth_list(text: str) -> list[tuple[str, dict[str, str]]] | AuthError:
    """Split a header value into ``[(scheme, {param: value})]``; several challenges may share one value.

    Liberal where real servers are sloppy: unquoted values may hold any character up to a comma
    or space (nonces with ``/`` ``+`` ``=``), parameter names are case-insensitive. Strict where it
    matters: unterminated quotes, duplicate parameters and parameters before a scheme are errors.
    """
    if not isinstance(text, str):
        return AuthError("header value is not text")
    if len(text) > _MAX_HEADER:
        return AuthError(f"header value longer than {_MAX_HEADER} characters")
    result: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] in _TCHAR:
            i += 1
        word = text[start:i]
        if not word:
            return AuthError(f"unexpected character {text[i]!r} at offset {i}")
        j = i
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == "=":
            if not result:
                return AuthError(f"parameter {word!r} before any auth scheme")
            i = j + 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                i += 1
                chars: list[str] = []
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(text[i])
                    i += 1
                if i >= n:
                    return AuthError(f"unterminated quoted string in parameter {word!r}")
                i += 1
                value = "".join(chars)
            else:
                vstart = i
                while i < n and text[i] not in " \t\r\n,":
                    i += 1
                value = text[vstart:i]
            params = result[-1][1]
            key = word.lower()
            if key in params:
                return AuthError(f"duplicate parameter {key!r}")
            params[key] = value
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] != ",":
                return AuthError(f"expected ',' after parameter {word!r}, found {text[i]!r}")
        else:
            result.append((word, {}))
            i = j
    if not result:
        return AuthError("empty header value")
    return result


def _challenge_from(params: dict[str, str]) -> Challenge | AuthError:
    realm = params.get("realm")
    nonce = params.get("nonce")
    if realm is None:
        return AuthError("challenge has no realm")
    if not nonce:
        return AuthError("challenge has no nonce")
    algorithm = _canonical_algorithm(params.get("algorithm"))
    if algorithm is None:
        return AuthError(f"unsupported algorithm {params.get('algorithm')!r}")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=realm,
        nonce=nonce,
        algorithm=algorithm,
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").strip().lower() == "true",
        userhash=params.get("userhash", "").strip().lower() == "true",
        domain=params.get("domain"),
        algorithm_given="algorithm" in params,
    )


def parse_challenges(values: str | Iterable[str]) -> list[Challenge] | AuthError:
    """Every usable Digest challenge in one or more WWW-/Proxy-Authenticate header values.

    Non-Digest schemes and Digest challenges with unknown algorithms are skipped (logged); an
    :class:`AuthError` comes back only when nothing usable remains, with the reasons joined.
    """
    if isinstance(values, str):
        values = [values]
    found: list[Challenge] = []
    problems: list[str] = []
    try:
        items = list(values)
    except TypeError:
        return AuthError("header values are not a list of text")
    for value in items:
        parsed = _parse_auth_list(value)
        if isinstance(parsed, AuthError):
            problems.append(parsed.reason)
            continue
        for scheme, params in parsed:
            if scheme.lower() != "digest":
                problems.append(f"scheme {scheme!r} is not Digest")
                continue
            ch = _challenge_from(params)
            if isinstance(ch, AuthError):
                problems.append(ch.reason)
            else:
                found.append(ch)
    if found:
        if problems:
            log.debug("ignored parts of auth challenge: %s", "; ".join(problems))
        return found
    return AuthError("; ".join(problems) or "no challenge")


def choose_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """The challenge to answer: strongest algorithm first, then the server's order."""
    best: Challenge | None = None
    best_rank = len(PREFERENCE)
    for ch in challenges:
        base = ch.algorithm[:-5] if ch.algorithm.endswith("-sess") else ch.algorithm
        rank = PREFERENCE.index(base) if base in PREFERENCE else len(PREFERENCE)
        if rank < best_rank:
            best, best_rank = ch, rank
    return best


def parse_credentials(value: str) -> Credentials | AuthError:
    """Parse one ``Digest`` Authorization / Proxy-Authorization header value."""
    parsed = _parse_auth_list(value)
    if isinstance(parsed, AuthError):
        return parsed
    if len(parsed) != 1:
        return AuthError("expected exactly one set of credentials")
    scheme, p = parsed[0]
    if scheme.lower() != "digest":
        return AuthError(f"scheme {scheme!r} is not Digest")
    for name in ("username", "realm", "nonce", "uri", "response"):
        if name not in p:
            return AuthError(f"credentials have no {name}")
    algorithm = _canonical_algorithm(p.get("algorithm"))
    if algorithm is None:
        return AuthError(f"unsupported algorithm {p.get('algorithm')!r}")
    qop = p.get("qop")
    nc: int | None = None
    if qop is not None:
        qop = qop.strip().lower()
        if qop not in ("auth", "auth-int"):
            return AuthError(f"unsupported qop {qop!r}")
        raw_nc = p.get("nc")
        if raw_nc is None or p.get("cnonce") is None:
            return AuthError("qop given without nc and cnonce")
        if len(raw_nc) != 8 or any(c not in "0123456789abcdefABCDEF" for c in raw_nc):
            return AuthError(f"nc {raw_nc!r} is not 8 hex digits")
        nc = int(raw_nc, 16)
    return Credentials(
        username=p["username"],
        realm=p["realm"],
        nonce=p["nonce"],
        uri=p["uri"],
        response=p["response"].lower(),
        algorithm=algorithm,
        qop=qop,
        nc=nc,
        cnonce=p.get("cnonce"),
        opaque=p.get("opaque"),
        userhash=p.get("userhash", "").strip().lower() == "true",
    )


# --------------------------------------------------------------------------- computing


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """``H(username:realm:password)``, the value a server may store instead of the password."""
    return _hash(algorithm, f"{username}:{realm}:{password}")


def compute_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: int | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (RFC 2069 form when ``qop`` is None).

    ``ha1`` is the plain ``H(user:realm:pass)``; the ``-sess`` step is applied here.
    """
    if algorithm.endswith("-sess"):
        ha1 = _hash(algorithm, f"{ha1}:{nonce}:{cnonce or ''}")
    if qop == "auth-int":
        ha2 = _hash(algorithm, f"{method}:{uri}:{_hash(algorithm, body)}")
    else:
        ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop is None:
        return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{nc or 0:08x}:{cnonce or ''}:{qop}:{ha2}")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- client


@dataclass
class DigestClient:
    """Answers digest challenges for one set of credentials, counting uses of each nonce.

    ``cnonce_factory`` is injectable so tests can reproduce RFC vectors.
    """

    username: str
    password: str
    cnonce_factory: Callable[[], str] = field(default=lambda: secrets.token_hex(12))
    _nc: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    _answered: dict[str, Challenge] = field(default_factory=dict, repr=False)

    def authorize(self, challenge: Challenge, method: str, uri: str, body: bytes = b"") -> str:
        """An Authorization header value answering ``challenge`` for this request."""
        qop: str | None = None
        if "auth" in challenge.qop:
            qop = "auth"
        elif "auth-int" in challenge.qop:
            qop = "auth-int"
        key = (challenge.realm, challenge.nonce)
        nc = self._nc.get(key, 0) + 1
        self._nc[key] = nc
        cnonce = self.cnonce_factory() if (qop or challenge.algorithm.endswith("-sess")) else None
        ha1 = compute_ha1(challenge.algorithm, self.username, challenge.realm, self.password)
        response = compute_response(
            algorithm=challenge.algorithm, ha1=ha1, nonce=challenge.nonce, method=method, uri=uri,
            qop=qop, nc=nc, cnonce=cnonce, body=body,
        )
        username = self.username
        if challenge.userhash:
            username = _hash(challenge.algorithm, f"{self.username}:{challenge.realm}")
        parts = [
            f"username={_quote(username)}",
            f"realm={_quote(challenge.realm)}",
            f"nonce={_quote(challenge.nonce)}",
            f"uri={_quote(uri)}",
            f"response={_quote(response)}",
        ]
        if challenge.algorithm_given or challenge.algorithm != "MD5":
            parts.append(f"algorithm={challenge.algorithm}")
        if qop:
            parts += [f"cnonce={_quote(cnonce or '')}", f"qop={qop}", f"nc={nc:08x}"]
        elif cnonce:
            parts.append(f"cnonce={_quote(cnonce)}")
        if challenge.opaque is not None:
            parts.append(f"opaque={_quote(challenge.opaque)}")
        if challenge.userhash:
            parts.append("userhash=true")
        self._answered[challenge.realm] = challenge
        return "Digest " + ", ".join(parts)

    def respond(
        self, values: str | Iterable[str], method: str, uri: str, body: bytes = b""
    ) -> str | AuthError:
        """Parse challenge header value(s), pick the best, and answer it."""
        parsed = parse_challenges(values)
        if isinstance(parsed, AuthError):
            return parsed
        chosen = choose_challenge(parsed)
        if chosen is None:  # pragma: no cover - parse_challenges only returns supported ones
            return AuthError("no supported challenge")
        return self.authorize(chosen, method, uri, body)

    def should_retry(self, values: str | Iterable[str]) -> bool:
        """True if answering these challenges can help: a stale nonce or a realm not yet tried.

        A fresh, non-stale challenge for a realm we already answered means our credentials were
        refused; answering again would loop.
        """
        parsed = parse_challenges(values)
        if isinstance(parsed, AuthError):
            return False
        return any(ch.stale or ch.realm not in self._answered for ch in parsed)

    def preemptive(self, method: str, uri: str, realm: str | None = None, body: bytes = b"") -> str | None:
        """Re-use the last answered challenge (next nonce count) for a new request, or None."""
        if realm is None:
            if not self._answered:
                return None
            realm = next(reversed(self._answered))
        ch = self._answered.get(realm)
        return self.authorize(ch, method, uri, body) if ch else None


# --------------------------------------------------------------------------- server


class AuthStatus(Enum):
    OK = "ok"
    MISSING = "missing"  # no credentials: challenge
    MALFORMED = "malformed"  # unparsable header or bad fields: 400 or challenge again
    STALE = "stale"  # our nonce, but expired: challenge with stale=true
    BAD_NONCE = "bad-nonce"  # not a nonce we issued (forged, other realm, other secret)
    REPLAY = "replay"  # nonce count already used
    UNKNOWN_USER = "unknown-user"
    BAD_PASSWORD = "bad-password"  # response digest does not match


@dataclass(frozen=True)
class AuthResult:
    status: AuthStatus
    reason: str
    username: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK

    @property
    def stale(self) -> bool:
        """Whether the next challenge should carry ``stale=true``."""
        return self.status is AuthStatus.STALE


#: what a lookup may return: a password, a mapping of base algorithm ("MD5", "SHA-256") to HA1 hex,
#: or None for an unknown user.
Secret = str | Mapping[str, str] | None


class Challenger:
    """Issues stateless nonces and verifies digest credentials for one realm.

    ``nonce_ttl``: seconds a nonce is good for; after that the client is told ``stale=true``.
    ``algorithms``: challenges offered, in order (one header value each); clients pick one.
    ``accept_no_qop``: accept RFC 2069 responses without qop/nc (replays then cannot be detected).
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        nonce_ttl: float = 300.0,
        algorithms: Iterable[str] = ("SHA-256", "MD5"),
        qop: str = "auth",
        accept_no_qop: bool = False,
        max_nc_per_nonce: int = 10_000,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("secret must be at least 16 bytes")
        algs = []
        for a in algorithms:
            canon = _canonical_algorithm(a)
            if canon is None:
                raise ValueError(f"unsupported algorithm {a!r}")
            algs.append(canon)
        if not algs:
            raise ValueError("at least one algorithm is required")
        self.realm = realm
        self.algorithms = tuple(algs)
        self.qop = qop
        self.nonce_ttl = nonce_ttl
        self.accept_no_qop = accept_no_qop
        self.max_nc_per_nonce = max_nc_per_nonce
        self._secret = secret
        self._seen: dict[str, tuple[float, set[int]]] = {}  # nonce -> (issued, ncs used)

    # nonce = b64url(ms:8 bytes | random:8 | mac:16)
    def make_nonce(self, now: float) -> str:
        body = struct.pack(">Q", max(0, int(now * 1000))) + secrets.token_bytes(8)
        mac = hmac.new(self._secret, self.realm.encode() + body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def _nonce_issued(self, nonce: str) -> float | None:
        """Issue time of a nonce we made, or None if it is not ours."""
        if len(nonce) != 43:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (ValueError, TypeError):
            return None
        body, mac = raw[:16], raw[16:]
        want = hmac.new(self._secret, self.realm.encode() + body, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, want):
            return None
        return float(struct.unpack(">Q", body[:8])[0]) / 1000.0

    def challenge(self, now: float, stale: bool = False) -> list[str]:
        """WWW-Authenticate (or Proxy-Authenticate) header values, one per offered algorithm."""
        nonce = self.make_nonce(now)
        values = []
        for alg in self.algorithms:
            parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(nonce)}", f"algorithm={alg}"]
            if self.qop:
                parts.append(f'qop="{self.qop}"')
            if stale:
                parts.append("stale=true")
            values.append("Digest " + ", ".join(parts))
        return values

    def _prune(self, now: float) -> None:
        dead = [n for n, (issued, _) in self._seen.items() if now - issued > self.nonce_ttl]
        for n in dead:
            del self._seen[n]

    def verify(
        self,
        header: str | None,
        method: str,
        uri: str,
        now: float,
        lookup: Callable[[str, str], Secret],
        body: bytes = b"",
    ) -> AuthResult:
        """Check one Authorization header for a request. Never raises on bad input."""
        if not header:
            return AuthResult(AuthStatus.MISSING, "no credentials")
        creds = parse_credentials(header)
        if isinstance(creds, AuthError):
            return AuthResult(AuthStatus.MALFORMED, creds.reason)
        user = creds.username
        if creds.realm != self.realm:
            return AuthResult(AuthStatus.MALFORMED, f"realm {creds.realm!r} is not {self.realm!r}", user)
        if creds.algorithm not in self.algorithms:
            return AuthResult(AuthStatus.MALFORMED, f"algorithm {creds.algorithm} was not offered", user)
        if creds.userhash:
            return AuthResult(AuthStatus.MALFORMED, "userhash was not offered", user)
        if creds.uri != uri:
            return AuthResult(AuthStatus.MALFORMED, f"digest uri {creds.uri!r} is not the request-URI", user)
        if creds.qop is None and not self.accept_no_qop:
            return AuthResult(AuthStatus.MALFORMED, "qop is required", user)
        if creds.qop is not None and self.qop and creds.qop not in self.qop.split(","):
            return AuthResult(AuthStatus.MALFORMED, f"qop {creds.qop} was not offered", user)
        issued = self._nonce_issued(creds.nonce)
        if issued is None:
            return AuthResult(AuthStatus.BAD_NONCE, "nonce was not issued by this server", user)
        if issued - now > 5.0:
            return AuthResult(AuthStatus.BAD_NONCE, "nonce is from the future", user)
        if now - issued > self.nonce_ttl:
            return AuthResult(AuthStatus.STALE, "nonce expired", user)
        secret = lookup(user, self.realm)
        if secret is None:
            return AuthResult(AuthStatus.UNKNOWN_USER, f"unknown user {user!r}", user)
        base = creds.algorithm[:-5] if creds.algorithm.endswith("-sess") else creds.algorithm
        if isinstance(secret, str):
            ha1 = compute_ha1(base, user, self.realm, secret)
        else:
            stored = secret.get(base)
            if stored is None:
                return AuthResult(AuthStatus.UNKNOWN_USER, f"no {base} HA1 stored for {user!r}", user)
            ha1 = stored.lower()
        expected = compute_response(
            algorithm=creds.algorithm, ha1=ha1, nonce=creds.nonce, method=method, uri=creds.uri,
            qop=creds.qop, nc=creds.nc, cnonce=creds.cnonce, body=body,
        )
        if not hmac.compare_digest(expected, creds.response):
            return AuthResult(AuthStatus.BAD_PASSWORD, "response digest does not match", user)
        # Replay check only after the digest is proven, so forged headers cannot fill the table.
        self._prune(now)
        if creds.nc is not None:
            _, used = self._seen.setdefault(creds.nonce, (issued, set()))
            if creds.nc in used:
                return AuthResult(AuthStatus.REPLAY, f"nonce count {creds.nc} already used", user)
            if len(used) >= self.max_nc_per_nonce:
                return AuthResult(AuthStatus.STALE, "nonce used too often", user)
            used.add(creds.nc)
        return AuthResult(AuthStatus.OK, "ok", user)
