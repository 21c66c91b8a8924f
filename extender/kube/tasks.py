"""Background tasks, started and stopped the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any

log = logging.getLogger("spillover.tasks")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel, then wait for each to finish, swallowing what they raise on the way out."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def every(seconds: float, step: Callable[[], Awaitable[None]], failed: str) -> None:
    """Run ``step`` every ``seconds`` (the first after one wait) until cancelled; a round that
    fails is logged as "``failed``: why" and the next one runs as usual."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await step()
        except Exception as exc:
            log.warning("%s: %s", failed, exc)


class TaskSet:
    """Tasks started on the side (a reconcile, a reaction to a watch event, a loop).

    The event loop keeps only weak references to tasks, so each is held here until it is done,
    and one that dies is logged rather than lost. A set that is not ``accepting`` drops what it
    is given: a leader-only controller's reactions are taken only while it leads (see
    ``extender.kube.leader``), and what it let go is caught up by its resync when it next does.
    """

    def __init__(self, owner: str, *, accepting: bool = True) -> None:
        self.owner = owner
        self.accepting = accepting
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> bool:
        """Start ``coro`` (False, and ``coro`` closed unrun, when not accepting)."""
        if not self.accepting:
            coro.close()
            return False
        task = asyncio.ensure_future(coro)
        task.set_name(name or f"{self.owner}-task")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s of %s died: %r", task.get_name(), self.owner, task.exception())

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        """Accept tasks inside the block; on the way out, stop accepting and cancel what runs."""
        self.accepting = True
        try:
            yield
        finally:
            self.accepting = False
            await self.cancel()

    async def cancel(self) -> None:
        await cancel_and_wait(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)
