"""Mount the HTTP API on an aiohttp application with one call.

Two ways in:

* ``install(app, verifier=..., rooms=..., telephony=...)``: explicit objects (tests, embedding).
* ``server_installer(app)``: the ``roomtone.server`` service-installer signature; it takes the
  room manager, verifier and config from the app keys and opens the telephony store named by
  ``sip.db`` in the config (default ``$XDG_DATA_HOME/roomtone/telephony.sqlite``; ``":memory:"``
  for a throwaway one). Wire it with ``DEFAULT_SERVICES.append(server_installer)``.

``install(app, verifier=..., rooms=..., telephony=...)`` adds
``POST /twirp/livekit.RoomService/*``, ``/twirp/livekit.SIP/*`` and the roomtone extension
``/twirp/roomtone.SIP/*`` (SendDTMF). Every call verifies the bearer token with ``verifier``
before anything else happens.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from aiohttp import web

from roomtone.api.twirp import TwirpServer
from roomtone.rtc.tokens import TokenVerifier

log = logging.getLogger(__name__)

APP_KEY = web.AppKey("roomtone.api", TwirpServer)
TELEPHONY = web.AppKey("roomtone.telephony", object)


def default_db_path() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "roomtone", "telephony.sqlite")


def server_installer(app: web.Application) -> None:
    """Mount the API on an app built by :func:`roomtone.server.build_app`."""
    from roomtone import server  # the assembly layer; imported here so it may import this module
    from roomtone.telephony.service import Telephony

    config = app[server.CONFIG]
    sip_section = config.raw.get("sip") or {}
    if not isinstance(sip_section, dict):
        raise ValueError("config: the sip section must be a mapping")
    db = str(sip_section.get("db") or os.environ.get("ROOMTONE_SIP_DB") or default_db_path())
    telephony = Telephony.open(db)
    log.info("SIP trunks and dispatch rules stored in %s", db)
    app[TELEPHONY] = telephony

    async def _close(_app: web.Application) -> None:
        telephony.close()

    app.on_cleanup.append(_close)
    install(app, verifier=app[server.VERIFIER], rooms=app[server.ROOMS], telephony=telephony)


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
