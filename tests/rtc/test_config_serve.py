"""Configuration layering and ``roomtone serve`` as a user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from roomtone import config as config_mod


def test_defaults_yaml_env_and_flags_layer_in_order(tmp_path):
    assert config_mod.load(env={}).bind == "127.0.0.1" and config_mod.load(env={}).port == 7880
    f = tmp_path / "rt.yaml"
    f.write_text(
        "port: 9000\nbind_addresses: [0.0.0.0]\nkeys: {filekey: " + "f" * 32 + "}\n"
        "rtc: {port_range_start: 50000, port_range_end: 50100, ice_host_addresses: [10.0.0.1], single_pc: false}\n"
        "room: {empty_timeout: 5, max_participants: 3}\nsip: {anything: 1}\n"
    )
    cfg = config_mod.load(f, env={"LIVEKIT_API_KEY": "envkey", "LIVEKIT_API_SECRET": "e" * 32}, port=9100)
    assert cfg.port == 9100 and cfg.bind == "0.0.0.0"
    assert cfg.keys == {"filekey": "f" * 32, "envkey": "e" * 32}
    assert (cfg.rtc.port_range_start, cfg.rtc.port_range_end, cfg.rtc.ice_host_addresses) == (50000, 50100, ["10.0.0.1"])
    assert cfg.rtc.single_pc is False and cfg.room.empty_timeout == 5 and cfg.room.max_participants == 3
    assert cfg.raw["sip"] == {"anything": 1}  # other services' sections are kept
    assert config_mod.ensure_keys(cfg) is False


@pytest.mark.parametrize(
    "text,needle",
    [
        ("rtc: {bogus: 1}", "rtc: unknown key 'bogus'"),
        ("rtc: {port_range_start: 60000, port_range_end: 50000}", "not a valid range"),
        ("rtc: {ping_interval: 0}", "must be positive"),
        ("rtc: {ping_interval: 5, ping_timeout: 5}", "must be greater than rtc.ping_interval"),
        ("- a list", "top level must be a mapping"),
        ("room: {auto_create: maybe}", "expected true or false"),
        ("keys: [a, b]", "keys must map"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, text, needle):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(config_mod.ConfigError, match=needle.replace("(", r"\(")):
        config_mod.load(f, env={})


def test_half_set_env_keys_and_missing_file_are_errors(tmp_path):
    with pytest.raises(config_mod.ConfigError, match="must be set together"):
        config_mod.load(env={"LIVEKIT_API_KEY": "k"})
    with pytest.raises(config_mod.ConfigError, match="cannot read config file"):
        config_mod.load(tmp_path / "missing.yaml", env={})
    cfg = config_mod.load(env={"LIVEKIT_KEYS": "k1: " + "a" * 32 + "\nk2: " + "b" * 32})
    assert set(cfg.keys) == {"k1", "k2"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_without_keys_prints_dev_credentials_that_work():
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "roomtone.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        assert lines[0].startswith("roomtone ") and f"ws://127.0.0.1:{port}" in lines[0]
        key = lines[2].split(":", 1)[1].strip()
        secret = lines[3].split(":", 1)[1].strip()
        assert "development credentials" in lines[1] and key.startswith("API") and len(secret) >= 32
        from livekit import api

        token = api.AccessToken(key, secret).with_identity("u").with_grants(api.VideoGrants(room_join=True, room="r")).to_jwt()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/rtc/validate?access_token={token}", timeout=5) as r:
            assert r.read() == b"success"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_serve_reports_port_in_use_and_bad_config(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run(
            [sys.executable, "-m", "roomtone.cli", "serve", "--port", str(port)],
            capture_output=True, text=True, timeout=30, env={**os.environ, "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s" * 32},
        )
    assert res.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("rtc: {nope: 1}")
    res = subprocess.run([sys.executable, "-m", "roomtone.cli", "serve", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "unknown key 'nope'" in res.stderr


def test_serve_keys_flag():
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "roomtone.cli", "serve", "--port", str(port), "--keys", "flagkey: " + "k" * 32],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[1].strip() == "API keys: flagkey"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
