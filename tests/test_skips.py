"""tests/skips.py: with ROOMTONE_FAIL_ON_SKIP=1 a skip is a failure naming its reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = '''
import pytest

def test_passes():
    assert True

@pytest.mark.skipif(True, reason="sipp is not installed")
def test_marked():
    pass

def test_imperative():
    pytest.skip("network namespaces need root")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
'''


def _run(tmp_path: Path, fail_on_skip: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ROOMTONE_FAIL_ON_SKIP": "1" if fail_on_skip else "0"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "tests.skips", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_sample.py")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )


def test_skips_fail_when_asked(tmp_path: Path) -> None:
    out = _run(tmp_path, fail_on_skip=True)
    assert out.returncode == 1, out.stdout + out.stderr
    # a skipif mark skips in setup, so it is reported as an error there; either way the run fails
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in out.stdout, out.stdout
    assert "sipp is not installed" in out.stdout and "network namespaces need root" in out.stdout


def test_skips_stay_skips_by_default(tmp_path: Path) -> None:
    out = _run(tmp_path, fail_on_skip=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 2 skipped, 1 xfailed" in out.stdout, out.stdout
