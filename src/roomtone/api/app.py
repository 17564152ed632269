"""Mount the HTTP API on an aiohttp application with one call.

``install(app, verifier=..., rooms=..., telephony=...)`` adds
``POST /twirp/livekit.RoomService/*``, ``/twirp/livekit.SIP/*`` and the roomtone extension
``/twirp/roomtone.SIP/*`` (SendDTMF). Every call verifies the bearer token with ``verifier``
before anything else happens.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from roomtone.api.twirp import TwirpServer
from roomtone.rtc.tokens import TokenVerifier

log = logging.getLogger(__name__)

APP_KEY = web.AppKey("roomtone.api", TwirpServer)


def install(
    app: web.Application,
    *,
    verifier: TokenVerifier,
    rooms: Any = None,
    telephony: Any = None,
    prefix: str = "/twirp",
) -> TwirpServer:
    """Register the twirp services on ``app``; returns the server (its ``services`` are inspectable).

    ``rooms`` is the room manager (RoomService is mounted when given), ``telephony`` a
    :class:`roomtone.telephony.service.Telephony` (SIP services are mounted when given).
    """
    server = TwirpServer(verifier, prefix=prefix)
    if rooms is not None:
        from roomtone.api.room_service import build_service as build_rooms

        server.add(build_rooms(rooms, telephony))
    if telephony is not None:
        from roomtone.api.dtmf_service import build_service as build_dtmf
        from roomtone.api.sip_service import build_service as build_sip

        server.add(build_sip(telephony))
        server.add(build_dtmf(telephony))
    server.install(app)
    app[APP_KEY] = server
    log.info("twirp API mounted at %s: %s", prefix, ", ".join(sorted(server.services)))
    return server
