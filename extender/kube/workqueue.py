"""A work queue of keys, as client-go's workqueue: deduplicated, one worker per key at a time.

Two workers on one key could land out of order (a status read before another, written after
it) and leave the object showing a state long gone; so a key added while a worker has it is
not given to a second worker but handed out again once the first is done, and the handler
reads the latest state then. Handlers are level-based: a key says what to look at, not what
happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
log = logging.getLogger("spillover.workqueue")


class WorkQueue(Generic[K]):
    """Keys are taken only while ``run`` runs: a leader-only controller's queue stays empty while
    it follows (its resync fills it when it leads), and nothing piles up on a follower."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        """Keys a worker has now."""
        self._dirty: set[K] = set()
        """Keys added while a worker had them: handed out again once it is done."""
        self._running = False

    def add(self, key: K) -> None:
        if not self._running:
            return
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.add, key)

    def __len__(self) -> int:
        return len(self._queued)

    async def run(self, handle: Callable[[K], Awaitable[None]], workers: int, first: Iterable[K] = ()) -> None:
        """Hand keys to ``workers`` concurrent calls of ``handle`` until cancelled, ``first`` first;
        then forget them."""
        self._running = True
        for key in first:
            self.add(key)
        tasks = [asyncio.create_task(self._work(handle), name=f"{self.name}-{i}") for i in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            self._running = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._queue = asyncio.Queue()
            self._queued.clear()
            self._active.clear()
            self._dirty.clear()

    async def _work(self, handle: Callable[[K], Awaitable[None]]) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                await handle(key)
            except Exception as exc:
                log.warning("%s: %s not done: %s", self.name, key, exc)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
