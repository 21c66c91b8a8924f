"""The delegator's status mirror: one writer per proxy, and no change lost while it writes."""

from __future__ import annotations

import asyncio

from extender.config import Config
from extender.delegation.delegator import Delegator


async def test_a_proxy_is_never_written_by_two_workers_at_once_and_a_change_during_a_write_is_written_after() -> None:
    delegator = Delegator(home=None, registry=None, config=Config())  # type: ignore[arg-type]
    writing: set[str] = set()
    overlaps: list[str] = []
    writes: list[str] = []
    release = asyncio.Event()

    async def sync(peer: str, uid: str) -> None:
        if uid in writing:
            overlaps.append(uid)
        writing.add(uid)
        writes.append(uid)
        if len(writes) == 1:
            await release.wait()  # the first write is slow: the proxy changes meanwhile
        writing.discard(uid)

    delegator._sync_proxy = sync  # type: ignore[method-assign]
    workers = [asyncio.create_task(delegator._worker()) for _ in range(4)]
    try:
        delegator._enqueue("east", "uid-1")
        await asyncio.sleep(0.01)  # a worker is now writing uid-1
        delegator._enqueue("east", "uid-1")  # Running arrives while Pending is being written
        delegator._enqueue("east", "uid-1")
        await asyncio.sleep(0.01)
        assert writes == ["uid-1"] and not overlaps  # the other workers did not take it
        release.set()
        for _ in range(100):
            if len(writes) == 2 and not writing:
                break
            await asyncio.sleep(0.01)
        assert writes == ["uid-1", "uid-1"]  # written once more, after the first write: the latest wins
        assert not overlaps
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
