"""The layer rule of DEVELOPERS.md, checked on the source: lower layers never import higher ones.

Layers, lowest first: ``dtmf`` < ``sip`` < ``media`` < ``rtc`` < ``rooms`` < ``telephony`` < the
faces users touch (``api``, ``signalling``, ``commands``, ``cli``, ``config``, ``server``, and the
``analyze`` tool). Every ``import``/``from ... import`` in every module under ``src/roomtone`` is read with
:mod:`ast` (including imports inside functions, which still couple the layers), relative imports
resolved. A module may import its own layer and any lower one. The package root ``roomtone``
(``__version__``) is below every layer, and is checked to stay import-free so that holds.

A new top-level subpackage or module must be given a layer here: the test fails until it is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import roomtone

SRC = Path(roomtone.__file__).resolve().parent

LAYERS: dict[str, int] = {
    "aio": 0,  # asyncio helpers with no roomtone imports, usable by every layer
    "numeric": 0,  # number checks for untrusted text, no roomtone imports
    "dtmf": 1,
    "sip": 2,
    "media": 3,
    "rtc": 4,
    "rooms": 5,
    "telephony": 6,
    # the faces: one layer, they may use each other
    "api": 7,
    "commands": 7,
    "cli": 7,
    "config": 7,
    "server": 7,
    "signalling": 7,  # the LiveKit signalling service: the face SDK clients touch, on rooms and rtc
    "analyze": 7,
}

#: Upward imports allowed on purpose: (importing module, imported module) -> why.
DOCUMENTED_EXCEPTIONS: dict[tuple[str, str], str] = {
    # RFC 4733 is an RTP payload format: its receiver takes RtpPacket and uses RFC 3550 serial
    # arithmetic (seq_newer, ts_add, ts_diff). Those facts live once, in media.rtp, which imports
    # nothing from roomtone (checked below), so this edge cannot pull the media layer in or loop.
    ("roomtone.dtmf.rfc4733", "roomtone.media.rtp"): "RTP packet type and serial arithmetic",
}

#: Upward imports that exist today and are wrong, in files their owners were still editing when
#: this test was written. Listed so the rest of the tree is guarded now; each entry is a defect
#: to fix (then delete the entry: a stale entry fails ``test_known_violations_still_exist``).
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """The layer of a ``roomtone...`` module; 0 for the package root; None if not ours."""
    parts = module.split(".")
    if parts[0] != "roomtone":
        return None
    if len(parts) == 1:
        return 0
    return LAYERS.get(parts[1], -1)


def imported_modules(path: Path, src: Path = SRC) -> list[tuple[int, str]]:
    """(line, module) for every import in the file; ``from a import b`` yields ``a.b`` if that is a
    module of ours (``from roomtone import config`` counts as ``config``), else ``a``."""
    module = module_name(path, src)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.extend((node.lineno, _normalise(f"{target}.{alias.name}", src)) for alias in node.names)
    return out


def modules(src: Path = SRC) -> list[Path]:
    return sorted(p for p in src.rglob("*.py") if "__pycache__" not in p.parts)


def _normalise(target: str, src: Path) -> str:
    """``from roomtone.rooms.manager import Participant`` -> the module, not the name."""
    parts = target.split(".")
    while parts and not (src.parent.joinpath(*parts).with_suffix(".py").exists()
                         or src.parent.joinpath(*parts, "__init__.py").exists()):
        parts.pop()
    return ".".join(parts)


def upward_imports(src: Path = SRC) -> dict[tuple[str, str], list[str]]:
    """(importer, imported module) -> ["file:line", ...] for every import of a higher layer."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in modules(src):
        me = module_name(path, src)
        mine = layer_of(me)
        for line, target in imported_modules(path, src):
            theirs = layer_of(target)
            if theirs is None or mine is None or theirs <= mine:
                continue
            where = f"{path.relative_to(src.parent)}:{line}"
            lines = found.setdefault((me, _normalise(target, src)), [])
            if where not in lines:
                lines.append(where)
    return found


def test_sees_the_whole_tree() -> None:
    assert len(modules()) > 50, f"found only {len(modules())} modules under {SRC}: wrong source root?"


def test_every_module_has_a_layer() -> None:
    unassigned = sorted({module_name(p) for p in modules() if layer_of(module_name(p)) == -1})
    assert not unassigned, f"give these a layer in tests/test_layering.py LAYERS: {unassigned}"


def test_package_root_imports_nothing_of_ours() -> None:
    # The root counts as below every layer only while it pulls no layer in itself.
    root = SRC / "__init__.py"
    ours = [t for _, t in imported_modules(root) if layer_of(t) not in (None, 0)]
    assert ours == []


def test_media_rtp_imports_nothing_of_ours() -> None:
    # The dtmf.rfc4733 -> media.rtp exception is safe only while media.rtp is self-contained.
    ours = [t for _, t in imported_modules(SRC / "media" / "rtp.py") if layer_of(t) is not None]
    assert ours == []


def test_no_upward_imports() -> None:
    bad = {
        edge: where
        for edge, where in upward_imports().items()
        if edge not in DOCUMENTED_EXCEPTIONS and edge not in KNOWN_VIOLATIONS
    }
    report = "\n".join(f"  {a} imports {b} at {', '.join(w)}" for (a, b), w in sorted(bad.items()))
    assert not bad, f"lower layers import higher ones (DEVELOPERS.md, Architecture):\n{report}"


def test_known_violations_still_exist() -> None:
    # Fixed? Then delete the entry, so the rule guards that edge again.
    current = upward_imports()
    stale = sorted(edge for edge in {**DOCUMENTED_EXCEPTIONS, **KNOWN_VIOLATIONS} if edge not in current)
    assert not stale, f"no longer imported, remove from tests/test_layering.py: {stale}"


def test_checker_sees_an_upward_import(tmp_path: Path) -> None:
    # The checker itself, on a throwaway tree: an upward import written three ways (absolute,
    # inside a function, relative) is found, with its line; downward and same-layer ones are not.
    src = tmp_path / "roomtone"
    for sub in ("sip", "media", "rooms", "telephony", "dtmf"):
        (src / sub).mkdir(parents=True)
        (src / sub / "__init__.py").write_text("")
    (src / "__init__.py").write_text("")
    for mod in ("telephony/gateway.py", "rooms/manager.py", "media/rtp.py", "dtmf/digits.py", "sip/message.py"):
        (src / mod).write_text("")
    (src / "sip" / "probe.py").write_text(
        "from roomtone.telephony.gateway import Gateway\n"
        "def f():\n    import roomtone.rooms.manager\n"
        "from ..media import rtp\n"
        "from roomtone.dtmf import digits\n"
        "from . import message\n"
        "import numpy\n"
    )
    edges = upward_imports(src)
    assert edges == {
        ("roomtone.sip.probe", "roomtone.telephony.gateway"): ["roomtone/sip/probe.py:1"],
        ("roomtone.sip.probe", "roomtone.rooms.manager"): ["roomtone/sip/probe.py:3"],
        ("roomtone.sip.probe", "roomtone.media.rtp"): ["roomtone/sip/probe.py:4"],
    }
