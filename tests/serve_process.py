"""``roomtone serve`` as a real process for tests: start it on a config, wait until it listens, stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml


def start_serve(tmp_path: Path, config: dict[str, Any]) -> subprocess.Popen[str]:
    """Start ``roomtone -v serve`` with ``config`` (YAML layout of roomtone.config) written under
    ``tmp_path``; returns once the HTTP port accepts connections. Output is kept for :func:`stop_serve`."""
    path = tmp_path / "roomtone.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("ROOMTONE_SIP_DB", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "roomtone.cli", "-v", "serve", "--config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    port = int(config["port"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}") from None
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not listen in 30 s")


def stop_serve(proc: subprocess.Popen[str]) -> str:
    """Stop the server (SIGTERM, then SIGKILL after 15 s) and return everything it printed."""
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out
