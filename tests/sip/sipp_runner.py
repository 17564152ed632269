"""Run SIPp (``sip-tester``) against roomtone from asyncio tests and benchmarks.

Scenario XML lives in ``tests/sip/scenarios/``. Ports come from this suite's range
(20000-20999) so concurrent suites do not collide; SIPp's -timeout bounds every run.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import shutil
import socket
import tempfile
from dataclasses import dataclass

SCENARIOS = os.path.join(os.path.dirname(__file__), "scenarios")
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
HOST = "127.0.0.1"
PORT_RANGE = (20000, 20999)
_used: set[int] = set()


def free_port(span: int = 1) -> int:
    """A port p in our range with p..p+span-1 free for UDP and TCP on loopback."""
    for _ in range(400):
        p = random.randrange(PORT_RANGE[0], PORT_RANGE[1] - span)
        if any(q in _used for q in range(p, p + span)):
            continue
        ok = True
        for q in range(p, p + span):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind((HOST, q))
                except OSError:
                    ok = False
                finally:
                    s.close()
        if ok:
            _used.update(range(p, p + span))
            return p
    raise RuntimeError("no free port in range")


@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    output: str
    messages: str
    errors: str
    stats: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.successful > 0

    def report(self) -> str:
        return (
            f"sipp exit {self.returncode} successful={self.successful} failed={self.failed}\n"
            f"--- output ---\n{self.output[-1500:]}\n--- errors ---\n{self.errors[-2500:]}\n"
            f"--- messages ---\n{self.messages[-4000:]}"
        )


class Sipp:
    """One SIPp process: ``await start()``, then ``await wait()`` for its result."""

    def __init__(self, scenario: str, remote: str | None = None, *, transport: str = "u1", calls: int = 1,
                 rate: float | None = None, timeout: float = 20, service: str = "roomtone",
                 auth: tuple[str, str] | None = None, trace: bool = True, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.media_port = free_port(4)
        self.dir = tempfile.mkdtemp(prefix="roomtone-sipp-")
        self.uri = f"sip:{service}@{HOST}:{self.port}"
        path = scenario if os.path.isabs(scenario) else os.path.join(SCENARIOS, scenario)
        self.msg_file = os.path.join(self.dir, "messages.log")
        self.err_file = os.path.join(self.dir, "errors.log")
        self.stat_file = os.path.join(self.dir, "stats.csv")
        argv = [SIPP]
        if remote:
            argv.append(remote)
        argv += ["-sf", path, "-i", HOST, "-p", str(self.port), "-mi", HOST, "-mp", str(self.media_port),
                 "-m", str(calls), "-t", transport, "-s", service, "-nostdin", "-timeout", f"{int(timeout)}s",
                 "-timeout_error", "-trace_err", "-error_file", self.err_file,
                 "-trace_stat", "-stf", self.stat_file, "-fd", "1"]
        if trace:
            argv += ["-trace_msg", "-message_file", self.msg_file]
        if rate is not None:
            argv += ["-r", str(rate)]
        if auth:
            argv += ["-au", auth[0], "-ap", auth[1]]
        argv += list(extra)
        self.argv = argv
        self.timeout = timeout
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=self.dir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL)
        await asyncio.sleep(0.3)  # let it bind before a UAC dials it

    async def wait(self) -> SippResult:
        assert self.proc is not None
        try:
            out, _ = await asyncio.wait_for(self.proc.communicate(), self.timeout + 15)
        except TimeoutError:
            self.kill()
            out = b""
        return self._result(out.decode(errors="replace") if out else "")

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def _result(self, output: str) -> SippResult:
        def read(path: str) -> str:
            try:
                with open(path, errors="replace") as f:
                    return f.read()
            except OSError:
                return ""

        stats: dict[str, str] = {}
        try:
            with open(self.stat_file, newline="") as f:
                rows = list(csv.reader(f, delimiter=";"))
            if len(rows) >= 2:
                stats = dict(zip(rows[0], rows[-1], strict=False))
        except OSError:
            pass

        def count(name: str) -> int:
            v = stats.get(name, "0").strip()
            return int(v) if v.isdigit() else 0

        assert self.proc is not None
        return SippResult(self.proc.returncode if self.proc.returncode is not None else -1,
                          count("SuccessfulCall(C)"), count("FailedCall(C)"), output,
                          read(self.msg_file), read(self.err_file), stats)

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
