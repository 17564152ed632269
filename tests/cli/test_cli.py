import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "roomtone.cli", *args], capture_output=True, text=True)


def test_codes_table():
    out = run("dtmf", "codes")
    assert out.returncode == 0
    assert "11  #" in out.stdout and "16  R" in out.stdout


def test_codes_sequence_error_names_char():
    out = run("dtmf", "codes", "12q")
    assert out.returncode == 1
    assert "'q'" in out.stderr


def test_no_command_prints_help():
    out = run()
    assert out.returncode == 2
    assert "usage" in out.stdout
