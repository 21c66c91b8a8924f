"""The reflector's retry: backoff after a failure, cut short when the server is known to be back."""

from __future__ import annotations

import asyncio
import time
from functools import partial

from extender.kube.api import NODES
from extender.kube.reflector import Handler, Reflector
from extender.wire.core import Node
from tests.unit.apiserver import FakeApiserver
from tests.unit.fakes import until


class Recorder(Handler[Node]):
    def __init__(self) -> None:
        self.items: list[str] = []
        self.errors: list[str] = []

    def replace(self, items: list[Node]) -> None:
        self.items = [n.metadata.name for n in items]

    def failed(self, error: str) -> None:
        self.errors.append(error)


async def test_a_reflector_in_backoff_retries_at_once_when_woken() -> None:
    server = FakeApiserver((NODES, {"metadata": {"name": "n1"}}))
    for _ in range(4):  # the backoff is 8 s or more after four failures
        server.fail("GET", NODES.collection(), 503)
    handler = Recorder()
    reflector = Reflector(server, NODES.collection(), Node, handler, name="peer/nodes")
    reflector.max_backoff = 30.0
    task = asyncio.create_task(reflector.run())
    try:
        for failed in range(1, 5):  # let it fail four times, waking it through the short early backoffs
            await until(partial(lambda n: len(handler.errors) == n, failed))
            if failed < 4:
                reflector.wake()
        await asyncio.sleep(0.2)
        assert not reflector.synced.is_set() and len(handler.errors) == 4  # sleeping in backoff now
        woken = time.monotonic()
        reflector.wake()  # a probe got through: the peer is back
        await asyncio.wait_for(reflector.synced.wait(), 2)
        assert handler.items == ["n1"] and time.monotonic() - woken < 1.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
