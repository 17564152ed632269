"""``roomtone dtmf analyze``: captures we build, captures recorded by real tools, bad input."""

from __future__ import annotations

import json
import os
import random
import socket
import time
from pathlib import Path

import dpkt
import pytest

from roomtone.analyze import (
    AnalyzeOptions,
    Capture,
    Digit,
    Finding,
    Report,
    analyze_file,
    read_capture,
    register_analyzer,
    unregister_analyzer,
)
from roomtone.cli import main
from roomtone.dtmf.rfc4733 import EventPacket
from roomtone.media.rtp import RtpPacket
from tests.pcaps import Frame, dumpcap, invite_with_sdp, rtp_frames, sender_packets, write_pcap


def ours(report: dict) -> dict:
    """Keep this analyzer's rows: other analyzers (in-band, SIP INFO) report on the same capture."""
    return {
        "digits": [d for d in report["digits"] if d["source"] == "rfc4733"],
        "findings": [f for f in report["findings"] if f["source"] == "rfc4733"],
        "streams": [s for s in report["streams"] if "telephone-event" in s["description"]],
    }


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["dtmf", "analyze", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_clean_call_with_sdp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = sender_packets("12#", t0=1000.0, ts0=5000)
    frames = [invite_with_sdp(999.5, ("10.0.0.1", 40000))] + rtp_frames(events, seconds=1.2)
    path = write_pcap(tmp_path / "call.pcap", frames)
    code, out, err = run_cli(capsys, str(path))
    assert code == 0, err
    assert "digits (rfc4733): 12#" in out
    assert "telephone-event PT 101/8000 (from SDP in frame 1)" in out
    assert "audio PT 0" in out
    report = ours(json.loads(run_cli(capsys, str(path), "--json")[1]))
    digits = report["digits"]
    assert [d["digit"] for d in digits] == ["1", "2", "#"]
    assert [d["duration"] for d in digits] == [0.16] * 3
    assert [d["volume"] for d in digits] == [10] * 3
    # start times relative to the first frame (the INVITE at 999.5; RTP sent 5 ms after)
    assert [round(d["start"], 3) for d in digits] == [0.505, 0.785, 1.065]
    assert report["findings"] == []


def _mangle(events: list[EventPacket]) -> list[EventPacket]:
    """Digit 1: no marker. Digit 2: all end packets lost. Digit 3: reuses digit 2's timestamp."""
    ts = sorted({e.timestamp for e in events})
    out = []
    for e in events:
        if e.event.event == 1:
            e = EventPacket(e.payload, False, e.timestamp, e.event, e.send_at, e.handle)
        if e.event.event == 2 and e.event.end:
            continue
        if e.event.event == 3:
            e = EventPacket(e.payload, e.marker, ts[1], e.event, e.send_at, e.handle)
        out.append(e)
    return out


def test_sdp_in_a_response_with_reason_phrase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The answerer's SDP rides in "SIP/2.0 200 OK": responses with a reason phrase are SIP too."""
    invite = invite_with_sdp(999.5, ("10.0.0.1", 40000), te=(98, 8000))
    head, _, sdp = invite.payload.partition(b"\r\n\r\n")
    response_head = head.replace(b"INVITE sip:ivr@10.0.0.1 SIP/2.0", b"SIP/2.0 200 OK", 1)
    response = Frame(invite.time, invite.dst, invite.dport, invite.src, invite.sport,
                     response_head + b"\r\n\r\n" + sdp)
    events = sender_packets("5", t0=1000.0, ts0=5000)
    path = write_pcap(tmp_path / "answer.pcap", [response] + rtp_frames(events, te_pt=98, seconds=0.6))
    capture = read_capture(path)
    assert len(capture.sip) == 1
    code, out, err = run_cli(capsys, str(path))
    assert code == 0, err
    assert "telephone-event PT 98/8000 (from SDP in frame 1)" in out
    assert "digits (rfc4733): 5" in out


def test_anomalies_guessed_payload_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = _mangle(sender_packets("1234"))
    frames = rtp_frames(events, te_pt=98, audio_pt=8, seconds=1.6)
    dup = next(f for f in frames if RtpPacket.parse(f.payload).payload_type == 98  # type: ignore[union-attr]
               and not RtpPacket.parse(f.payload).marker)  # type: ignore[union-attr]
    frames.append(Frame(dup.time + 0.001, dup.src, dup.sport, dup.dst, dup.dport, dup.payload))
    path = write_pcap(tmp_path / "bad.pcap", frames, nano=True)
    code, out, err = run_cli(capsys, str(path), "--json")
    assert code == 0, err
    report = ours(json.loads(out))
    assert "".join(d["digit"] for d in report["digits"]) == "1234"
    assert "guessed" in report["streams"][0]["description"]
    assert "PT 98/8000" in report["streams"][0]["description"]
    kinds = {f["kind"] for f in report["findings"]}
    assert {"missing_marker", "missing_end", "timestamp_reuse", "duplicate_packet"} <= kinds
    two = next(d for d in report["digits"] if d["digit"] == "2")
    assert "ended by superseded" in two["note"]
    text = run_cli(capsys, str(path))[1]
    assert "missing_marker: no packet of digit 1" in text


def test_pcapng_ipv6_48k_rate_from_timestamps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = sender_packets("9*", rate=48000, ts0=0xFFFFF000)
    frames = rtp_frames(events, te_pt=110, audio_pt=111, rate=48000, ts0=0xFFFFF000, seconds=1.0,
                        src=("fd00::2", 30000), dst=("fd00::1", 40000))
    path = write_pcap(tmp_path / "v6.pcapng", frames, pcapng=True)
    code, out, err = run_cli(capsys, str(path), "--json")
    assert code == 0, err
    report = ours(json.loads(out))
    assert "PT 110/48000" in report["streams"][0]["description"]
    assert [(d["digit"], d["duration"]) for d in report["digits"]] == [("9", 0.16), ("*", 0.16)]
    assert report["streams"][0]["label"].startswith("[fd00::2]:30000 -> [fd00::1]:40000")


def test_te_pt_option_and_raw_ip_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = sender_packets("5")
    path = write_pcap(tmp_path / "raw.pcap", rtp_frames(events, te_pt=77, audio_pt=None), raw=True)
    # PT 77 is not dynamic, so it is not guessed...
    assert "digits: none found" in run_cli(capsys, str(path))[1]
    # ...but --te-pt names it
    code, out, _ = run_cli(capsys, str(path), "--te-pt", "77", "--te-rate", "8000")
    assert code == 0 and "digits (rfc4733): 5" in out
    code, _, err = run_cli(capsys, str(path), "--te-pt", "300")
    assert code == 2 and "0-127" in err


def test_truncated_capture_still_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_pcap(tmp_path / "t.pcap", rtp_frames(sender_packets("78"), audio_pt=None))
    data = path.read_bytes()
    path.write_bytes(data[:-30])
    code, out, _ = run_cli(capsys, str(path))
    assert code == 0
    assert "truncated or corrupt" in out
    assert "digits (rfc4733): 78" in out  # the lost tail was an end repeat of 8


@pytest.mark.parametrize("content, message", [
    (None, "cannot open"),
    (b"", "not a pcap or pcapng capture"),
    (b"hello, this is text\n", "not a pcap or pcapng capture"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "unreadable capture header"),
])
def test_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None,
                          message: str) -> None:
    path = tmp_path / "input"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run_cli(capsys, str(path))
    assert code == 1 and out == ""
    assert message in err and err.startswith("error: ")


