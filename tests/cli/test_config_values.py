"""A config file's wrong value types are a ConfigError naming the key, never a raw Python error.

``roomtone serve`` turns ConfigError into one clear line and exit code 1; any other exception
would be a traceback for a typo in a YAML file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from roomtone import config as config_mod


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("port: abc\n", "port: expected a whole number, not 'abc'"),
        ("port: [1]\n", "port: expected a whole number"),
        ("port: 1.5\n", "port: expected a whole number, not 1.5"),  # no silent rounding to 1
        ("rtc: 5\n", "rtc: expected a mapping"),
        ("room: hello\n", "room: expected a mapping"),
        ("limits: [max_data_packet_bytes]\n", "limits: expected a mapping"),
        ("limits: {max_data_packet_bytes: x}\n", "limits.max_data_packet_bytes: expected a whole number"),
        ("rtc: {ping_interval: 2.5}\n", "rtc.ping_interval: expected a whole number"),
        ("room: {empty_timeout: true}\n", "room.empty_timeout: expected a whole number"),
        ("keys: {APIkey: null}\n", "secret of API key 'APIkey' is missing"),  # was the secret "None"
        ("keys: {APIkey: [a, b]}\n", "secret of API key 'APIkey' is missing or not a string"),
    ],
)
def test_wrong_types_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(config_mod.ConfigError) as err:
        config_mod.load(path, env={})
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_well_typed_values_still_load(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text('port: "7881"\nrtc:\nroom: {empty_timeout: 60}\nlimits: {max_data_packet_bytes: 4096}\n'
                    "keys: {APIkey: 0123456789abcdef0123456789abcdef}\n")
    cfg = config_mod.load(path, env={})
    assert (cfg.port, cfg.room.empty_timeout, cfg.max_data_packet_bytes) == (7881, 60, 4096)
    assert cfg.keys == {"APIkey": "0123456789abcdef0123456789abcdef"}
