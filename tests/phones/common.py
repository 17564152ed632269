"""Shared plumbing for the phone harnesses: free loopback ports, child processes, event queues."""

from __future__ import annotations

import collections
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

HOST = "127.0.0.1"
#: this area's ports (tests/phones, tests/sip auth/sdp); other suites use other ranges.
PORT_RANGE = (21000, 21499)  # SIP and control ports
RTP_RANGE = (21500, 21999)  # media ports (baresip picks at random in it, pjsua2 counts up)


class PhoneError(AssertionError):
    """A phone did not do what the test expected. The message ends with the phone's log tail."""


def _free(port: int, kinds: Iterable[int]) -> bool:
    for kind in kinds:
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


#: how long a handed-out port stays reserved for the harness that asked for it, bound or not.
#: After that only the port's real state counts: a whole CI run claims more spans than the
#: ranges hold (it ran out once at 1,044 tests), and a port its harness let go is free again.
CLAIM_SECONDS = 120.0

_claimed: dict[int, float] = {}  # port -> when it was handed out (time.monotonic)
_claim_lock = threading.Lock()


def free_port(span: int = 1, udp: bool = True, tcp: bool = True, rtp: bool = False) -> int:
    """A port ``p`` such that ``p .. p+span-1`` are free on loopback (UDP and/or TCP).

    Picked at random from :data:`PORT_RANGE` (:data:`RTP_RANGE` if ``rtp``) so concurrent suites
    rarely meet; not handed out again in this test process for :data:`CLAIM_SECONDS` (a harness
    may bind its ports a little after asking). There is a small race with unrelated processes,
    which is why harnesses also report bind failures clearly.
    """
    kinds = [k for k, on in ((socket.SOCK_DGRAM, udp), (socket.SOCK_STREAM, tcp)) if on]
    lo, hi = RTP_RANGE if rtp else PORT_RANGE
    for _ in range(500):
        p = random.randrange(lo, hi - span + 1)
        with _claim_lock:
            now = time.monotonic()
            if any(now - _claimed.get(q, -CLAIM_SECONDS) < CLAIM_SECONDS for q in range(p, p + span)):
                continue
            if all(_free(q, kinds) for q in range(p, p + span)):
                _claimed.update(dict.fromkeys(range(p, p + span), now))
                return p
    raise PhoneError(f"no free port span of {span} in {(lo, hi)}")


class EventLog:
    """A thread-safe list of events (dicts) that tests can wait on."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def add(self, event: dict[str, Any]) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._events)

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, start: int = 0) -> dict[str, Any] | None:
        """First event at index >= start matching ``predicate``, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self._events[start:]:
                    if predicate(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def wait_count(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` events are logged; False if ``timeout`` s pass first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._events) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def __len__(self) -> int:
        with self._cond:
            return len(self._events)


class ChildProcess:
    """A child process whose output lines are kept (last 400) and passed to a line handler."""

    def __init__(self, argv: list[str], *, cwd: str | None = None, env: dict[str, str] | None = None,
                 on_line: Callable[[str], None] | None = None, stdin: bool = False, name: str = "") -> None:
        self.name = name or os.path.basename(argv[0])
        self.argv = argv
        self.lines: collections.deque[str] = collections.deque(maxlen=400)
        self._on_line = on_line
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() ends helpers it spawns too
        )
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append(line)
            if self._on_line is not None:
                try:
                    self._on_line(line)
                except Exception as exc:  # a parse bug must not kill the reader
                    self.lines.append(f"[harness: line handler failed: {exc!r}]")

    def write(self, data: bytes) -> None:
        if self.proc.stdin is None or self.proc.poll() is not None:
            raise PhoneError(f"{self.name} (pid {self.pid}) is not running{self.tail()}")
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 40) -> str:
        lines = list(self.lines)[-n:]
        code = self.proc.poll()
        state = f"exited with {code}" if code is not None else "running"
        return f"\n--- {self.name} pid {self.pid} ({state}), last {len(lines)} lines ---\n" + "\n".join(lines)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the process group we created, then SIGKILL it if it lingers. Returns the exit code."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self._reader.join(2)
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        return self.proc.returncode
