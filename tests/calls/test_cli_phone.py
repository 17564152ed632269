"""The test phone from the command line: ``roomtone sip answer`` and ``roomtone sip call``."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest

CLI = [sys.executable, "-m", "roomtone.cli"]


def _answerer(port: int, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        CLI + ["sip", "answer", "--listen", f"127.0.0.1:{port}", "--for", "20", "--events",
               "--rtp-ports", "24600-24699", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "listening on ..."
    assert "listening on" in line, line + proc.stderr.read()
    return proc


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("method", ["rfc4733", "info", "inband"])
def test_call_sends_digits_answer_prints_them_as_json_lines(method):
    port = random.randrange(24000, 24500)
    answer = _answerer(port, "--dtmf", "9#", "--method", method)
    try:
        out = subprocess.run(
            CLI + ["sip", "call", f"sip:test@127.0.0.1:{port}", "--dtmf", "0123456789*#ABCD",
                   "--method", method, "--tone-ms", "100", "--gap-ms", "80", "--wait", "2.5",
                   "--rtp-ports", "24700-24799"],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        answer.terminate()
        a_out, _ = answer.communicate(timeout=10)
    assert out.returncode == 0, out.stderr
    caller_lines = _lines(out.stdout)
    result = caller_lines[-1]["result"]
    assert result["answered"] and result["method"] == method and result["digits_sent"] == "0123456789*#ABCD"
    assert result["received"] == "9#" and result["end_reason"] == "local BYE"
    digits = [ln for ln in _lines(a_out) if "digit" in ln]
    assert "".join(d["digit"] for d in digits) == "0123456789*#ABCD"
    assert {d["method"] for d in digits} == {method}
    first = digits[0]
    assert set(first) == {"digit", "code", "method", "duration_ms", "call_id", "at"}
    assert first["call_id"] == result["call_id"] and abs(first["at"] - time.time()) < 60
    assert all(d["code"] == i for i, d in enumerate(digits))


def test_call_reports_failure_clearly():
    out = subprocess.run(CLI + ["sip", "call", "sip:nobody@127.0.0.1:9", "--dtmf", "1", "--answer-timeout", "2",
                                "--rtp-ports", "24800-24899"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    result = _lines(out.stdout)[-1]["result"]
    assert result["answered"] is False and "call failed" in result["error"]


def test_bad_digits_are_rejected_before_dialing():
    out = subprocess.run(CLI + ["sip", "call", "sip:x@127.0.0.1:9", "--dtmf", "12x"],
                         capture_output=True, text=True, timeout=30, env=dict(os.environ))
    assert out.returncode == 1 and "'x'" in out.stderr
