"""Fixtures shared by the SIP interop tests."""

from __future__ import annotations

import pytest

from roomtone.sip.ua import UserAgent


@pytest.fixture
async def ua():
    """roomtone's UA on 127.0.0.1 (ephemeral port, UDP and TCP), user ``roomtone``; closed after."""
    agent = UserAgent("127.0.0.1", 0, user="roomtone")
    await agent.start()
    yield agent
    await agent.close()
