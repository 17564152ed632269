"""Network namespaces for WebRTC tests (recipe: shared/reference/livekit-signal-protocol.md §4.1).

Why: libwebrtc (Python/Node SDKs) and Chromium ignore loopback interfaces, so two WebRTC peers on
``lo`` gather no candidates and never connect. Each test run therefore gets its own namespace
with a veth pair whose both ends stay inside (198.18.0.1/24 and 198.18.0.2/24, no default route,
IPv6 off). Nothing can leave the namespace, and since it has its own network stack, fixed ports
(the server's 7880) never collide with other tests running at the same time.

API (``from tests.netns import Netns, netns_available``)::

    with Netns() as ns:                       # unique name "rt-<pid>-<hex>", deleted on exit
        ns.name                               # for your own "ip netns exec <name> ..."
        ns.addresses                          # ("198.18.0.1", "198.18.0.2")
        ns.cmd(["node", "x.js"])              # -> ["ip", "netns", "exec", name, "node", "x.js"]
        ns.run(["ip", "addr"], check=True)    # subprocess.run inside (text mode, output captured)
        p = ns.popen([...], stdout=PIPE)      # subprocess.Popen inside; killed by PID on exit
        srv = ns.start_server(keys={"devkey": "secret..."}, port=7880)   # roomtone serve inside
        srv = ns.start_server(keys, config="rtc: {port_range_start: 40000, port_range_end: 40100}")
        srv.url                               # "ws://127.0.0.1:7880"
        srv.http_url                          # "http://127.0.0.1:7880"
        srv.log()                             # the server's stdout+stderr so far (str)
        srv.wait_for_log("needle", timeout=10)
        ns.http_get("http://127.0.0.1:7880/")  # a tiny HTTP GET from inside: (status, body)

    # pytest: a ready fixture; import it into your test module or conftest.py
    from tests.netns import netns  # noqa: F401   (skips cleanly when not root / no iproute2)

Every process started through ``popen``/``start_server`` is ended by its PID when the context
exits (SIGTERM, then SIGKILL), then the namespace is deleted.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

ADDRESSES = ("198.18.0.1", "198.18.0.2")


def netns_available() -> bool:
    """True when we can create namespaces (root and iproute2)."""
    return os.geteuid() == 0 and shutil.which("ip") is not None


class ServerProcess:
    """A ``roomtone serve`` running inside a namespace; output goes to a temp file."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, host: str, port: int) -> None:
        self.proc = proc
        self.log_path = log_path
        self.host = host
        self.port = port
        self.url = f"ws://{host}:{port}"
        self.http_url = f"http://{host}:{port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if needle in text:
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not in server log (rc={self.proc.poll()}):\n{self.log()[-4000:]}")


class Netns:
    """A throw-away network namespace with a veth pair; see the module docstring."""

    def __init__(self, prefix: str = "rt") -> None:
        self.name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self.addresses = ADDRESSES
        self._procs: list[subprocess.Popen[Any]] = []
        self._tmp = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self._lock = threading.Lock()
        self._created = False

    # -- lifecycle -------------------------------------------------------------------------
    def create(self) -> Netns:
        def ip(*args: str) -> None:
            subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

        ip("netns", "add", self.name)
        self._created = True
        try:
            ip("-n", self.name, "link", "set", "lo", "up")
            ip("-n", self.name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
            ip("-n", self.name, "addr", "add", f"{ADDRESSES[0]}/24", "dev", "va")
            ip("-n", self.name, "addr", "add", f"{ADDRESSES[1]}/24", "dev", "vb")
            ip("-n", self.name, "link", "set", "va", "up")
            ip("-n", self.name, "link", "set", "vb", "up")
            self.run(["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"], check=True)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        with self._lock:
            procs, self._procs = self._procs, []
        for p in procs:
            _stop(p)
        if self._created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            self._created = False
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Netns:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running things inside -------------------------------------------------------------
    def cmd(self, args: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, args: Sequence[str], *, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.cmd(args), timeout=timeout, **kw)

    def popen(self, args: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        # Own process group, so that stopping it also ends children of `ip netns exec`.
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(self.cmd(args), **kw)
        with self._lock:
            self._procs.append(p)
        return p

    def tmp_path(self, name: str) -> Path:
        return self._tmp / name

    def start_server(
        self,
        keys: Mapping[str, str],
        *,
        port: int = 7880,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 20.0,
        config: str | None = None,
    ) -> ServerProcess:
        """Start ``roomtone serve`` on 127.0.0.1:port inside the namespace and wait until it answers.

        ``config`` is YAML text for ``--config`` (see roomtone.config for the layout)."""
        if len(keys) != 1:
            raise ValueError("start_server takes exactly one key pair (use a config file via extra_args for more)")
        (key, secret), = keys.items()
        log_path = self._tmp / f"server-{port}.log"
        full_env = dict(os.environ)
        full_env.update({"LIVEKIT_API_KEY": key, "LIVEKIT_API_SECRET": secret, "PYTHONUNBUFFERED": "1"})
        # Anything the server stores (e.g. the telephony database) stays in this namespace's tmp.
        full_env["XDG_DATA_HOME"] = str(self._tmp / "data")
        if env:
            full_env.update(env)
        if config is not None:
            config_path = self._tmp / f"server-{port}.yaml"
            config_path.write_text(config)
            extra_args = ("--config", str(config_path), *extra_args)
        with open(log_path, "wb") as out:
            proc = self.popen(
                [sys.executable, "-m", "roomtone.cli", "-vv", "serve", "--bind", "127.0.0.1", "--port", str(port), *extra_args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
            )
        server = ServerProcess(proc, log_path, "127.0.0.1", port)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"roomtone serve exited with {proc.returncode}:\n{server.log()}")
            status, _ = self.http_get(f"{server.http_url}/", timeout=2)
            if status:
                return server
            time.sleep(0.1)
        raise RuntimeError(f"roomtone serve did not answer within {ready_timeout} s:\n{server.log()}")

    def http_get(self, url: str, headers: Mapping[str, str] | None = None, timeout: float = 5) -> tuple[int, str]:
        """GET from inside the namespace; (0, error text) when nothing answers."""
        code = (
            "import sys, json, urllib.request, urllib.error\n"
            "req = urllib.request.Request(sys.argv[1], headers=json.loads(sys.argv[2]))\n"
            "try:\n"
            "    r = urllib.request.urlopen(req, timeout=float(sys.argv[3])); print(r.status); print(r.read().decode(errors='replace'), end='')\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code); print(e.read().decode(errors='replace'), end='')\n"
            "except Exception as e:\n"
            "    print(0); print(repr(e), end='')\n"
        )
        import json

        res = self.run([sys.executable, "-c", code, url, json.dumps(dict(headers or {})), str(timeout)], timeout=timeout + 10)
        first, _, rest = res.stdout.partition("\n")
        try:
            return int(first), rest
        except ValueError:
            return 0, res.stdout + res.stderr


def _stop(p: subprocess.Popen[Any]) -> None:
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        p.terminate()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            p.kill()
        p.wait(timeout=5)


@pytest.fixture
def netns() -> Iterator[Netns]:
    """A fresh namespace per test; skipped (with the reason) where namespaces cannot be made."""
    if not netns_available():
        pytest.skip("network namespaces need root and iproute2 (ip netns)")
    with Netns() as ns:
        yield ns
