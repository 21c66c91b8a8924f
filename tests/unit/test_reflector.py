"""The reflector's retry (backoff after a failure, cut short when the server is known to be back)
and its paged lists."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import msgspec

from extender.kube.api import NODES
from extender.kube.raw import ApiError
from extender.kube.reflector import Handler, Listing, Reflector
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


class PagedServer:
    """Lists ``total`` nodes ``limit`` at a time; the continue token of page ``expire_at`` is refused
    once with 410 (expired), as an apiserver does when the list took longer than its compaction."""

    def __init__(self, total: int, expire_at: int | None = None) -> None:
        self.total = total
        self.expire_at = expire_at
        self.queries: list[dict[str, str]] = []

    async def list_page(self, path: str, query: Any = ()) -> bytes:
        asked = {k: str(v) for k, v in query}
        self.queries.append(asked)
        start = int(asked.get("continue", "0"))
        if self.expire_at is not None and start == self.expire_at:
            self.expire_at = None
            raise ApiError(410, b'{"reason":"Expired","message":"continue parameter is too old"}', "GET", path)
        limit = int(asked["limit"])
        end = min(self.total, start + limit)
        token = str(end) if end < self.total else ""
        items = [{"metadata": {"name": f"n{i}"}} for i in range(start, end)]
        return msgspec.json.encode({"metadata": {"resourceVersion": "7", "continue": token}, "items": items})

    async def stream_lines(self, path: str, query: Any, idle_timeout: float = 0) -> AsyncIterator[bytes]:
        await asyncio.sleep(3600)
        yield b""


class PageRecorder(Handler[Node]):
    def __init__(self) -> None:
        self.pages: list[list[str]] = []
        self.done: list[list[str]] = []

    def listing(self) -> Listing[Node]:
        recorder = self

        class _Pages(Listing[Node]):
            def __init__(self) -> None:
                self.seen: list[str] = []

            def add(self, items: list[Node]) -> None:
                recorder.pages.append([n.metadata.name for n in items])
                self.seen += [n.metadata.name for n in items]

            def done(self) -> None:
                recorder.done.append(self.seen)

        return _Pages()


async def _synced(server: PagedServer, handler: Handler[Node]) -> Reflector[Node]:
    reflector = Reflector(server, "/api/v1/nodes", Node, handler, name="peer/nodes", page_size=2)  # type: ignore[arg-type]
    task = asyncio.create_task(reflector.run())
    try:
        await asyncio.wait_for(reflector.synced.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return reflector


async def test_a_list_comes_page_by_page_and_counts_once_complete() -> None:
    server, handler = PagedServer(total=5), PageRecorder()
    reflector = await _synced(server, handler)
    assert handler.pages == [["n0", "n1"], ["n2", "n3"], ["n4"]]
    assert handler.done == [["n0", "n1", "n2", "n3", "n4"]]
    assert [q.get("continue") for q in server.queries] == [None, "2", "4"]
    assert all(q["limit"] == "2" for q in server.queries) and reflector.resource_version == "7"


async def test_a_list_whose_continue_token_expired_starts_over_and_only_the_complete_one_counts() -> None:
    server, handler = PagedServer(total=5, expire_at=4), PageRecorder()
    await _synced(server, handler)
    assert handler.done == [["n0", "n1", "n2", "n3", "n4"]]  # the list cut short never took effect
    assert [q.get("continue") for q in server.queries] == [None, "2", "4", None, "2", "4"]


async def test_a_handler_without_pages_gets_the_whole_list_in_replace() -> None:
    server, handler = PagedServer(total=3), Recorder()
    await _synced(server, handler)
    assert handler.items == ["n0", "n1", "n2"]
