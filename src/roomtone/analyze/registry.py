"""The analyzer registry (see the package docstring for the plug-in interface)."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from roomtone.analyze.capture import Capture
from roomtone.analyze.report import Report

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnalyzeOptions:
    """Options from the command line. ``values`` holds every parsed option, including those an
    analyzer added with ``add_arguments``; read yours with ``options.get("name")``."""

    te_pt: int | None = None
    te_rate: int | None = None
    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


@runtime_checkable
class Analyzer(Protocol):
    name: str

    def analyze(self, capture: Capture, report: Report, options: AnalyzeOptions) -> None: ...


_registered: list[Analyzer] = []
_loaded = False


def register_analyzer(analyzer: Analyzer) -> None:
    """Add an analyzer (idempotent by name: a later registration replaces an earlier one)."""
    _registered[:] = [a for a in _registered if a.name != analyzer.name]
    _registered.append(analyzer)


def unregister_analyzer(name: str) -> None:
    _registered[:] = [a for a in _registered if a.name != name]


def analyzers() -> list[Analyzer]:
    """All analyzers: every module in ``roomtone.analyze`` that defines ``ANALYZER`` is imported
    once and its ``ANALYZER`` registered, then anything registered explicitly. Sorted by the
    optional ``order`` attribute (default 100), then name."""
    global _loaded
    if not _loaded:
        _loaded = True
        import roomtone.analyze as package

        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            try:
                module = importlib.import_module(f"roomtone.analyze.{info.name}")
            except Exception:  # one broken plug-in must not take the tool down
                log.exception("cannot load analyzer module roomtone.analyze.%s", info.name)
                continue
            candidate = getattr(module, "ANALYZER", None)
            if candidate is not None and not any(a.name == candidate.name for a in _registered):
                _registered.append(candidate)
    return sorted(_registered, key=lambda a: (getattr(a, "order", 100), a.name))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for analyzer in analyzers():
        hook = getattr(analyzer, "add_arguments", None)
        if hook is not None:
            hook(parser)


def run_analyzers(capture: Capture, options: AnalyzeOptions, only: list[str] | None = None) -> Report:
    report = Report(capture.path)
    for analyzer in analyzers():
        if only and analyzer.name not in only:
            continue
        try:
            analyzer.analyze(capture, report, options)
        except Exception as exc:  # report it and keep the other analyzers' results
            log.exception("analyzer %s failed", analyzer.name)
            report.notes.append(f"analyzer {analyzer.name} failed: {exc!r}")
    for warning in capture.warnings:
        report.notes.append(warning)
    return report
