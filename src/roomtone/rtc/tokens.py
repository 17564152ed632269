"""LiveKit access tokens: HS256 JWTs verified with pyjwt, and the grants they carry.

The claim layout follows LiveKit's (livekit/protocol ``auth/grants.go``): ``iss`` is the API key,
``sub`` the identity, ``nbf``/``exp`` the validity window, ``video`` the room grants,
``sip`` the SIP grants, plus ``name``, ``metadata``, ``attributes`` and ``kind``.
Every connection and every API call goes through :meth:`TokenVerifier.verify`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt


class TokenError(Exception):
    """A token that must be refused. ``status`` is the HTTP status LiveKit answers with.

    ``kind`` classifies the failure ("missing", "malformed", "unknown_key", "expired",
    "not_yet_valid", "bad_signature", "invalid") so that callers can answer with the exact
    wording LiveKit uses on their endpoint (see ``roomtone.rtc.auth``).
    """

    def __init__(self, message: str, status: int = 401, kind: str = "invalid") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass(frozen=True)
class VideoGrant:
    room_create: bool = False
    room_list: bool = False
    room_record: bool = False
    room_admin: bool = False
    room_join: bool = False
    room: str = ""
    can_publish: bool = True
    can_subscribe: bool = True
    can_publish_data: bool = True
    can_publish_sources: tuple[str, ...] = ()
    can_update_own_metadata: bool = False
    hidden: bool = False
    recorder: bool = False
    agent: bool = False

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> VideoGrant:
        def flag(name: str, default: bool) -> bool:
            value = claims.get(name)
            return default if value is None else bool(value)

        return cls(
            room_create=flag("roomCreate", False),
            room_list=flag("roomList", False),
            room_record=flag("roomRecord", False),
            room_admin=flag("roomAdmin", False),
            room_join=flag("roomJoin", False),
            room=str(claims.get("room") or ""),
            # LiveKit: canPublish/canSubscribe/canPublishData default to true when absent.
            can_publish=flag("canPublish", True),
            can_subscribe=flag("canSubscribe", True),
            can_publish_data=flag("canPublishData", True),
            can_publish_sources=tuple(str(s) for s in claims.get("canPublishSources") or ()),
            can_update_own_metadata=flag("canUpdateOwnMetadata", False),
            hidden=flag("hidden", False),
            recorder=flag("recorder", False),
            agent=flag("agent", False),
        )


@dataclass(frozen=True)
class SIPGrant:
    admin: bool = False
    call: bool = False

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> SIPGrant:
        return cls(admin=bool(claims.get("admin")), call=bool(claims.get("call")))


@dataclass(frozen=True)
class Claims:
    api_key: str
    identity: str
    name: str = ""
    metadata: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    kind: str = ""
    video: VideoGrant = field(default_factory=VideoGrant)
    sip: SIPGrant = field(default_factory=SIPGrant)
    expires_at: float = 0.0
    raw: Mapping[str, Any] = field(default_factory=dict)


class TokenVerifier:
    """Verifies tokens against a set of API key/secret pairs."""

    def __init__(self, keys: Mapping[str, str], leeway: float = 10.0) -> None:
        self._keys = dict(keys)
        self._leeway = leeway

    def verify(self, token: str | None) -> Claims:
        if not token:
            raise TokenError("no authorization token provided", 401, "missing")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid authorization token: {exc}", 401, "malformed") from None
        api_key = unverified.get("iss")
        if not isinstance(api_key, str) or not api_key:
            raise TokenError("invalid authorization token: missing issuer (API key)", 401, "malformed")
        secret = self._keys.get(api_key)
        if secret is None:
            raise TokenError(f"invalid API key: {api_key}", 401, "unknown_key")
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                leeway=self._leeway,
                options={"require": ["exp"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("invalid token: token is expired", 401, "expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("invalid token: token is not valid yet", 401, "not_yet_valid") from None
        except jwt.InvalidSignatureError:
            raise TokenError("invalid token: signature is invalid", 401, "bad_signature") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}", 401) from None
        attributes = claims.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise TokenError("invalid token: attributes must be an object", 401)
        # A correctly signed token can still carry the wrong shapes; refuse them as token errors
        # rather than letting a TypeError surface as a 500.
        for section in ("video", "sip"):
            if not isinstance(claims.get(section) or {}, dict):
                raise TokenError(f"invalid token: {section} grant must be an object", 401)
        sources = (claims.get("video") or {}).get("canPublishSources")
        if sources is not None and not isinstance(sources, list):
            raise TokenError("invalid token: canPublishSources must be a list", 401)
        return Claims(
            api_key=api_key,
            identity=str(claims.get("sub") or ""),
            name=str(claims.get("name") or ""),
            metadata=str(claims.get("metadata") or ""),
            attributes={str(k): str(v) for k, v in attributes.items()},
            kind=str(claims.get("kind") or ""),
            video=VideoGrant.from_claims(claims.get("video") or {}),
            sip=SIPGrant.from_claims(claims.get("sip") or {}),
            expires_at=float(claims.get("exp", 0)),
            raw=claims,
        )


def make_token(
    api_key: str,
    api_secret: str,
    identity: str = "",
    *,
    video: Mapping[str, Any] | None = None,
    sip: Mapping[str, Any] | None = None,
    ttl: float = 6 * 3600,
    now: float | None = None,
    **extra: Any,
) -> str:
    """Mint a token (for the CLI and tests; SDK users mint theirs with livekit-api)."""
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {"iss": api_key, "nbf": int(issued), "exp": int(issued + ttl)}
    if identity:
        claims["sub"] = identity
    if video is not None:
        claims["video"] = dict(video)
    if sip is not None:
        claims["sip"] = dict(sip)
    claims.update(extra)
    return jwt.encode(claims, api_secret, algorithm="HS256")


def generate_dev_keys() -> tuple[str, str]:
    """A fresh API key and secret for ``roomtone serve`` with nothing configured."""
    return "API" + secrets.token_hex(6), secrets.token_urlsafe(32)
