"""Drive official-SDK LiveKit participants (Python, Node, browser, Go) as child processes.

Every peer program speaks one JSON-lines protocol (see tests/js/rtc-node-peer.mjs): events on
stdout, commands on stdin. :class:`Peer` starts one inside a :class:`tests.netns.Netns` (WebRTC
ignores loopback), collects its events on a thread, and offers blocking waits with timeouts so a
broken server fails a test with the peer's own output instead of hanging it. The namespace ends
the processes by PID when it closes; :meth:`Peer.close` asks them to leave first.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from roomtone.dtmf.digits import MAX_EVENT, digit_for
from tests.netns import Netns

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
GO_PEER = REPO / "tests" / "go" / "bin" / "dtmfpeer"
PY_PEER = Path(__file__).with_name("python_peer.py")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

#: All 16 DTMF keys and flash, as (code, digit) in code order: 0-9, *, #, A-D, flash.
ALL_TONES: list[tuple[int, str]] = [(code, digit_for(code)) for code in range(MAX_EVENT + 1)]

Event = dict[str, Any]


def node_missing() -> str | None:
    """Why the Node peers cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (JS_DIR / "node_modules" / "@livekit" / "rtc-node").is_dir():
        return "tests/js/node_modules missing: run `cd tests/js && npm install` (scripts/install-test-deps.sh does)"
    return None


def browser_missing() -> str | None:
    why = node_missing()
    if why:
        return why
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} missing: apt-get install chromium"
    if not (JS_DIR / "node_modules" / "playwright-core").is_dir():
        return "playwright-core missing in tests/js/node_modules"
    return None


def go_missing() -> str | None:
    if not GO_PEER.exists():
        return "tests/go/bin/dtmfpeer missing: run `cd tests/go && go build -o bin/ ./...`"
    return None


def peer_command(kind: str, url: str, token: str) -> list[str]:
    """The argv that starts one SDK peer of ``kind``: python, python-v1, node, browser, browser-v0, go.

    Defaults as the SDKs ship: node and browser try single-PC ``/rtc/v1`` first, go uses v0;
    ``python`` forces v0 (``python-v1`` keeps the SDK's v1 default), ``browser-v0`` forces v0.
    """
    if kind == "python":
        return [sys.executable, str(PY_PEER), url, token]
    if kind == "python-v1":
        return [sys.executable, str(PY_PEER), url, token, "--v1"]
    if kind == "node":
        return ["node", str(JS_DIR / "rtc-node-peer.mjs"), url, token]
    if kind == "browser":
        return ["node", str(JS_DIR / "browser-peer.mjs"), url, token]
    if kind == "browser-v0":
        return ["node", str(JS_DIR / "browser-peer.mjs"), url, token, "--v0"]
    if kind == "go":
        return [str(GO_PEER), url, token]
    raise ValueError(f"unknown peer kind {kind!r}")


class PeerError(AssertionError):
    """A peer did not do what the test waited for; the message carries its output."""


