"""Mount the HTTP API on an aiohttp application with one call.

Two ways in:

* ``install(app, verifier=..., rooms=..., telephony=...)``: explicit objects (tests, embedding).
* ``server_installer(app)``: the ``roomtone.server`` service-installer signature; it takes the
  room manager, verifier and config from the app keys and opens the telephony store named by
  ``sip.db`` in the config (default ``$XDG_DATA_HOME/roomtone/telephony.sqlite``; ``":memory:"``
  for a throwaway one). Wire it with ``DEFAULT_SERVICES.append(server_installer)``.
  It also starts the SIP gateway (:class:`roomtone.telephony.gateway.SipGateway`) when the app
  starts, configured by the ``sip`` section (see :func:`gateway_config`); ``sip.enabled: false``
  leaves it off. A gateway that cannot bind its port is logged as an error and the rest of the
  server keeps running.

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
GATEWAY = web.AppKey("roomtone.sip_gateway", object)


def default_db_path() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "roomtone", "telephony.sqlite")


def gateway_config(section: dict[str, Any], bind: str) -> Any:
    """``GatewayConfig`` from the YAML ``sip`` section::

        sip:
          db: /var/lib/roomtone/telephony.sqlite   # or redis://host:6379/0 (rediss:// for TLS; ?key_prefix=roomtone:)
          enabled: true
          host: 127.0.0.1            # default: the server's bind address
          port: 5060
          transports: [UDP, TCP]
          rtp_port_range_start: 10000
          rtp_port_range_end: 20000
          realm: roomtone
          digest_algorithms: [SHA-256, MD5]   # offered strongest first; [MD5] for MD5-only UAs
          accept_without_trunk: false
          dtmf_mode: auto            # default for trunks without roomtone options
          allow_sip_to_sip: false
          publish_pre_join: true
          prompt_dir: /etc/roomtone/prompts
          pin: {max_digits: 16, inter_digit_timeout: 5, overall_timeout: 60, retries: 2}
    """
    from roomtone.telephony.gateway import GatewayConfig
    from roomtone.telephony.options import DTMF_MODES, TrunkOptions
    from roomtone.telephony.pin import PinConfig

    known = {
        "db", "enabled", "host", "port", "transports", "rtp_port_range_start", "rtp_port_range_end", "realm", "digest_algorithms",
        "accept_without_trunk", "dtmf_mode", "allow_sip_to_sip", "publish_pre_join", "prompt_dir", "pin",
    }
    unknown = set(section) - known
    if unknown:
        raise ValueError(f"config sip: unknown key(s) {sorted(unknown)}")
    mode = str(section.get("dtmf_mode", "auto"))
    if mode not in DTMF_MODES:
        raise ValueError(f"config sip.dtmf_mode: {mode!r} is not one of {', '.join(DTMF_MODES)}")
    pin_section = section.get("pin") or {}
    if not isinstance(pin_section, dict):
        raise ValueError("config sip.pin must be a mapping")
    try:
        pin = PinConfig(**pin_section)
    except TypeError as exc:
        raise ValueError(f"config sip.pin: {exc}") from None
    return GatewayConfig(
        sip_host=str(section.get("host") or bind),
        sip_port=int(section.get("port", 5060)),
        transports=tuple(str(t).upper() for t in section.get("transports", ("UDP", "TCP"))),
        rtp_ports=(int(section.get("rtp_port_range_start", 10000)), int(section.get("rtp_port_range_end", 20000))),
        realm=str(section.get("realm", "roomtone")),
        digest_algorithms=tuple(str(a).upper() for a in section.get("digest_algorithms", ("SHA-256", "MD5"))),
        accept_without_trunk=bool(section.get("accept_without_trunk", False)),
        pin=pin,
        prompt_dir=section.get("prompt_dir"),
        trunk_defaults=TrunkOptions(
            dtmf_mode=mode,
            allow_sip_to_sip=bool(section.get("allow_sip_to_sip", False)),
            publish_pre_join=bool(section.get("publish_pre_join", True)),
        ),
    )


def server_installer(app: web.Application) -> None:
    """Mount the API on an app built by :func:`roomtone.server.build_app`."""
    from roomtone import server  # the assembly layer; imported here so it may import this module
    from roomtone.telephony.service import Telephony

    config = app[server.CONFIG]
    sip_section = config.raw.get("sip") or {}
    if not isinstance(sip_section, dict):
        raise ValueError("config: the sip section must be a mapping")
    db = str(sip_section.get("db") or os.environ.get("ROOMTONE_SIP_DB") or default_db_path())
    from roomtone.telephony.store import describe, open_store

    telephony = Telephony(open_store(db))  # redis:// or rediss:// selects Redis, else a SQLite path
    log.info("SIP trunks and dispatch rules stored in %s", describe(db))
    app[TELEPHONY] = telephony
    store: Any = telephony.store

    async def _check_store(_app: web.Application) -> None:
        """A networked store (Redis) that is down is logged at startup; the server still runs."""
        from roomtone.telephony.store import StoreError

        try:
            await store.ping()
        except StoreError as exc:
            log.error("telephony store not reachable at startup (%s); SIP trunk/rule calls fail until it is", exc)

    async def _close(_app: web.Application) -> None:
        if hasattr(store, "aclose"):
            await store.aclose()  # the Redis client's sockets belong to this loop
        else:
            telephony.close()

    if hasattr(store, "ping"):
        app.on_startup.append(_check_store)

    install(app, verifier=app[server.VERIFIER], rooms=app[server.ROOMS], telephony=telephony)
    if sip_section.get("enabled", True):
        cfg = gateway_config(sip_section, config.bind)

        async def _start_gateway(app: web.Application) -> None:
            from roomtone.telephony.gateway import SipGateway

            gateway = SipGateway(telephony, app[server.ROOMS], cfg)
            try:
                await gateway.start()
            except OSError as exc:
                log.error("SIP gateway not started: cannot listen on %s:%d: %s", cfg.sip_host, cfg.sip_port, exc)
                await gateway.ua.close()
                return
            app[GATEWAY] = gateway

        async def _stop_gateway(app: web.Application) -> None:
            gateway: Any = app.get(GATEWAY)
            if gateway is not None:
                await gateway.close()

        app.on_startup.append(_start_gateway)
        app.on_shutdown.append(_stop_gateway)
    app.on_cleanup.append(_close)


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
