"""Authorising a signalling connection, with the HTTP statuses and messages LiveKit answers with.

LiveKit checks in two places (livekit/livekit ``pkg/service/auth.go`` APIKeyAuthMiddleware, then
``pkg/service/utils.go`` ValidateConnectRequest); clients show these strings to users, and the JS
client's v1→v0 fallback reads the 404 body, so the wording matters:

=====================================================  ======  =================================
condition                                              status  body
=====================================================  ======  =================================
``Authorization`` header without ``Bearer ``           401     invalid authorization header. Must start with Bearer
token that is not a JWT                                401     invalid authorization token
unknown API key                                        401     invalid API key
expired / not yet valid / wrong signature              401     invalid authorization token: <go-jose reason>
no token, or no video grant                            401     no permissions to access the room
``roomJoin`` missing                                   401     permissions denied
no identity                                            400     identity cannot be empty
no room in grant (nor ``?room=``)                      400     no room name
=====================================================  ======  =================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from roomtone.rtc.tokens import Claims, TokenError, TokenVerifier

BEARER = "Bearer "

# The go-jose error strings LiveKit's verifier passes through after "invalid authorization token: ".
_JOSE = {
    "expired": "go-jose/go-jose/jwt: validation failed, token is expired (exp)",
    "not_yet_valid": "go-jose/go-jose/jwt: validation failed, token not valid yet (nbf)",
    "bad_signature": "go-jose/go-jose: error in cryptographic primitive",
}


@dataclass
class AuthFailure(Exception):
    status: int
    message: str
    detail: str = ""  # our own explanation, for the log

    def __str__(self) -> str:
        return self.message


def token_from_request(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer`` (Rust SDKs) or ``?access_token=`` (browsers)."""
    header = headers.get("Authorization")
    if header:
        if not header.startswith(BEARER):
            raise AuthFailure(401, "invalid authorization header. Must start with Bearer ", "malformed header")
        return header[len(BEARER):].strip() or None
    return query.get("access_token") or None


def authorize_join(verifier: TokenVerifier, token: str | None, room_param: str = "") -> tuple[Claims, str]:
    """Claims and the room name for a join, or :class:`AuthFailure` with LiveKit's answer."""
    if not token:
        raise AuthFailure(401, "no permissions to access the room", "no token")
    try:
        claims = verifier.verify(token)
    except TokenError as exc:
        if exc.kind == "unknown_key":
            raise AuthFailure(401, "invalid API key", str(exc)) from None
        if exc.kind in _JOSE:
            raise AuthFailure(401, f"invalid authorization token: {_JOSE[exc.kind]}", str(exc)) from None
        if exc.kind in ("malformed", "missing"):
            raise AuthFailure(401, "invalid authorization token", str(exc)) from None
        raise AuthFailure(401, f"invalid authorization token: {exc}", str(exc)) from None
    if not claims.raw.get("video"):
        raise AuthFailure(401, "no permissions to access the room", "token has no video grant")
    if not claims.video.room_join:
        raise AuthFailure(401, "permissions denied", "token lacks the roomJoin grant")
    if not claims.identity:
        raise AuthFailure(400, "identity cannot be empty", "token has no sub (identity)")
    room = claims.video.room or room_param
    if not room:
        raise AuthFailure(400, "no room name", "token grants no room")
    return claims, room