def test_random_udp_is_not_mistaken_for_rtp(tmp_path: Path) -> None:
    rng = random.Random(7)
    frames = [Frame(1.0 + i / 100, "10.0.0.9", 9999, "10.0.0.8", 8888,
                    bytes([0x80, rng.randrange(256)]) + rng.randbytes(rng.randrange(10, 60))) for i in range(200)]
    capture = read_capture(write_pcap(tmp_path / "noise.pcap", frames))
    assert len(capture.datagrams) == 200 and capture.rtp_streams == []


SIPP_PCAPS = Path("/usr/share/sip-tester")


@pytest.mark.parametrize("name, digit", [(f"dtmf_2833_{d}.pcap", str(d)) for d in range(10)]
                         + [("dtmf_2833_star.pcap", "*"), ("dtmf_2833_pound.pcap", "#")])
def test_sipp_shipped_captures(name: str, digit: str) -> None:
    """SIPp ships RFC 2833 captures recorded from a real phone (played with play_pcap_audio).
    They have a zero-duration first packet and three end packets sharing one sequence number."""
    report = analyze_file(str(SIPP_PCAPS / name), AnalyzeOptions(te_rate=8000))
    digits = [d for d in report.digits if d.source == "rfc4733"]
    assert [d.digit for d in digits] == [digit]
    assert digits[0].duration == pytest.approx(2240 / 8000)
    assert [f for f in report.findings if f.source == "rfc4733"] == []  # same-sequence end repeats are retransmissions, not duplicates


def test_sipp_capture_without_sdp_guesses_the_stream(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, str(SIPP_PCAPS / "dtmf_2833_1.pcap"))
    assert code == 0 and "digits (rfc4733): 1" in out and "guessed" in out


