"""The production extender server on a free loopback port, with a client session pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from extender.scheduling.state import SchedulingState
from extender.server.extender_app import start_extender_server
from extender.server.metrics import Metrics


@asynccontextmanager
async def served_extender(state: SchedulingState, metrics: Metrics) -> AsyncIterator[aiohttp.ClientSession]:
    server = await start_extender_server(state, metrics, "127.0.0.1", 0)
    session = aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}")
    try:
        yield session
    finally:
        await session.close()
        await server.close()
