"""CLI round trip: ``roomtone dtmf tones`` writes WAV files that ``roomtone dtmf detect`` (and sox)
read back, in PCM, µ-law and A-law, at 8/16/48 kHz."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from roomtone.cli import main
from roomtone.media.g711 import read_wav


@pytest.mark.parametrize("flags,encoding", [([], "pcm16"), (["--ulaw"], "ulaw"), (["--alaw"], "alaw")])
@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_tones_then_detect(tmp_path, capsys, flags: list[str], encoding: str, rate: int) -> None:
    out = tmp_path / "t.wav"
    assert main(["dtmf", "tones", "123#w456", "-o", str(out), "--rate", str(rate), *flags]) == 0
    audio = read_wav(out)
    assert audio.encoding == encoding and audio.sample_rate == rate
    capsys.readouterr()
    assert main(["dtmf", "detect", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "".join(d["digit"] for d in report["digits"]) == "123#456"
    starts = [d["start"] for d in report["digits"]]
    # 100 ms tones, 100 ms gaps, and the 'w' pause of 0.5 s before the 4
    expected = [0.0, 0.2, 0.4, 0.6, 1.3, 1.5, 1.7]
    assert all(abs(s - e) < 0.005 for s, e in zip(starts, expected, strict=True))
    assert all(abs(d["duration"] - 0.1) < 0.01 for d in report["digits"])


def test_real_command_line_and_sox_compatibility(tmp_path) -> None:
    out = tmp_path / "u.wav"
    subprocess.run([sys.executable, "-m", "roomtone.cli", "dtmf", "tones", "9*0", "-o", str(out), "--ulaw",
                    "--tone-ms", "60", "--gap-ms", "60"], check=True)
    if shutil.which("sox"):
        info = subprocess.run(["soxi", str(out)], capture_output=True, text=True, check=True).stdout
        assert "u-law" in info
        # sox converts our µ-law file to 16 kHz linear PCM; we still find the digits
        pcm = tmp_path / "p.wav"
        subprocess.run(["sox", str(out), "-e", "signed-integer", "-b", "16", "-r", "16000", str(pcm)], check=True)
        out = pcm
    res = subprocess.run([sys.executable, "-m", "roomtone.cli", "dtmf", "detect", str(out)],
                         capture_output=True, text=True, check=True)
    assert res.stdout.strip().endswith("digits: 9*0")


def test_errors_are_clear(tmp_path, capsys) -> None:
    assert main(["dtmf", "tones", "12x", "-o", str(tmp_path / "x.wav")]) == 1
    assert "unknown DTMF character 'x'" in capsys.readouterr().err
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    assert main(["dtmf", "detect", str(bad)]) == 1
    assert "no fmt chunk" in capsys.readouterr().err
    assert main(["dtmf", "detect", str(tmp_path / "missing.wav")]) == 1
    assert "missing.wav" in capsys.readouterr().err
