"""The DTMF digit table: the one place that maps characters to RFC 4733 event codes.

RFC 4733 §3.2 assigns telephone-event codes 0-9 to the digits, 10 to ``*``, 11 to ``#``,
12-15 to ``A``-``D`` and 16 to flash (hook flash / register recall).

Choices, and where they differ from LiveKit:

* Canonical characters for 12-15 are uppercase ``A``-``D``; lowercase is accepted on input.
  LiveKit's SIP bridge emits lowercase ``a``-``d``.
* Flash (16) is canonically ``R`` (as PJSIP writes it); ``!`` is accepted too (the SIP INFO
  ``application/dtmf-relay`` convention). LiveKit emits ``"\\x00"`` for flash, which no SDK user
  can type or print; we accept it on input for compatibility and never emit it.
* Pauses inside a sequence: ``w`` and ``,`` = 0.5 s, ``W`` = 1 s. Any other character is rejected
  with an error that names it; LiveKit silently plays silence for unknown characters.

Interpreting a room ``SipDTMF{code, digit}``: an empty digit means "use the code"; when a digit is
present it wins over a disagreeing code (LiveKit does the same), and we log the disagreement. A digit
string of several characters is a sequence (with pauses allowed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

FLASH = 16
MAX_EVENT = 16

#: code -> canonical character.
CANONICAL: tuple[str, ...] = (
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#", "A", "B", "C", "D", "R",
)

#: every accepted input character -> code.
_CHAR_TO_CODE: dict[str, int] = {ch: code for code, ch in enumerate(CANONICAL)}
_CHAR_TO_CODE.update({"a": 12, "b": 13, "c": 14, "d": 15, "!": FLASH, "r": FLASH, "\x00": FLASH})

#: pause characters -> seconds of silence.
PAUSES: dict[str, float] = {"w": 0.5, ",": 0.5, "W": 1.0}


class DtmfError(ValueError):
    """A digit, code or sequence that cannot be played. The message names the culprit."""


def code_for(char: str) -> int:
    """Event code for one digit character; raises :class:`DtmfError` naming the character."""
    try:
        return _CHAR_TO_CODE[char]
    except (KeyError, TypeError):
        raise DtmfError(f"unknown DTMF digit {char!r}: expected 0-9, *, #, A-D or R (flash)") from None


def digit_for(code: int) -> str:
    """Canonical character for an event code 0-16; raises :class:`DtmfError` otherwise."""
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= MAX_EVENT:
        return CANONICAL[code]
    raise DtmfError(f"unknown DTMF event code {code!r}: expected 0-16")


def is_digit(char: str) -> bool:
    return char in _CHAR_TO_CODE


def canonical(char: str) -> str:
    """Canonical spelling of a digit character (``a`` -> ``A``, ``!`` -> ``R``)."""
    return CANONICAL[code_for(char)]


@dataclass(frozen=True, slots=True)
class Tone:
    """One key press in a sequence."""

    code: int

    @property
    def digit(self) -> str:
        return CANONICAL[self.code]


@dataclass(frozen=True, slots=True)
class Pause:
    """Silence inside a sequence."""

    seconds: float


Step = Tone | Pause

#: every accepted character -> its step; steps are immutable, so one instance each is shared.
_STEP_FOR_CHAR: dict[str, Step] = {ch: Tone(code) for ch, code in _CHAR_TO_CODE.items()}
_STEP_FOR_CHAR.update({ch: Pause(seconds) for ch, seconds in PAUSES.items()})


def parse_sequence(text: str) -> list[Step]:
    """Parse ``"12w3#"`` into tones and pauses. Raises :class:`DtmfError` naming a bad character.

    Whitespace is ignored so that users can write ``"123 456"``.
    """
    if len(text) == 1 and text in _STEP_FOR_CHAR:  # the usual case (a relayed key press)
        return [_STEP_FOR_CHAR[text]]
    steps: list[Step] = []
    for index, ch in enumerate(text):
        step = _STEP_FOR_CHAR.get(ch)
        if step is not None:
            steps.append(step)
        elif ch in " \t":
            continue
        else:
            raise DtmfError(
                f"unknown DTMF character {ch!r} at position {index} of {text!r}: "
                "expected 0-9, *, #, A-D, R (flash) or pauses w , W"
            )
    return steps


def interpret_sip_dtmf(code: int, digit: str) -> list[Step]:
    """Turn a room ``SipDTMF{code, digit}`` into steps to play.

    Empty digit: the code decides. Otherwise the digit (or digit sequence) wins, as in LiveKit,
    and a disagreement with the code is logged.
    """
    if not digit:
        return [_STEP_FOR_CHAR[digit_for(code)]]  # digit_for validates, naming a bad code
    steps = parse_sequence(digit)
    if not steps:
        raise DtmfError(f"DTMF digit string {digit!r} contains no digits")
    if len(steps) == 1 and isinstance(steps[0], Tone) and steps[0].code != code:
        log.info(
            "SipDTMF code %r disagrees with digit %r; using the digit (%s = code %d)",
            code, digit, steps[0].digit, steps[0].code,
        )
    return steps
