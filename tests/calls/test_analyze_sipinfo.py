"""``roomtone dtmf analyze`` reports SIP INFO digits: a live capture of a real call, and edge cases."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from roomtone.cli import main
from tests.pcaps import Frame, dumpcap, write_pcap

from .endpoint import Pair


def analyze(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["dtmf", "analyze", *args])
    return code, capsys.readouterr().out


@pytest.mark.skipif(os.geteuid() != 0, reason="capturing on lo needs root")
async def test_live_call_with_info_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "call.pcapng"
    async with Pair() as p:
        with dumpcap(out_file, p.callee.ua.port):  # blocks the loop only while dumpcap starts
            caller, callee = await p.call()
            await caller.send_dtmf("12#", method="info", tone_ms=100, gap_ms=50)
            bad = await caller.sip.info(b"Signal=Q\r\n", "application/dtmf-relay")
            assert bad.status == 400
            await caller.hangup()
            await asyncio.sleep(0.5)
    code, out = analyze(capsys, str(out_file))
    assert code == 0
    assert "digits (sip-info): 12#" in out
    assert "bad_info_body" in out and "info_refused" not in out and "info_unanswered" not in out
    code, out = analyze(capsys, "--json", str(out_file))
    digits = [d for d in json.loads(out)["digits"] if d["source"] == "sip-info"]
    assert [(d["digit"], d["duration"]) for d in digits] == [("1", 0.1), ("2", 0.1), ("#", 0.1)]


def _info(cseq: int, body: bytes, ctype: str = "application/dtmf-relay") -> bytes:
    head = (f"INFO sip:bob@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{cseq}x\r\n"
            f"From: <sip:a@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\nCall-ID: abc@test\r\n"
            f"CSeq: {cseq} INFO\r\nMax-Forwards: 70\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def _ok(cseq: int, status: int = 200) -> bytes:
    return (f"SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{cseq}x\r\n"
            f"From: <sip:a@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\nCall-ID: abc@test\r\n"
            f"CSeq: {cseq} INFO\r\nContent-Length: 0\r\n\r\n").encode()


def test_retransmissions_refusals_and_unanswered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = ("127.0.0.1", 5060), ("127.0.0.1", 5070)

    def fr(t: float, data: bytes, forward: bool = True) -> Frame:
        src, dst = (a, b) if forward else (b, a)
        return Frame(t, src[0], src[1], dst[0], dst[1], data)

    frames = [
        fr(1.0, _info(2, b"Signal=5\r\nDuration=250\r\n")),
        fr(1.5, _info(2, b"Signal=5\r\nDuration=250\r\n")),  # retransmitted
        fr(1.6, _ok(2), forward=False),
        fr(2.0, _info(3, b"*", "application/dtmf")),
        fr(2.1, _ok(3, 481), forward=False),
        fr(3.0, _info(4, b"Signal=9\r\n")),  # never answered
        fr(4.0, _info(5, b"<xml/>", "application/media_control+xml")),  # not DTMF: ignored
    ]
    path = write_pcap(tmp_path / "info.pcap", frames)
    code, out = analyze(capsys, str(path))
    assert code == 0
    assert "digits (sip-info): 5*9" in out
    assert out.count("info_retransmission") == 1
    assert "info_refused" in out and "481" in out
    assert "info_unanswered" in out
