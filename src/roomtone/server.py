"""The aiohttp application: one process serving signalling, and any other HTTP service.

``build_app(config)`` assembles the app; shared objects are reachable by app keys so other
services need no globals: ``app[ROOMS]`` (the :class:`~roomtone.rooms.RoomManager`),
``app[VERIFIER]`` (the :class:`~roomtone.rtc.tokens.TokenVerifier`), ``app[CONFIG]``.

Installing another service (the twirp API, SIP, ...) is one call: a function taking the app, which
adds routes and ``on_startup``/``on_cleanup`` hooks::

    def install(app: web.Application) -> None:
        app.router.add_post("/twirp/livekit.RoomService/{method}", handler)  # uses app[ROOMS]

    app = build_app(config, services=[install])          # per call, or
    DEFAULT_SERVICES.append(install)                     # for every app (see the marked place)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

import roomtone
from roomtone.config import Config
from roomtone.rooms import RoomManager
from roomtone.rtc import ice
from roomtone.rtc.tokens import TokenVerifier
from roomtone.signalling import RtcService

log = logging.getLogger(__name__)

CONFIG = web.AppKey("roomtone.config", Config)
ROOMS = web.AppKey("roomtone.rooms", RoomManager)
VERIFIER = web.AppKey("roomtone.verifier", TokenVerifier)
RTC = web.AppKey("roomtone.rtc", RtcService)

ServiceInstaller = Callable[[web.Application], None]


def _install_api_and_gateway(app: web.Application) -> None:
    # Imported on use: the API layer imports this module for its app keys.
    from roomtone.api.app import server_installer

    server_installer(app)


# Installers run on every app build_app() makes, after the signalling routes: the twirp API
# (RoomService, SIP, roomtone.SIP) and the SIP gateway with its trunk/rule store.
DEFAULT_SERVICES: list[ServiceInstaller] = [_install_api_and_gateway]


def build_app(
    config: Config, *, services: Iterable[ServiceInstaller] = (), default_services: bool = True
) -> web.Application:
    """The app; ``default_services=False`` leaves out DEFAULT_SERVICES (signalling-only tests)."""
    app = web.Application(client_max_size=4 << 20)
    rooms = RoomManager(
        empty_timeout=config.room.empty_timeout,
        departure_timeout=config.room.departure_timeout,
        max_participants=config.room.max_participants,
        max_packet_bytes=config.max_data_packet_bytes,
        auto_create=config.room.auto_create,
    )
    verifier = TokenVerifier(config.keys)
    rtc = RtcService(config, rooms, verifier)
    app[CONFIG] = config
    app[ROOMS] = rooms
    app[VERIFIER] = verifier
    app[RTC] = rtc
    r = config.rtc
    ice.configure(r.ice_host_addresses, (r.port_range_start, r.port_range_end), r.stun_servers)
    rtc.install(app)
    app.router.add_get("/", _health)
    for install in (*(DEFAULT_SERVICES if default_services else ()), *services):
        install(app)
    app.on_shutdown.append(_shutdown)
    return app


async def _health(_request: web.Request) -> web.Response:
    return web.Response(text="OK")  # livekit-server answers "OK" here too


async def _shutdown(app: web.Application) -> None:
    await app[RTC].close()


@dataclass
class RunningServer:
    """A server started inside the current event loop (tests, embedding)."""

    app: web.Application
    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(
    config: Config, *, services: Iterable[ServiceInstaller] = (), default_services: bool = True
) -> RunningServer:
    """Start listening on ``config.bind:config.port`` (port 0 picks a free one)."""
    app = build_app(config, services=services, default_services=default_services)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, config.bind, config.port)
    await site.start()
    port = config.port
    sockets = getattr(site._server, "sockets", None)  # aiohttp exposes the bound port only here
    if sockets:
        port = sockets[0].getsockname()[1]
    log.info("roomtone %s listening on ws://%s:%d", roomtone.__version__, config.bind, port)
    return RunningServer(app, runner, config.bind, port)


async def serve_forever(config: Config, *, on_ready: Callable[[RunningServer], None] | None = None) -> None:
    server = await start(config)
    if on_ready:
        on_ready(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await server.stop()
