"""The protocol cores stay sans-IO (DEVELOPERS.md, Architecture), checked on the source.

The cores are fed bytes and the current time and return bytes, events and deadlines, so they are
tested without sockets or clocks, and a call's timing is whatever its adapter says. Inside them,
this test forbids (reading each module with :mod:`ast`): the I/O and concurrency modules
(``asyncio``, ``socket``, ``select``/``selectors``, ``ssl``, ``subprocess``, ``threading``,
``time``), wall clocks (``datetime.now``/``utcnow``/``today``, ``date.today``), file I/O
(``open()``, ``wave.open``, ``Path.read_bytes`` and the like), any
``.sleep(...)``, and the module-level functions of :mod:`random` (a core that needs randomness
takes a ``random.Random`` so tests can seed it). :mod:`secrets` stays allowed: tags, branches,
nonces and SSRCs must be unpredictable, and no test depends on their values.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import roomtone

SRC = Path(roomtone.__file__).resolve().parent

CORES = sorted(
    [p.relative_to(SRC).as_posix() for p in (SRC / "dtmf").glob("*.py")]
    + [
        "sip/message.py", "sip/transaction.py", "sip/dialog.py", "sip/auth.py", "sip/sdp.py",
        # not media/g711.py: besides the codec it holds read_wav/write_wav, file helpers for the CLI
        "media/rtp.py", "media/jitter.py", "media/session.py", "media/codecs.py",
        "media/dtmf_mux.py", "media/inband.py", "media/suppress.py",
        "rooms/routing.py",
        "telephony/pin.py", "telephony/matching.py", "telephony/relay.py",
    ]
)

FORBIDDEN_MODULES = {"asyncio", "socket", "select", "selectors", "ssl", "subprocess", "threading", "time"}
WALL_CLOCKS = {"now", "utcnow", "today"}
RANDOM_ALLOWED = {"Random", "SystemRandom"}  # constructing an injectable source is fine
FILE_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes"}
FILE_OPENERS = {"wave", "io", "os", "gzip", "bz2", "lzma", "codecs", "Path"}


def violations(source: str, filename: str = "<core>") -> list[str]:
    """``line: what`` for each sans-IO violation in one module's source."""
    found: list[str] = []
    random_names: set[str] = set()
    datetime_names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in FORBIDDEN_MODULES:
                    found.append(f"{node.lineno}: import {alias.name}")
                if top == "random":
                    random_names.add(alias.asname or "random")
                if top == "datetime":
                    datetime_names.add(alias.asname or "datetime")
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            top = node.module.split(".")[0]
            if top in FORBIDDEN_MODULES:
                found.append(f"{node.lineno}: from {node.module} import ...")
            if top == "random":
                found.extend(f"{node.lineno}: from random import {a.name}" for a in node.names
                             if a.name not in RANDOM_ALLOWED)
            if top == "datetime":
                datetime_names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id == "open":
                found.append(f"{node.lineno}: open()")
            elif isinstance(fn, ast.Attribute):
                if fn.attr == "sleep":
                    found.append(f"{node.lineno}: .sleep()")
                if fn.attr in FILE_METHODS or (fn.attr == "open" and isinstance(fn.value, ast.Name)
                                               and fn.value.id in FILE_OPENERS):
                    found.append(f"{node.lineno}: {ast.unparse(fn)}() (file I/O)")
                base = fn.value
                # datetime.now(), datetime.datetime.now(), date.today()
                names = {base.id} if isinstance(base, ast.Name) else (
                    {base.attr} if isinstance(base, ast.Attribute) else set())
                if fn.attr in WALL_CLOCKS and names & (datetime_names | {"datetime", "date"}):
                    found.append(f"{node.lineno}: {ast.unparse(fn)}()")
                if isinstance(base, ast.Name) and base.id in random_names and fn.attr not in RANDOM_ALLOWED:
                    found.append(f"{node.lineno}: {base.id}.{fn.attr}() (take a random.Random instead)")
    return found


def test_core_list_is_current() -> None:
    missing = [c for c in CORES if not (SRC / c).exists()]
    assert not missing, f"renamed or removed? update tests/test_sans_io.py CORES: {missing}"


@pytest.mark.parametrize("core", CORES)
def test_core_is_sans_io(core: str) -> None:
    path = SRC / core
    assert violations(path.read_text(), str(path)) == []


def test_checker_finds_each_kind_of_violation() -> None:
    source = (
        "import time\n"
        "import asyncio as aio\n"
        "from socket import socket\n"
        "import random\n"
        "from random import randint, Random\n"
        "from datetime import datetime\n"
        "import datetime as dt\n"
        "def f(loop):\n"
        "    open('x')\n"
        "    loop.sleep(1)\n"
        "    datetime.now()\n"
        "    dt.datetime.utcnow()\n"
        "    random.random()\n"
        "    random.Random(5)\n"
        "    time.monotonic()\n"
        "    wave.open('x.wav')\n"
        "    Path('x').read_bytes()\n"
    )
    # time.monotonic() on line 15 is covered by line 1's import
    assert sorted(int(v.split(":")[0]) for v in violations(source)) == [1, 2, 3, 5, 9, 10, 11, 12, 13, 16, 17]


def test_checker_accepts_a_pure_core() -> None:
    source = (
        "import random\n"
        "import secrets\n"
        "import struct\n"
        "def f(now: float, rng: random.Random | None = None):\n"
        "    rng = rng or random.SystemRandom()\n"
        "    return struct.pack('>d', now), secrets.token_hex(4), rng.random()\n"
    )
    assert violations(source) == []
