"""pjsua2 (PyPI ``pjsua2-python``, GPL, test-only) as a test phone in a subprocess.

The phone is tests/phones/pjsua_agent.py, driven by JSON lines on stdin and reporting JSON lines
on stdout; see that file for the command and event vocabulary. PJSIP's own log goes to a file
whose tail is shown when something fails.

Measured with PJSIP 2.15 (tests/phones/test_interop.py): sends DTMF by RFC 4733, SIP INFO
(application/dtmf-relay) and in-band tones (pjmedia tone generator into the call); receives
RFC 4733 and SIP INFO with the method reported; it has no in-band detector, but :meth:`record`
saves received audio to a WAV file for the test to analyse.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from .common import HOST, ChildProcess, EventLog, PhoneError, free_port

AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pjsua_agent.py")


class Pjsua:
    """One pjsua2 phone. Use :func:`pjsua_phone` to get one.

    ``events`` holds every JSON event; ``dtmf`` only the received digits
    (``{"digit", "method": "rfc4733"|"info", "duration_ms", "call"}``).
    """

    def __init__(self, *, user: str = "pjsua", codecs: tuple[str, ...] = ("PCMU", "PCMA", "G722"),
                 auto_answer: bool = False, auth: tuple[str, str] | None = None, tcp: bool = False) -> None:
        self.port = free_port(span=1)
        self.rtp_port = free_port(span=2, tcp=False, rtp=True)
        self.user = user
        self.uri = f"sip:{user}@{HOST}:{self.port}"
        self.dir = tempfile.mkdtemp(prefix="pjsua-")
        self.log_path = os.path.join(self.dir, "pjsua.log")
        self.events = EventLog()
        self.dtmf = EventLog()
        argv = [sys.executable, "-u", AGENT, "--host", HOST, "--port", str(self.port),
                "--rtp-port", str(self.rtp_port), "--user", user, "--codecs", ",".join(codecs),
                "--log", self.log_path]
        if auto_answer:
            argv.append("--auto-answer")
        if tcp:
            argv.append("--tcp")
        if auth:
            argv += ["--auth-user", auth[0], "--auth-pass", auth[1]]
        self.proc = ChildProcess(argv, stdin=True, on_line=self._on_line, name="pjsua2")
        self.wait_event("ready", timeout=20)

    def _on_line(self, line: str) -> None:
        if not line.startswith("{"):
            return
        try:
            ev = json.loads(line)
        except ValueError:
            return
        ev["at"] = time.monotonic()
        self.events.add(ev)
        if ev.get("event") == "dtmf":
            self.dtmf.add(ev)

    def tail(self) -> str:
        text = self.proc.tail()
        try:
            with open(self.log_path, errors="replace") as f:
                log = f.readlines()[-30:]
            text += "\n--- PJSIP log tail ---\n" + "".join(log)
        except OSError:
            pass
        return text

    # ------------------------------------------------------------------ commands

    def command(self, cmd: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        start = len(self.events)
        self.proc.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        ev = self.events.wait(lambda e: e.get("event") == "done" and e.get("cmd") == cmd, timeout, start)
        if ev is None:
            raise PhoneError(f"pjsua2 did not acknowledge {cmd!r}{self.tail()}")
        if not ev.get("ok"):
            raise PhoneError(f"pjsua2 {cmd} failed: {ev.get('error')}{self.tail()}")
        return ev

    def call(self, uri: str) -> int:
        """Place a call; returns the call id (wait for ``call_state`` CONFIRMED yourself)."""
        return int(self.command("call", uri=uri)["call"])

    def answer(self, code: int = 200, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for an incoming call and answer it with ``code``; returns the ``incoming`` event."""
        ev = self.wait_event("incoming", timeout)
        self.command("answer", code=code, call=ev["call"])
        return ev

    def hangup(self, **fields: Any) -> None:
        self.command("hangup", **fields)

    def send_dtmf(self, digits: str, method: str = "rfc4733", duration_ms: int = 160, **fields: Any) -> None:
        """``method``: rfc4733, info or inband (tone generator into the call's audio)."""
        self.command("dtmf", digits=digits, method=method, duration_ms=duration_ms, **fields)

    def play(self, wav: str) -> None:
        self.command("play", wav=wav)

    def record(self, wav: str) -> None:
        self.command("record", wav=wav)

    # ------------------------------------------------------------------ waiting

    def wait_event(self, name: str, timeout: float = 10.0, start: int = 0, **match: Any) -> dict[str, Any]:
        def pred(e: dict[str, Any]) -> bool:
            return e.get("event") == name and all(e.get(k) == v for k, v in match.items())

        ev = self.events.wait(pred, timeout, start)
        if ev is None:
            raise PhoneError(f"pjsua2: no {name} {match or ''} within {timeout}s{self.tail()}")
        return ev

    def wait_state(self, state: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for a call state such as CONFIRMED or DISCONNECTED."""
        return self.wait_event("call_state", timeout, state=state)

    def wait_digits(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        if not self.dtmf.wait_count(count, timeout):
            got = "".join(d["digit"] for d in self.dtmf.snapshot())
            raise PhoneError(f"pjsua2 received {got!r}, expected {count} digits{self.tail()}")
        return self.dtmf.snapshot()

    def close(self) -> None:
        if self.proc.alive():
            with contextlib.suppress(PhoneError, OSError):
                self.proc.write(b'{"cmd": "quit"}\n')
            try:
                self.proc.proc.wait(5)
            except Exception:
                pass
        self.proc.stop()


@contextlib.contextmanager
def pjsua_phone(**kwargs: Any) -> Iterator[Pjsua]:
    """Start a pjsua2 phone on free loopback ports; stop it (by PID) afterwards.

    Keyword arguments: ``user``, ``codecs``, ``auto_answer``, ``auth=(user, password)``, ``tcp``.
    """
    phone = Pjsua(**kwargs)
    try:
        yield phone
    finally:
        phone.close()
        shutil.rmtree(phone.dir, ignore_errors=True)
