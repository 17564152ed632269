"""Server configuration: embedded defaults < YAML file < environment < command-line flags.

The YAML layout follows livekit-server's where the two overlap, so an existing ``livekit.yaml``
mostly works::

    port: 7880
    bind_addresses: [127.0.0.1]
    keys: {APIkey: secret}          # or env LIVEKIT_API_KEY + LIVEKIT_API_SECRET, or LIVEKIT_KEYS="k: s"
    rtc:
      port_range_start: 50000       # UDP ports for ICE; 0/0 = any ephemeral port
      port_range_end: 60000
      ice_host_addresses: []        # addresses to gather host candidates on; [] = all but loopback
      stun_servers: []              # ["stun.l.google.com:19302"]; none by default
      single_pc: true               # serve /rtc/v1 (single PeerConnection); false -> 404, clients fall back
      subscriber_primary: true      # v0: server offers a subscriber PC carrying _reliable/_lossy
      trickle_server_candidates: true   # also send our candidates as trickle messages
      ping_interval: 5              # seconds; must be > 0
      ping_timeout: 15              # seconds; must be > ping_interval
    room:
      auto_create: true
      empty_timeout: 300
      departure_timeout: 20
      max_participants: 0
    limits:
      max_data_packet_bytes: 65536
    # other sections (sip:, ...) are kept in Config.raw for the services that read them

With no keys anywhere, :func:`ensure_keys` generates development credentials (the caller prints
them), like ``livekit-server --dev``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from roomtone.rtc.tokens import generate_dev_keys

log = logging.getLogger(__name__)

DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 7880


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and key."""


@dataclass
class RtcConfig:
    port_range_start: int = 0
    port_range_end: int = 0
    ice_host_addresses: list[str] = field(default_factory=list)
    stun_servers: list[str] = field(default_factory=list)
    single_pc: bool = True
    subscriber_primary: bool = True
    trickle_server_candidates: bool = True
    ping_interval: int = 5
    ping_timeout: int = 15


@dataclass
class RoomDefaults:
    auto_create: bool = True
    empty_timeout: int = 300
    departure_timeout: int = 20
    max_participants: int = 0


@dataclass
class Config:
    bind: str = DEFAULT_BIND
    port: int = DEFAULT_PORT
    keys: dict[str, str] = field(default_factory=dict)
    rtc: RtcConfig = field(default_factory=RtcConfig)
    room: RoomDefaults = field(default_factory=RoomDefaults)
    max_data_packet_bytes: int = 64 * 1024
    dev_keys: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


def _integer(value: Any) -> int:
    """A whole number from YAML (``8080`` or ``"8080"``); not a bool, and no silent rounding."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"expected a whole number, not {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"expected a whole number, not {value!r}") from None


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, not {value!r}")
    return value


def _section(obj: Any, data: Mapping[str, Any], where: str) -> None:
    for key, value in data.items():
        if not hasattr(obj, key):
            raise ConfigError(f"{where}: unknown key {key!r}")
        current = getattr(obj, key)
        try:
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise TypeError("expected true or false")
            elif isinstance(current, int):
                value = _integer(value)
            elif isinstance(current, list):
                if not isinstance(value, list):
                    raise TypeError("expected a list")
                value = [str(v) for v in value]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None
        setattr(obj, key, value)


def load(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    bind: str | None = None,
    port: int | None = None,
) -> Config:
    """Build the configuration; raises :class:`ConfigError` with a clear message."""
    env = os.environ if env is None else env
    cfg = Config()
    if path is not None:
        where = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {where}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: invalid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: the top level must be a mapping")
        cfg.raw = data
        if "port" in data:
            try:
                cfg.port = _integer(data["port"])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: port: {exc}") from None
        addrs = data.get("bind_addresses")
        if addrs:
            if not isinstance(addrs, list) or len(addrs) != 1:
                raise ConfigError(f"{where}: bind_addresses must list exactly one address")
            cfg.bind = str(addrs[0])
        keys = data.get("keys") or {}
        if not isinstance(keys, dict):
            raise ConfigError(f"{where}: keys must map API keys to secrets")
        for k, v in keys.items():
            if v is None or isinstance(v, bool | dict | list) or not str(v).strip():
                raise ConfigError(f"{where}: keys: the secret of API key {k!r} is missing or not a string")
            cfg.keys[str(k)] = str(v)
        _section(cfg.rtc, _mapping(data.get("rtc"), f"{where}: rtc"), f"{where}: rtc")
        _section(cfg.room, _mapping(data.get("room"), f"{where}: room"), f"{where}: room")
        limits = _mapping(data.get("limits"), f"{where}: limits")
        if "max_data_packet_bytes" in limits:
            try:
                cfg.max_data_packet_bytes = _integer(limits["max_data_packet_bytes"])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: limits.max_data_packet_bytes: {exc}") from None
    key, secret = env.get("LIVEKIT_API_KEY"), env.get("LIVEKIT_API_SECRET")
    if key or secret:
        if not (key and secret):
            raise ConfigError("LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together")
        cfg.keys[key] = secret
    for line in (env.get("LIVEKIT_KEYS") or "").splitlines():
        if line.strip():
            k, sep, s = line.partition(":")
            if not sep or not k.strip() or not s.strip():
                raise ConfigError('LIVEKIT_KEYS: expected lines of "key: secret"')
            cfg.keys[k.strip()] = s.strip()
    if bind is not None:
        cfg.bind = bind
    if port is not None:
        cfg.port = port
    for key_, secret_ in cfg.keys.items():
        if len(secret_) < 32:
            log.warning("API secret for key %s is shorter than 32 characters", key_)
    if not 0 <= cfg.port <= 65535:
        raise ConfigError(f"port {cfg.port} is out of range")
    r = cfg.rtc
    if (r.port_range_start or r.port_range_end) and not (0 < r.port_range_start <= r.port_range_end <= 65535):
        raise ConfigError(f"rtc.port_range_start/end: {r.port_range_start}-{r.port_range_end} is not a valid range")
    if r.ping_interval <= 0 or r.ping_timeout <= 0:
        raise ConfigError("rtc.ping_interval and rtc.ping_timeout must be positive (the Rust SDKs abort on 0)")
    if r.ping_timeout <= r.ping_interval:
        # The Rust SDKs give up after ping_timeout without a server message, and the server only
        # speaks when pinged: with a timeout not above the interval every pong races the timer.
        raise ConfigError(f"rtc.ping_timeout ({r.ping_timeout} s) must be greater than rtc.ping_interval "
                          f"({r.ping_interval} s): the Rust SDKs drop the connection otherwise (LiveKit uses 5 and 15)")
    return cfg


def ensure_keys(cfg: Config) -> bool:
    """Generate development credentials when none are configured; True if it did."""
    if cfg.keys:
        return False
    key, secret = generate_dev_keys()
    cfg.keys[key] = secret
    cfg.dev_keys = True
    return True