class Peer:
    """One SDK participant process; see the module docstring."""

    def __init__(
        self, ns: Netns, kind: str, url: str, token: str, *, label: str = "", env: dict[str, str] | None = None
    ) -> None:
        self.kind = kind
        self.label = label or kind
        self.events: list[Event] = []
        self._new: queue.Queue[Event | None] = queue.Queue()
        self._stderr: list[str] = []
        self._lock = threading.Lock()
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", NODE_NO_WARNINGS="1", **(env or {}))
        self.proc = ns.popen(
            peer_command(kind, url, token),
            cwd=str(REPO),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=full_env,
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    # -- output ------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "stdout", "text": line}
            with self._lock:
                self.events.append(event)
            self._new.put(event)
        self._new.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self._stderr.append(line)
                del self._stderr[:-200]

    def output(self) -> str:
        with self._lock:
            return (
                f"--- {self.label} ({self.kind}) rc={self.proc.poll()} events:\n"
                + "\n".join(json.dumps(e) for e in self.events[-60:])
                + "\n--- stderr (tail):\n"
                + "".join(self._stderr[-40:])
            )

    def wait_for(self, pred: Callable[[Event], bool], timeout: float, what: str) -> Event:
        """Block until an event matching ``pred`` arrives (past events count too)."""
        with self._lock:
            for e in self.events:
                if pred(e):
                    return e
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerError(f"{self.label}: no {what} within {timeout} s\n{self.output()}")
            try:
                event = self._new.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                raise PeerError(f"{self.label}: exited before {what}\n{self.output()}")
            if pred(event):
                return event

    def wait_connected(self, timeout: float = 30) -> Event:
        def done(e: Event) -> bool:
            if e.get("event") == "error":
                raise PeerError(f"{self.label}: {e.get('message')}\n{self.output()}")
            return e.get("event") == "connected"

        return self.wait_for(done, timeout, "connection")

    def wait_sees(self, identity: str, timeout: float = 20) -> None:
        """Until ``identity`` is in the room from this peer's point of view."""
        self.wait_for(
            lambda e: (e.get("event") == "connected" and identity in e.get("remote", []))
            or (e.get("event") == "participant_connected" and e.get("identity") == identity),
            timeout,
            f"participant {identity!r}",
        )

    def dtmf_events(self) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.get("event") == "dtmf"]

    def wait_dtmf(self, count: int, timeout: float = 20) -> list[Event]:
        """Until ``count`` DTMF events arrived; then give them (and any extra) in arrival order."""
        deadline = time.monotonic() + timeout
        while len(self.dtmf_events()) < count:
            if time.monotonic() > deadline:
                raise PeerError(
                    f"{self.label}: {len(self.dtmf_events())}/{count} DTMF events within {timeout} s\n{self.output()}"
                )
            if self.proc.poll() is not None:
                raise PeerError(f"{self.label}: exited while waiting for DTMF\n{self.output()}")
            time.sleep(0.02)
        return self.dtmf_events()

    # -- commands ----------------------------------------------------------------------------
    def send(self, cmd: Event) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def send_dtmf(self, tones: Sequence[tuple[int, str]], timeout: float = 30, **extra: Any) -> Event:
        """Publish ``tones`` in order and wait until the peer says it sent them all."""
        before = sum(1 for e in self.events if e.get("event") == "sent")
        self.send({"cmd": "dtmf", "tones": [list(t) for t in tones], **extra})
        seen = 0

        def sent(e: Event) -> bool:
            nonlocal seen
            if e.get("event") == "error":
                raise PeerError(f"{self.label}: {e.get('message')}\n{self.output()}")
            if e.get("event") == "sent":
                seen += 1
                return seen > before
            return False

        event = self.wait_for(sent, timeout, "'sent' confirmation")
        if event.get("count") != len(tones):
            raise PeerError(f"{self.label}: sent {event.get('count')} of {len(tones)}\n{self.output()}")
        return event

    def close(self, timeout: float = 15) -> int | None:
        """Ask the peer to leave, and wait for it to exit (the namespace kills stragglers)."""
        if self.proc.poll() is None:
            try:
                self.send({"cmd": "leave"})
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def received(events: list[Event]) -> list[tuple[int, str, str | None]]:
    """(code, digit, sender identity) of each DTMF event, in arrival order."""
    return [(int(e["code"]), str(e["digit"]), e.get("from")) for e in events]


# -- servers -----------------------------------------------------------------------------------
API_KEY = "interopkey"
API_SECRET = "interop-secret-0123456789abcdef0123456789"  # LiveKit wants >= 32 characters

#: Path of a locally built livekit-server binary. When set, the interop tests run against it
#: instead of roomtone: a check of the tests themselves (they must pass against the real thing).
ANCHOR_ENV = "ROOMTONE_INTEROP_ANCHOR"


class RoomServer:
    """Where the peers connect: ``url`` plus a token minter for this server's keys."""

    def __init__(
        self, url: str, name: str, log: Callable[[], str], pid: int, peer_env: dict[str, str] | None = None
    ) -> None:
        self.url = url
        #: the server process (``ip netns exec`` execs it, so this is the server itself)
        self.pid = pid
        self.name = name
        self.log = log
        #: extra environment for peers talking to this server
        self.peer_env = peer_env or {}

    def token(self, identity: str, room: str, **grants: Any) -> str:
        from roomtone.rtc.tokens import make_token

        return make_token(API_KEY, API_SECRET, identity, video={"roomJoin": True, "room": room, **grants})


