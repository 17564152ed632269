"""``roomtone.aio``: coroutines run eagerly (the SCTP flush, the DTMF relay hops); if one suspends, the rest
continues as a task with values and exceptions forwarded; errors are logged, never raised."""

from __future__ import annotations

import asyncio
import logging

import pytest

from roomtone.aio import run_eagerly


async def test_synchronous_coroutine_runs_before_the_call_returns() -> None:
    sent: list[str] = []

    async def flush() -> None:
        sent.append("packet")

    run_eagerly(flush(), "flush")
    assert sent == ["packet"]  # no loop turn needed


async def test_suspension_continues_as_a_task_with_the_value_forwarded() -> None:
    steps: list[object] = []
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def flush() -> None:
        steps.append("before")
        steps.append(await gate)
        await asyncio.sleep(0)  # a bare yield after resuming is fine too
        steps.append("after")

    run_eagerly(flush(), "flush")
    assert steps == ["before"]
    gate.set_result("value")
    for _ in range(5):
        await asyncio.sleep(0)
    assert steps == ["before", "value", "after"]


async def test_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def fails_at_once() -> None:
        raise RuntimeError("boom now")

    async def fails_later() -> None:
        await gate
        raise RuntimeError("boom later")

    with caplog.at_level(logging.ERROR, logger="roomtone.aio"):
        run_eagerly(fails_at_once(), "first flush")
        run_eagerly(fails_later(), "second flush")
        gate.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
    assert "first flush failed" in caplog.text and "boom now" in caplog.text
    assert "second flush failed" in caplog.text and "boom later" in caplog.text


async def test_an_exception_thrown_into_the_suspended_coroutine_reaches_it() -> None:
    seen: list[str] = []
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def flush() -> None:
        try:
            await gate
        except ValueError as exc:
            seen.append(f"caught {exc}")

    run_eagerly(flush(), "flush")
    gate.set_exception(ValueError("x"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert seen == ["caught x"]


async def test_start_eagerly_returns_a_future_for_every_outcome() -> None:
    from roomtone.aio import start_eagerly

    order: list[str] = []

    async def quick() -> int:
        order.append("quick ran")
        return 7

    fut = start_eagerly(quick())
    order.append("returned")
    assert order == ["quick ran", "returned"] and fut.done() and fut.result() == 7

    async def broken() -> None:
        raise KeyError("k")

    failed = start_eagerly(broken())
    assert failed.done() and isinstance(failed.exception(), KeyError)

    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def waits() -> int:
        order.append("waits started")
        return await gate + 1

    task = start_eagerly(waits())
    assert order[-1] == "waits started" and not task.done()
    gate.set_result(41)
    assert await task == 42
