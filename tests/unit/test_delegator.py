"""The delegator's writes: one status writer per proxy, the latest word last, no bind held up by a peer that is down."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from extender.config import Config
from extender.delegation.delegator import Delegate, Delegator, PeerDelegates, Proxy
from tests.unit.fakes import spilled_proxy


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


class SlowHome:
    """The home apiserver: records status writes; the first one takes until ``release`` is set."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.release = asyncio.Event()

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> bytes:
        phase = body["status"]["phase"]
        if not self.writes and phase == "Running":
            await self.release.wait()
        self.writes.append(phase)
        return b"{}"


def _delegator_with_a_running_delegate() -> tuple[Delegator, SlowHome, Proxy]:
    home = SlowHome()
    delegator = Delegator(home=home, registry=None, config=Config())  # type: ignore[arg-type]
    proxy = spilled_proxy("uid-1", "web-1")
    delegator.proxies[proxy.uid] = proxy
    entry = PeerDelegates(runtime=None)  # type: ignore[arg-type]
    entry.by_proxy[proxy.uid] = Delegate("shop", "web-1-x", proxy.uid, {"phase": "Running"}, seen_at=0.0)
    delegator.peers["east"] = entry
    return delegator, home, proxy


async def test_a_proxy_failed_while_its_running_status_is_being_written_ends_failed() -> None:
    delegator, home, proxy = _delegator_with_a_running_delegate()
    mirror = asyncio.create_task(delegator._sync_proxy("east", proxy.uid))
    await asyncio.sleep(0.01)  # the Running write is in flight
    lost = asyncio.create_task(delegator._delegate_lost(proxy, "DelegateDeleted", "deleted in peer east"))
    await asyncio.sleep(0.01)
    home.release.set()
    await asyncio.gather(mirror, lost)
    assert home.writes == ["Running", "Failed"]  # the failure is the last word


async def test_a_status_read_before_a_failure_is_not_written_after_it() -> None:
    delegator, home, proxy = _delegator_with_a_running_delegate()
    home.release.set()
    await delegator._delegate_lost(proxy, "DelegateMissing", "no delegate")
    await delegator._sync_proxy("east", proxy.uid)  # a Running event queued before the failure
    assert home.writes == ["Failed"]


class Refusing:
    """A peer's client while its apiserver is down."""

    def __init__(self) -> None:
        self.calls = 0

    async def request(self, *args: Any, **kwargs: Any) -> bytes:
        self.calls += 1
        raise ConnectionRefusedError("connection refused")


async def test_a_leftover_delegate_in_an_unreachable_peer_does_not_block_the_bind_elsewhere() -> None:
    from extender.capacity.model import PeerState

    delegator = Delegator(home=None, registry=None, config=Config())  # type: ignore[arg-type]
    down = Refusing()
    runtime = type("Runtime", (), {"raw": down, "state": PeerState(name="east", virtual_node="spillover-east")})()
    entry = PeerDelegates(runtime=runtime)  # type: ignore[arg-type]
    entry.by_proxy["uid-1"] = Delegate("shop", "web-1-x", "uid-1", {"phase": "Running"}, seen_at=0.0)
    delegator.peers["east"] = entry  # east is unreachable (PeerState starts so)

    await delegator._remove_leftovers("uid-1", keep="west")  # the bind to west goes on

    assert down.calls == 0


async def test_a_replica_that_becomes_leader_acts_on_what_it_saw_while_following() -> None:
    delegator, home, proxy = _delegator_with_a_running_delegate()
    home.release.set()
    delegator.leader.enabled, delegator.leader.leading = True, False  # another replica leads
    deleting = Proxy("uid-2", "shop", "web-2", "east", "spillover-east", True, 0, False, False)
    delegator.proxies[deleting.uid] = deleting
    finalised: list[str] = []

    async def finalise(p: Proxy) -> None:
        finalised.append(p.name)

    delegator._finalise_proxy = finalise  # type: ignore[method-assign]
    worker = asyncio.create_task(delegator._worker())
    try:
        delegator.proxy_changed(proxy)  # seen while following: let go
        delegator.proxy_changed(deleting)
        await asyncio.sleep(0.05)
        assert home.writes == [] and finalised == []

        delegator.leader.leading = True
        delegator.resync()
        for _ in range(100):
            if home.writes and finalised:
                break
            await asyncio.sleep(0.01)
        assert home.writes == ["Running"] and finalised == ["web-2"]
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def test_a_delegate_pending_only_briefly_has_only_its_running_status_written() -> None:
    delegator, home, proxy = _delegator_with_a_running_delegate()
    home.release.set()
    delegate = delegator.peers["east"].by_proxy[proxy.uid]
    delegate.status, delegate.seen_at = {"phase": "Pending"}, time.monotonic()
    await delegator._sync_proxy("east", proxy.uid)  # just created in the peer: not written yet
    delegate.status = {"phase": "Running"}
    await delegator._sync_proxy("east", proxy.uid)
    assert home.writes == ["Running"]


async def test_a_delegate_pending_for_a_while_has_its_pending_status_written() -> None:
    delegator, home, proxy = _delegator_with_a_running_delegate()
    home.release.set()
    delegate = delegator.peers["east"].by_proxy[proxy.uid]
    delegate.status, delegate.seen_at = {"phase": "Pending"}, time.monotonic() - 5
    await delegator._sync_proxy("east", proxy.uid)
    assert home.writes == ["Pending"]
