"""ICE settings for aiortc: host addresses, UDP port range, STUN servers.

aiortc builds its aioice ``Connection`` objects internally and offers no per-PeerConnection hook
for the addresses or ports it binds, so :func:`configure` installs a process-wide subclass of
``aioice.Connection`` into ``aiortc.rtcicetransport``. The subclass gathers host candidates on the
configured addresses (instead of every non-loopback address) and binds each within the configured
port range (trying ports from a random start, skipping ones in use). Server-reflexive candidates
(STUN) and TURN relays keep aioice's own logic. ``ice_servers()`` gives the RTCConfiguration list:
empty by default, so aiortc does not fall back to Google's public STUN server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import aioice
import aioice.ice
import aiortc.rtcicetransport
from aiortc import RTCIceServer

log = logging.getLogger(__name__)


@dataclass
class IceSettings:
    host_addresses: list[str] = field(default_factory=list)
    port_min: int = 0
    port_max: int = 0
    stun_servers: list[str] = field(default_factory=list)


_settings = IceSettings()
_original_connection = aiortc.rtcicetransport.Connection


def _bind_in_range(address: str, port_min: int, port_max: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    span = port_max - port_min + 1
    start = random.randrange(span)
    for i in range(span):
        port = port_min + (start + i) % span
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            continue
        sock.setblocking(False)
        return sock
    raise OSError(f"no free UDP port in {port_min}-{port_max} on {address}")


class ConfiguredConnection(_original_connection):  # type: ignore[misc,valid-type]
    """aioice Connection honouring :data:`_settings` (see the module docstring)."""

    async def get_component_candidates(
        self, component: int, addresses: list[str], timeout: int = 5
    ) -> list[aioice.Candidate]:
        if _settings.host_addresses:
            addresses = list(_settings.host_addresses)
        if not _settings.port_min:
            return list(await super().get_component_candidates(component, addresses, timeout))
        loop = asyncio.get_running_loop()
        candidates: list[aioice.Candidate] = []
        host_protocols = []
        for address in addresses:
            try:
                sock = _bind_in_range(address, _settings.port_min, _settings.port_max)
            except (OSError, ValueError) as exc:
                log.warning("ICE: cannot gather on %s: %s", address, exc)
                continue
            _, protocol = await loop.create_datagram_endpoint(lambda: aioice.ice.StunProtocol(self), sock=sock)
            host, port = protocol.transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = aioice.Candidate(
                foundation=aioice.ice.candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=aioice.ice.candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            candidates.append(protocol.local_candidate)
            host_protocols.append(protocol)
        self._protocols += host_protocols
        if self.stun_server:
            tasks = [
                asyncio.ensure_future(aioice.ice.server_reflexive_candidate(p, self.stun_server))
                for p in host_protocols
                if ipaddress.ip_address(p.local_candidate.host).version == 4
            ]
            if tasks:
                done, pending = await asyncio.wait(tasks, timeout=timeout)
                candidates += [t.result()[0] for t in done if t.exception() is None]
                for t in pending:
                    t.cancel()
        # TURN (if configured) through aioice's own code; no host addresses -> nothing else.
        candidates += await super().get_component_candidates(component, [], timeout)
        return candidates


def configure(
    host_addresses: Sequence[str] = (),
    port_range: tuple[int, int] = (0, 0),
    stun_servers: Sequence[str] = (),
) -> None:
    """Set the process-wide ICE settings (see the module docstring for why process-wide)."""
    global _settings
    _settings = IceSettings(list(host_addresses), port_range[0], port_range[1], list(stun_servers))
    aiortc.rtcicetransport.Connection = ConfiguredConnection  # type: ignore[misc]
    log.info(
        "ICE: host addresses %s, UDP ports %s, STUN %s",
        _settings.host_addresses or "all non-loopback",
        f"{_settings.port_min}-{_settings.port_max}" if _settings.port_min else "ephemeral",
        _settings.stun_servers or "none",
    )


def ice_servers() -> list[RTCIceServer]:
    urls = [s if s.startswith(("stun:", "stuns:")) else f"stun:{s}" for s in _settings.stun_servers]
    return [RTCIceServer(urls=u) for u in urls]


def settings() -> IceSettings:
    return _settings
