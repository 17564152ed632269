"""PIN entry for dispatch rules that carry a PIN: a sans-IO state machine.

Fed key presses (from any DTMF method: RFC 4733, SIP INFO, in-band, they all arrive here as the
same digit events) and the current time; it answers with actions for the bridge to carry out:
play a prompt, check a PIN, or give up. The bridge owns the clock, the audio and the dispatch
rules; this object owns only the rules of entry, so they are tested without a phone.

Better than LiveKit's prompt (livekit/sip ``inbound.go`` ``pinPrompt``, one attempt, ``#`` only,
no timeouts):

* ``#`` submits; ``#`` with nothing entered means "no PIN" (join an open rule, as in LiveKit).
* ``*`` clears what was typed so far (and says so with the ``pin_cleared`` prompt).
* Inter-digit timeout: when digits were typed and the caller stops, they are submitted (callers
  forget ``#``); with nothing typed, the attempt counts as failed and the prompt is repeated.
* Overall timeout for the whole entry, and a configurable number of retries after a wrong PIN.
* More than ``max_digits`` digits counts as a wrong attempt at once.
* Letters A-D and flash are not PIN characters: ignored, logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

log = logging.getLogger(__name__)

PROMPT_ENTER = "enter_pin"
PROMPT_WRONG = "wrong_pin"
PROMPT_CLEARED = "pin_cleared"
PROMPT_TIMEOUT = "pin_timeout"
PROMPT_JOIN = "room_join"


@dataclass(frozen=True)
class PinConfig:
    max_digits: int = 16
    inter_digit_timeout: float = 5.0
    overall_timeout: float = 60.0
    #: wrong attempts allowed after the first one (0 = LiveKit's single attempt).
    retries: int = 2


@dataclass(frozen=True)
class Play:
    prompt: str


@dataclass(frozen=True)
class Submit:
    """Check this PIN against the dispatch rules (``no_pin``: the caller pressed ``#`` alone)."""

    pin: str
    no_pin: bool = False


@dataclass(frozen=True)
class Fail:
    reason: str  # "wrong-pin", "timeout", "no-input"


Action = Play | Submit | Fail


class PinState(Enum):
    IDLE = "idle"
    ENTERING = "entering"
    CHECKING = "checking"
    ACCEPTED = "accepted"
    FAILED = "failed"


class PinEntry:
    def __init__(self, config: PinConfig | None = None) -> None:
        self.config = config or PinConfig()
        self.state = PinState.IDLE
        self.buffer = ""
        self.attempts = 0
        self._digit_deadline: float | None = None
        self._overall_deadline: float | None = None

    def start(self, now: float) -> list[Action]:
        self.state = PinState.ENTERING
        self._overall_deadline = now + self.config.overall_timeout
        self._digit_deadline = now + self.config.inter_digit_timeout
        return [Play(PROMPT_ENTER)]

    def next_deadline(self) -> float | None:
        if self.state is not PinState.ENTERING:
            return self._overall_deadline if self.state is PinState.CHECKING else None
        deadlines = [d for d in (self._digit_deadline, self._overall_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def prompt_until(self, t: float) -> None:
        """Prompts play until ``t``: the inter-digit clock starts when they end, not before."""
        if self._digit_deadline is not None:
            self._digit_deadline = max(self._digit_deadline, t + self.config.inter_digit_timeout)

    def digit(self, digit: str, now: float) -> list[Action]:
        """One key press, already in canonical form (``0-9 * # A-D R``)."""
        if self.state is not PinState.ENTERING:
            log.debug("PIN: ignoring %r while %s", digit, self.state.value)
            return []
        self._digit_deadline = now + self.config.inter_digit_timeout
        if digit == "*":
            self.buffer = ""
            return [Play(PROMPT_CLEARED)]
        if digit == "#":
            return self._submit()
        if digit not in "0123456789" or len(digit) != 1:
            log.info("PIN: ignoring non-digit key %r", digit)
            return []
        self.buffer += digit
        if len(self.buffer) > self.config.max_digits:
            log.info("PIN: more than %d digits entered", self.config.max_digits)
            return self._wrong()
        return []

    def poll(self, now: float) -> list[Action]:
        """Call when ``next_deadline()`` has passed."""
        if self.state in (PinState.ENTERING, PinState.CHECKING) and self._overall_deadline is not None:
            if now >= self._overall_deadline:
                self.state = PinState.FAILED
                return [Play(PROMPT_TIMEOUT), Fail("timeout")]
        if self.state is PinState.ENTERING and self._digit_deadline is not None and now >= self._digit_deadline:
            if self.buffer:
                return self._submit()
            self._digit_deadline = now + self.config.inter_digit_timeout
            return self._attempt_failed("no-input", PROMPT_TIMEOUT)
        return []

    def verdict(self, accepted: bool, now: float) -> list[Action]:
        """The bridge's answer to the last :class:`Submit`."""
        if self.state is not PinState.CHECKING:
            return []
        if accepted:
            self.state = PinState.ACCEPTED
            return [Play(PROMPT_JOIN)]
        self._digit_deadline = now + self.config.inter_digit_timeout
        return self._wrong()

    def _submit(self) -> list[Action]:
        pin, self.buffer = self.buffer, ""
        self.state = PinState.CHECKING
        return [Submit(pin=pin, no_pin=not pin)]

    def _wrong(self) -> list[Action]:
        return self._attempt_failed("wrong-pin", PROMPT_WRONG)

    def _attempt_failed(self, reason: str, prompt: str) -> list[Action]:
        self.buffer = ""
        self.attempts += 1
        if self.attempts > self.config.retries:
            self.state = PinState.FAILED
            return [Play(prompt), Fail(reason)]
        self.state = PinState.ENTERING
        return [Play(prompt), Play(PROMPT_ENTER)]