@pytest.mark.skipif(os.geteuid() != 0, reason="capturing on lo needs root")
@pytest.mark.parametrize("interface", ["lo", "any"])
def test_live_capture_by_dumpcap(tmp_path: Path, capsys: pytest.CaptureFixture[str], interface: str) -> None:
    """dumpcap records real datagrams sent over loopback; the tool reads its pcapng (Ethernet
    link type on lo, Linux cooked capture on "any")."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    out_file = tmp_path / "live.pcapng"
    try:
        with dumpcap(out_file, port, interface):
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            events = sender_packets("4#", t0=0.0, ts0=1234)
            start = time.monotonic()
            with tx:
                for n, e in enumerate(events):
                    time.sleep(max(0.0, e.send_at - (time.monotonic() - start)))
                    pkt = RtpPacket(payload_type=101, sequence=n, timestamp=e.timestamp, ssrc=0xCAFE,
                                    payload=e.payload, marker=e.marker)
                    tx.sendto(pkt.serialize(), ("127.0.0.1", port))
            time.sleep(0.5)
    finally:
        rx.close()
    code, out, err = run_cli(capsys, str(out_file))
    assert code == 0, err
    assert "digits (rfc4733): 4#" in out
    assert "PT 101/8000 (guessed" in out
    expected = {"lo": dpkt.pcap.DLT_EN10MB, "any": (dpkt.pcap.DLT_LINUX_SLL, dpkt.pcap.DLT_LINUX_SLL2)}[interface]
    assert read_capture(out_file).link_type in (expected if isinstance(expected, tuple) else (expected,))


class _Extra:
    name = "test-extra"

    def analyze(self, capture: Capture, report: Report, options: AnalyzeOptions) -> None:
        stream = capture.rtp_streams[0]
        report.add_digit(Digit("test-extra", stream.label, "7", 0.0, None, None, "from a plug-in"))
        report.add_finding(Finding("test-extra", stream.label, 0.0, "plugin_note", "seen"))


class _Broken:
    name = "test-broken"

    def analyze(self, capture: Capture, report: Report, options: AnalyzeOptions) -> None:
        raise RuntimeError("boom")


def test_plugin_analyzers_share_the_report(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "p.pcap", rtp_frames(sender_packets("3"), audio_pt=None))
    register_analyzer(_Extra())
    register_analyzer(_Broken())
    try:
        report = analyze_file(str(path))
    finally:
        unregister_analyzer("test-extra")
        unregister_analyzer("test-broken")
    assert sorted((d.source, d.digit) for d in report.digits if d.source in ("rfc4733", "test-extra")) == [
        ("rfc4733", "3"), ("test-extra", "7")]
    assert {d.stream for d in report.digits} == {next(iter(report.streams))}  # one stream section
    assert any("test-broken failed" in n and "boom" in n for n in report.notes)
    text = report.render_text()
    assert "digits (test-extra): 7" in text and "plugin_note: seen" in text
    assert "test-extra" not in [d.source for d in analyze_file(str(path)).digits]


def test_malformed_sip_info_is_a_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An INFO roomtone's parser refuses loses its digit: the report must say so, not skip it.
    def info(cseq: str, body: str) -> bytes:
        return (f"INFO sip:ivr@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK{cseq[:1]}\r\n"
                f"From: <sip:alice@10.0.0.2>;tag=1\r\nTo: <sip:ivr@10.0.0.1>;tag=2\r\nCall-ID: info-test\r\n"
                f"CSeq: {cseq}\r\nContent-Type: application/dtmf-relay\r\nContent-Length: {len(body)}\r\n\r\n"
                f"{body}").encode()

    ok = info("2 INFO", "Signal=5\r\nDuration=160\r\n")
    bad = info("x INFO", "Signal=7\r\nDuration=160\r\n")  # unparseable CSeq
    answer = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK2\r\nFrom: <sip:alice@10.0.0.2>;tag=1\r\n"
              b"To: <sip:ivr@10.0.0.1>;tag=2\r\nCall-ID: info-test\r\nCSeq: 2 INFO\r\nContent-Length: 0\r\n\r\n")
    frames = [Frame(10.0, "10.0.0.2", 5060, "10.0.0.1", 5060, ok),
              Frame(10.01, "10.0.0.1", 5060, "10.0.0.2", 5060, answer),
              Frame(10.5, "10.0.0.2", 5060, "10.0.0.1", 5060, bad)]
    path = write_pcap(tmp_path / "info.pcap", frames)
    code, out, err = run_cli(capsys, str(path), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [d["digit"] for d in report["digits"] if d["source"] == "sip-info"] == ["5"]
    found = [f for f in report["findings"] if f["source"] == "sip-info"]
    assert [f["kind"] for f in found] == ["malformed_info"], found
    assert "frame 3" in found[0]["detail"] and "400" in found[0]["detail"] and "CSeq" in found[0]["detail"]
