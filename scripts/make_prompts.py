#!/usr/bin/env python3
"""Regenerate the PIN-flow voice prompts in src/roomtone/data/ (8 kHz mono 16-bit WAV).

Reproducible: espeak-ng speaks a fixed text with a fixed voice and rate, sox resamples to
8 kHz without dither (-D) and normalises to -3 dBFS. Same tool versions, same bytes.

    python3 scripts/make_prompts.py          # needs espeak-ng and sox on PATH
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src" / "roomtone" / "data"

#: prompt name (roomtone.telephony.pin PROMPT_*) -> spoken text
PROMPTS = {
    "enter_pin": "Please enter the room PIN, then press the pound key.",
    "wrong_pin": "That PIN is not correct.",
    "pin_cleared": "Cleared.",
    "pin_timeout": "No PIN was entered in time.",
    "room_join": "Thank you. Joining the room now.",
}


def main() -> int:
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed", file=sys.stderr)
            return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in PROMPTS.items():
            raw = Path(tmp) / f"{name}.raw.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
            dest = OUT / f"prompt_{name}.wav"
            subprocess.run(
                ["sox", "-D", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
                 str(dest), "norm", "-3"],
                check=True,
            )
            print(f"{dest.relative_to(OUT.parent.parent.parent)}: {dest.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
