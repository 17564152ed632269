"""The shipped PIN prompts load, are 8 kHz speech-length audio, and custom directories override them."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from roomtone.telephony import pin
from roomtone.telephony.prompts import PromptError, load_prompt


@pytest.mark.parametrize(
    "name", [pin.PROMPT_ENTER, pin.PROMPT_WRONG, pin.PROMPT_CLEARED, pin.PROMPT_TIMEOUT, pin.PROMPT_JOIN]
)
def test_default_prompts(name: str) -> None:
    samples = load_prompt(name)
    assert 0.4 < len(samples) / 8000 < 8
    assert np.abs(samples.astype(np.int32)).max() > 10000  # normalised speech, not silence


def test_custom_directory_and_errors(tmp_path: Path) -> None:
    with wave.open(str(tmp_path / "enter_pin.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.full(800, 1234, dtype="<i2").tobytes())
    assert load_prompt("enter_pin", str(tmp_path)).tolist() == [1234] * 800
    with wave.open(str(tmp_path / "wrong_pin.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 10)
    with pytest.raises(PromptError, match="8000 Hz"):
        load_prompt("wrong_pin", str(tmp_path))
    with pytest.raises(PromptError):
        load_prompt("no_such_prompt")
