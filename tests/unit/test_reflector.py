"""The reflector's retry (backoff after a failure, cut short when the server is known to be back)
and its paged lists."""

from __future__ import annotations

import asyncio
import time
from functools import partial

from extender.kube.api import NODES
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


def paged_server(total: int) -> FakeApiserver:
    """``total`` nodes, n0, n1, ..., listed in that order."""
    return FakeApiserver(*((NODES, {"metadata": {"name": f"n{i}"}}) for i in range(total)))


def continues(server: FakeApiserver) -> list[str | None]:
    """The item each list call started from (None: a list from the start)."""
    lists = [c.query for c in server.calls if c.method == "GET" and c.path == NODES.collection()]
    return [q["continue"].split("/")[0] if "continue" in q else None for q in lists]


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


async def _synced(server: FakeApiserver, handler: Handler[Node]) -> Reflector[Node]:
    reflector = Reflector(server, NODES.collection(), Node, handler, name="peer/nodes", page_size=2)
    task = asyncio.create_task(reflector.run())
    try:
        await asyncio.wait_for(reflector.synced.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return reflector


async def test_a_list_comes_page_by_page_and_counts_once_complete() -> None:
    server, handler = paged_server(5), PageRecorder()
    reflector = await _synced(server, handler)
    assert handler.pages == [["n0", "n1"], ["n2", "n3"], ["n4"]]
    assert handler.done == [["n0", "n1", "n2", "n3", "n4"]]
    assert continues(server) == [None, "2", "4"]
    lists = [c.query for c in server.calls if c.method == "GET"]
    first_version = lists[1]["continue"].split("/")[1]
    assert all(q["limit"] == "2" for q in lists) and reflector.resource_version == first_version


async def test_a_list_whose_continue_token_expired_starts_over_and_only_the_complete_one_counts() -> None:
    server, handler = paged_server(5), PageRecorder()
    server.expire_page(4)
    await _synced(server, handler)
    assert handler.done == [["n0", "n1", "n2", "n3", "n4"]]  # the list cut short never took effect
    assert continues(server) == [None, "2", "4", None, "2", "4"]


async def test_a_handler_without_pages_gets_the_whole_list_in_replace() -> None:
    server, handler = paged_server(3), Recorder()
    await _synced(server, handler)
    assert handler.items == ["n0", "n1", "n2"]
