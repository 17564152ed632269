import subprocess
import sys

from tests.sip.test_message import INVITE


def run(path):
    return subprocess.run([sys.executable, "-m", "roomtone.cli", "sip", "check", str(path)], capture_output=True, text=True)


def test_check_valid_invite(tmp_path):
    f = tmp_path / "invite.txt"
    f.write_bytes(INVITE.replace(b"\r\n", b"\n"))  # as an editor would save it
    out = run(f)
    assert out.returncode == 0, out.stderr
    assert "request INVITE sip:bob@biloxi.example.com" in out.stdout
    assert "Call-ID: a84b4c76e66710@pc33.atlanta.example.com" in out.stdout
    assert "CSeq: 314159 INVITE" in out.stdout
    assert "Via branch: z9hG4bK776asdhds" in out.stdout
    assert "Body: application/sdp, 4 bytes" in out.stdout


def test_check_malformed_prints_400_reason(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_bytes(INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159"))
    out = run(f)
    assert out.returncode == 1
    assert out.stdout.startswith("400 Bad Request (malformed CSeq")


def test_check_missing_file(tmp_path):
    out = run(tmp_path / "nope")
    assert out.returncode == 2 and "cannot read" in out.stderr
