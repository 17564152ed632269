"""One incoming-DTMF event type for a call, and one key press counted once across methods.

A phone's key press can reach us three ways: RFC 4733 telephone-events, SIP INFO, and tones in the
audio. Some PBXs negotiate telephone-event and still send tones; some send events *and* tones; a few
send INFO and events. Downstream (a room, an IVR) wants each press once.

The deduplication rule (:class:`DtmfDeduplicator`):

* Each report is an interval ``[start, start + duration]`` on the call's clock (seconds, the same
  clock for all methods: the time the first packet/INFO/audio of the press was received).
* A report from method M with code C is the *same press* as an earlier press P when P has code C,
  P has not yet been matched by method M, and the two intervals overlap once each is widened by
  ``tolerance`` (default 150 ms, which covers jitter-buffer delay, in-band detection latency and an
  INFO sent at key-up rather than key-down). Each press absorbs at most one report per method, so
  "55" sent by events *and* tones still yields two presses.
* Reports from the *same* method are never merged here: each method's receiver already gives exactly
  one report per key press (the RFC 4733 receiver dedups retransmitted and lost packets itself).
* The first method to report a press names it (``method``); the first *end* report completes it and
  is emitted as :class:`DtmfEvent`; later matching reports are dropped (and counted in ``merged``).

A press is emitted at its end, when its duration is known. :meth:`DtmfDeduplicator.started` also
returns a :class:`DtmfStart` the moment a new press begins, for consumers that care about latency
(relaying to a room need not wait for key-up).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from roomtone.dtmf.digits import CANONICAL, digit_for

log = logging.getLogger(__name__)

Method = Literal["rfc4733", "info", "inband"]
METHODS: tuple[Method, ...] = ("rfc4733", "info", "inband")


@dataclass(frozen=True, slots=True)
class DtmfStart:
    """A new key press has begun (its end and duration are not known yet)."""

    digit: str
    code: int
    method: Method
    start: float
    wall_start: float | None = None  # Unix time, when the session knows its wall-clock offset


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """One received key press, whatever method carried it.

    ``start`` is on the call's clock (seconds); ``duration`` in seconds; ``volume`` is the RFC 4733
    volume field (dBm0 below zero, e.g. 10 = -10 dBm0) when known, else None.
    """

    digit: str
    code: int
    method: Method
    start: float
    duration: float
    volume: int | None = None
    wall_start: float | None = None  # Unix time, when the session knows its wall-clock offset

    @property
    def duration_ms(self) -> int:
        return round(self.duration * 1000)

    def as_dict(self, call_id: str = "", at: float | None = None) -> dict[str, object]:
        """The JSON-line shape printed by ``roomtone sip answer``."""
        return {
            "digit": self.digit,
            "code": self.code,
            "method": self.method,
            "duration_ms": self.duration_ms,
            "call_id": call_id,
            "at": at if at is not None else self.wall_start if self.wall_start is not None else self.start,
        }

    def to_json(self, call_id: str = "", at: float | None = None) -> str:
        return json.dumps(self.as_dict(call_id, at), separators=(",", ":"))


@dataclass(slots=True)
class _Press:
    code: int
    method: Method  # the first method that reported it
    start: float
    end: float | None  # None while no method has reported its end
    # method -> (its own start time, has it reported the end)
    reports: dict[str, tuple[float, bool]] = field(default_factory=dict)
    emitted: bool = False


class DtmfDeduplicator:
    """Merges per-method reports into one press each (see the module docstring for the rule)."""

    def __init__(self, tolerance: float = 0.15, horizon: float = 5.0) -> None:
        self.tolerance = tolerance
        self.horizon = horizon
        self.merged = 0
        self._presses: deque[_Press] = deque()

    def started(self, code: int, method: Method, start: float) -> DtmfStart | None:
        """A method saw a press begin. Returns a DtmfStart if it is a new press, else None."""
        self._prune(start)
        press = self._match(code, method, start, None)
        if press is not None:
            press.reports[method] = (start, False)
            return None
        self._presses.append(_Press(code, method, start, None, {method: (start, False)}))
        return DtmfStart(digit_for(code), code, method, start)

    def ended(
        self, code: int, method: Method, start: float, duration: float, volume: int | None = None
    ) -> DtmfEvent | None:
        """A method saw a whole press. Returns the DtmfEvent to emit, or None if already emitted."""
        self._prune(start)
        end = start + max(duration, 0.0)
        press = self._find_own(code, method, start)
        if press is None:
            press = self._match(code, method, start, end)
            if press is None:
                press = _Press(code, method, start, None)
                self._presses.append(press)
        press.reports[method] = (start, True)
        if press.end is None or end > press.end:
            press.end = end
        if press.emitted:
            self.merged += 1
            log.debug("DTMF %s by %s merged with the press already reported by %s",
                      CANONICAL[code], method, press.method)
            return None
        press.emitted = True
        length = duration if press.start == start else end - press.start
        return DtmfEvent(CANONICAL[code], code, press.method, press.start, length, volume)

    # -- internals -------------------------------------------------------------------------------
    def _find_own(self, code: int, method: Method, start: float) -> _Press | None:
        """The press this method announced with :meth:`started` and has not ended yet."""
        for press in reversed(self._presses):
            report = press.reports.get(method)
            if press.code == code and report is not None and not report[1] and \
                    abs(report[0] - start) <= self.tolerance:
                return press
        return None

    def _match(self, code: int, method: Method, start: float, end: float | None) -> _Press | None:
        """The oldest press of another method that this report overlaps (widened by tolerance)."""
        tol = self.tolerance
        hi = (end if end is not None else start) + tol
        for press in self._presses:
            if press.code != code or method in press.reports:
                continue
            press_end = press.end if press.end is not None else max(press.start, start)
            if press.start - tol <= hi and start - tol <= press_end + tol:
                return press
        return None

    def _prune(self, now: float) -> None:
        presses = self._presses
        while presses:
            p = presses[0]
            last = p.end if p.end is not None else p.start
            if now - last > self.horizon:
                presses.popleft()
            else:
                break
