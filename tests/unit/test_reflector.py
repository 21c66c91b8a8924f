"""The reflector's retry: backoff after a failure, cut short when the server is known to be back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from extender.kube.reflector import Handler, Reflector
from extender.wire.core import Node


class FlakyServer:
    """Refuses the first ``failures`` lists, then lists one node and holds the watch open."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.lists: list[float] = []

    async def get(self, path: str, query: Any = ()) -> bytes:
        self.lists.append(time.monotonic())
        if len(self.lists) <= self.failures:
            raise ConnectionRefusedError("connection refused")
        return msgspec.json.encode({"metadata": {"resourceVersion": "1"}, "items": [{"metadata": {"name": "n1"}}]})

    async def stream_lines(self, path: str, query: Any, idle_timeout: float = 0) -> AsyncIterator[bytes]:
        await asyncio.sleep(3600)
        yield b""


class Recorder(Handler[Node]):
    def __init__(self) -> None:
        self.items: list[str] = []
        self.errors: list[str] = []

    def replace(self, items: list[Node]) -> None:
        self.items = [n.metadata.name for n in items]

    def failed(self, error: str) -> None:
        self.errors.append(error)


async def test_a_reflector_in_backoff_retries_at_once_when_woken() -> None:
    server = FlakyServer(failures=4)  # the backoff is 8 s or more after four failures
    handler = Recorder()
    reflector = Reflector(server, "/api/v1/nodes", Node, handler, name="peer/nodes")  # type: ignore[arg-type]
    reflector.max_backoff = 30.0
    task = asyncio.create_task(reflector.run())
    try:
        for _ in range(4):  # let it fail four times, waking it through the short early backoffs
            while len(server.lists) < _ + 1:
                await asyncio.sleep(0.01)
            if _ < 3:
                reflector.wake()
        await asyncio.sleep(0.2)
        assert not reflector.synced.is_set() and len(handler.errors) == 4  # sleeping in backoff now
        woken = time.monotonic()
        reflector.wake()  # a probe got through: the peer is back
        await asyncio.wait_for(reflector.synced.wait(), 2)
        assert handler.items == ["n1"] and server.lists[-1] - woken < 1.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
