"""A small twirp server on aiohttp.

Twirp (https://twitchtv.github.io/twirp/docs/spec_v7.html) is plain HTTP: ``POST
/twirp/<package>.<Service>/<Method>`` with a protobuf (``application/protobuf``) or JSON
(``application/json``) body, a response in the same encoding, and errors as a JSON object
``{"code": ..., "msg": ..., "meta": {...}}`` with an HTTP status fixed per code.

There is no maintained Python twirp *server* library for aiohttp, and the protocol is a page
long, so it is written here. Message (de)serialisation is google.protobuf's own: binary
``FromString``/``SerializeToString`` and ``json_format`` (protojson), which accepts both the
proto field names (``sip_trunk_id``) and their JSON names (``sipTrunkId``) on input, like Go's
protojson does for LiveKit's server.

Every handler receives the verified :class:`~roomtone.rtc.tokens.Claims` of the caller: the
:class:`TwirpServer` checks the bearer token on *every* call before decoding the body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from roomtone.rtc.tokens import Claims, TokenError, TokenVerifier

log = logging.getLogger(__name__)

#: twirp error code -> HTTP status (twirp spec v7, "Error codes").
HTTP_STATUS: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

PROTOBUF = "application/protobuf"
JSON = "application/json"
MAX_BODY = 4 * 1024 * 1024


class TwirpError(Exception):
    """An error answered to the client as twirp JSON; ``meta`` values must be strings."""

    def __init__(self, code: str, msg: str, meta: dict[str, str] | None = None) -> None:
        if code not in HTTP_STATUS:
            raise ValueError(f"not a twirp error code: {code}")
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.meta = dict(meta or {})

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.meta:
            body["meta"] = self.meta
        return body


def invalid_argument(msg: str) -> TwirpError:
    return TwirpError("invalid_argument", msg)


def not_found(msg: str) -> TwirpError:
    return TwirpError("not_found", msg)


def permission_denied(msg: str) -> TwirpError:
    return TwirpError("permission_denied", msg)


Handler = Callable[[Claims, Any], Awaitable[Message]]


@dataclass
class Method:
    name: str
    request_type: type[Message]
    handler: Handler


@dataclass
class Service:
    """One twirp service (``livekit.RoomService``, ``livekit.SIP``, ``roomtone.SIP`` ...)."""

    full_name: str
    methods: dict[str, Method] = field(default_factory=dict)

    def method(self, name: str, request_type: type[Message], handler: Handler) -> None:
        self.methods[name] = Method(name, request_type, handler)


def error_response(err: TwirpError) -> web.Response:
    return web.Response(
        status=err.status,
        body=json.dumps(err.to_json()).encode(),
        content_type=JSON,
    )


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class TwirpServer:
    """Routes ``POST {prefix}/<service>/<method>`` to registered services."""

    def __init__(self, verifier: TokenVerifier, prefix: str = "/twirp") -> None:
        self.verifier = verifier
        self.prefix = prefix.rstrip("/")
        self.services: dict[str, Service] = {}

    def add(self, service: Service) -> None:
        self.services[service.full_name] = service

    def install(self, app: web.Application) -> None:
        app.router.add_route("*", self.prefix + "/{service}/{method}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        service_name = request.match_info["service"]
        method_name = request.match_info["method"]
        try:
            return await self._handle(request, service_name, method_name)
        except TwirpError as err:
            level = logging.ERROR if err.status >= 500 else logging.INFO
            log.log(level, "twirp %s/%s -> %s: %s", service_name, method_name, err.code, err.msg)
            return error_response(err)
        except Exception:  # a bug must become a twirp "internal", never a dropped connection
            log.exception("twirp %s/%s failed", service_name, method_name)
            return error_response(TwirpError("internal", "internal server error"))

    async def _handle(self, request: web.Request, service_name: str, method_name: str) -> web.Response:
        if request.method != "POST":
            raise TwirpError("bad_route", f"unsupported method {request.method} (only POST is allowed)")
        service = self.services.get(service_name)
        method = service.methods.get(method_name) if service else None
        if method is None:
            raise TwirpError("bad_route", f"no handler for path {request.path}")
        content_type = request.content_type.lower()
        if content_type not in (PROTOBUF, JSON):
            raise TwirpError(
                "bad_route", f"unexpected Content-Type: {request.headers.get('Content-Type', '')!r}"
            )
        try:
            claims = self.verifier.verify(_bearer(request))
        except TokenError as exc:
            raise TwirpError("unauthenticated", str(exc)) from None
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise TwirpError("malformed", f"request body too large ({request.content_length} bytes, limit {MAX_BODY})")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:  # the app's client_max_size is the lower limit
            raise TwirpError("malformed", f"request body too large ({exc.text or 'over the limit'})") from None
        if len(raw) > MAX_BODY:
            raise TwirpError("malformed", f"request body too large ({len(raw)} bytes)")
        message = method.request_type()
        try:
            if content_type == PROTOBUF:
                message.ParseFromString(raw)
            else:
                json_format.Parse(raw.decode("utf-8") if raw else "{}", message, ignore_unknown_fields=False)
        except (DecodeError, json_format.ParseError, UnicodeDecodeError, ValueError) as exc:
            raise TwirpError(
                "malformed", f"the {content_type} request could not be decoded as {method.request_type.__name__}: {exc}"
            ) from None
        log.debug("twirp %s/%s by %s", service_name, method_name, claims.api_key)
        response = await method.handler(claims, message)
        if content_type == PROTOBUF:
            return web.Response(body=response.SerializeToString(), content_type=PROTOBUF)
        text = json_format.MessageToJson(response, indent=None)
        return web.Response(body=text.encode(), content_type=JSON)