def start_roomtone(ns: Netns, port: int = 7880) -> RoomServer:
    srv = ns.start_server(keys={API_KEY: API_SECRET}, port=port)
    return RoomServer(srv.url, "roomtone", srv.log, srv.proc.pid)


def start_livekit_server(ns: Netns, binary: str, port: int = 7880, ready_timeout: float = 30) -> RoomServer:
    """The real livekit-server (built locally, never fetched by CI) inside ``ns``.

    It is ICE-lite, so it cannot learn Chromium's address from incoming checks the way aiortc
    does; Chromium only gathers candidates when the namespace has a default route and mDNS
    hiding is off. The route stays inside the namespace (it points at the other veth end).
    """
    ns.run(["ip", "route", "replace", "default", "via", ns.addresses[1], "dev", "va"], check=True)
    log_path = ns.tmp_path(f"livekit-server-{port}.log")
    with open(log_path, "wb") as out:
        proc = ns.popen(
            [binary, "--bind", "127.0.0.1", "--node-ip", ns.addresses[0], "--keys", f"{API_KEY}: {API_SECRET}"]
            + (["--config-body", f"port: {port}\nrtc:\n  udp_port: {port + 2}\n"] if port != 7880 else []),
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def log() -> str:
        return log_path.read_text(errors="replace")

    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"livekit-server exited with {proc.returncode}:\n{log()}")
        status, _ = ns.http_get(f"http://127.0.0.1:{port}/", timeout=2)
        if status:
            chromium_flags = {"CHROMIUM_EXTRA_FLAGS": "--disable-features=WebRtcHideLocalIpsWithMdns"}
            return RoomServer(f"ws://127.0.0.1:{port}", "livekit-server", log, proc.pid, chromium_flags)
        time.sleep(0.2)
    raise RuntimeError(f"livekit-server did not answer within {ready_timeout} s:\n{log()}")


def start_server_under_test(ns: Netns) -> RoomServer:
    """roomtone, or the livekit-server named by ``$ROOMTONE_INTEROP_ANCHOR``."""
    anchor = os.environ.get(ANCHOR_ENV)
    if anchor:
        return start_livekit_server(ns, anchor)
    return start_roomtone(ns)


def exchange_all_tones(ns: Netns, server: RoomServer, kind: str, room: str) -> None:
    """The interop check every SDK test makes against a Python ``livekit`` participant.

    ``kind`` joins as ``<kind>-peer``, the Python SDK as ``python-peer``. Each side publishes all
    16 keys and flash; the other must receive every one with the right code, digit and sender
    identity, in order, and nothing else (no echo to the sender).
    """
    sdk_id, py_id = f"{kind}-peer", "python-peer"
    sdk = Peer(ns, kind, server.url, server.token(sdk_id, room), label=sdk_id, env=server.peer_env)
    py = Peer(ns, "python", server.url, server.token(py_id, room), label=py_id, env=server.peer_env)
    try:
        assert sdk.wait_connected(60)["identity"] == sdk_id
        assert py.wait_connected(60)["identity"] == py_id
        sdk.wait_sees(py_id)
        py.wait_sees(sdk_id)

        sdk.send_dtmf(ALL_TONES)
        got = received(py.wait_dtmf(len(ALL_TONES)))
        assert got == [(code, digit, sdk_id) for code, digit in ALL_TONES], f"{kind} -> python\n{py.output()}"

        py.send_dtmf(ALL_TONES)
        got = received(sdk.wait_dtmf(len(ALL_TONES)))
        assert got == [(code, digit, py_id) for code, digit in ALL_TONES], f"python -> {kind}\n{sdk.output()}"

        # Nothing echoed back to a sender, and nothing extra arrived late.
        time.sleep(0.5)
        assert len(py.dtmf_events()) == len(ALL_TONES), py.output()
        assert len(sdk.dtmf_events()) == len(ALL_TONES), sdk.output()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- {server.name} log (tail):\n{server.log()[-3000:]}") from None
    finally:
        assert sdk.close() is not None
        assert py.close() is not None
