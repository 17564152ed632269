"""``ROOMTONE_FAIL_ON_SKIP=1``: a skipped test fails instead (for CI).

Tests skip where a peer or privilege is missing (sipp, baresip, pjsua2, sox, root for network
namespaces or captures, IPv6 loopback). On a developer's machine that is a fair skip; in CI, which
runs as root after ``scripts/install-test-deps.sh``, it means the install is broken, and a green
run with "12 skipped" in its last line would count those tests as passing. Loaded by
``tests/conftest.py``; xfail is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

ENV = "ROOMTONE_FAIL_ON_SKIP"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get(ENV) != "1" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped with {ENV}=1 (CI): {reason}"
