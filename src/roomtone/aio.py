"""Running a coroutine eagerly: its first steps now, inside the caller, the rest as a task.

Why: a relayed DTMF digit or data packet crosses several hops (room delivery, the SIP
participant's relay, a call's send worker, aiortc's data channel flush), and ``create_task`` at each
hop defers the work to a later event loop turn, behind everything else that became ready (with
100 calls, behind 99 other digits at every hop). Most of these coroutines do their real work
before their first ``await`` that truly suspends, so running them eagerly puts the packet on the
wire before the caller returns. Python 3.12's eager task factory does this generically; roomtone
also runs on 3.11. Once the coroutine really suspends, the rest runs as an ordinary task, exactly
as ``create_task`` would have run it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Reyield:
    """Hands an already-yielded awaitable back to the running task (the resumption of an eager start)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.obj)


async def _resume(coro: Coroutine[Any, Any, Any], yielded: Any, what: str) -> None:
    """Continue ``coro`` (suspended on ``yielded``) under a task, forwarding values and exceptions;
    its own failure is logged here rather than left to "Task exception was never retrieved"."""
    try:
        await _drive(coro, yielded)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s failed", what)


async def _drive(coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
    while True:
        try:
            value = await _Reyield(yielded)
        except BaseException as exc:  # cancellation too: the inner coroutine decides
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            yielded = coro.send(value)
        except StopIteration:
            return


def run_eagerly(coro: Coroutine[Any, Any, Any], what: str) -> None:
    """Run ``coro`` now up to its first real suspension; the remainder (if any) becomes a task.

    Errors are logged, never raised into the caller (as with a stock fire-and-forget task).
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return
    except Exception:
        log.exception("%s failed", what)
        return
    task = asyncio.ensure_future(_resume(coro, yielded, what))
    _resumed.add(task)  # the loop keeps only weak references to tasks
    task.add_done_callback(_resumed.discard)


_resumed: set[asyncio.Future[None]] = set()


def start_eagerly(coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Like ``asyncio.ensure_future(coro)``, but the coroutine runs now up to its first real
    suspension. Returns the task running the rest, or a done future with its result or exception."""
    loop = asyncio.get_running_loop()
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        done: asyncio.Future[T] = loop.create_future()
        done.set_result(stop.value)
        return done
    except BaseException as exc:
        failed: asyncio.Future[T] = loop.create_future()
        failed.set_exception(exc)
        return failed
    return asyncio.ensure_future(_continue(coro, yielded))


async def _continue(coro: Coroutine[Any, Any, T], yielded: Any) -> T:
    while True:
        try:
            value = await _Reyield(yielded)
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            continue
        try:
            yielded = coro.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
