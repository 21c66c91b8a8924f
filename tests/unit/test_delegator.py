"""Delegation's writes: one status writer per proxy, the latest word last, no bind held up by a peer that is down."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from extender.delegation.mirror import StatusMirror
from extender.delegation.view import Delegate, Delegations, PeerDelegates, Proxy
from extender.delegation.writer import ProxyWriter
from extender.kube.workqueue import WorkQueue
from extender.server.metrics import Metrics
from tests.unit.fakes import spilled_proxy


async def test_a_key_is_never_worked_by_two_workers_at_once_and_one_added_meanwhile_is_worked_after() -> None:
    queue: WorkQueue[str] = WorkQueue("test")
    writing: set[str] = set()
    overlaps: list[str] = []
    writes: list[str] = []
    release = asyncio.Event()

    async def sync(uid: str) -> None:
        if uid in writing:
            overlaps.append(uid)
        writing.add(uid)
        writes.append(uid)
        if len(writes) == 1:
            await release.wait()  # the first write is slow: the proxy changes meanwhile
        writing.discard(uid)

    workers = asyncio.create_task(queue.run(sync, workers=4, first=["uid-1"]))
    try:
        await asyncio.sleep(0.01)  # a worker is now writing uid-1
        queue.add("uid-1")  # Running arrives while Pending is being written
        queue.add("uid-1")
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
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)


def test_a_queue_not_running_takes_nothing() -> None:
    queue: WorkQueue[str] = WorkQueue("test")
    queue.add("uid-1")  # a follower's watch event: the leader acts on it, not this replica
    assert len(queue) == 0


class Events:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def record(self, ref: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        self.reasons.append(reason)


class SlowHome:
    """The home apiserver: records status writes; the first one takes until ``release`` is set."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.deleted: list[str] = []
        self.release = asyncio.Event()

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> bytes:
        if method == "DELETE":
            self.deleted.append(path)
            return b"{}"
        phase = body["status"]["phase"]
        if not self.writes and phase == "Running":
            await self.release.wait()
        self.writes.append(phase)
        return b"{}"


def _running_delegate() -> tuple[Delegations, ProxyWriter, StatusMirror, SlowHome, Proxy]:
    home = SlowHome()
    state = Delegations()
    events = Events()
    writer = ProxyWriter(home, state, events, Metrics())  # type: ignore[arg-type]
    mirror = StatusMirror(state, writer, events)
    proxy = spilled_proxy("uid-1", "web-1")
    state.proxies[proxy.uid] = proxy
    entry = PeerDelegates(runtime=None)  # type: ignore[arg-type]
    entry.by_proxy[proxy.uid] = Delegate("shop", "web-1-x", proxy.uid, {"phase": "Running"}, seen_at=0.0)
    state.peers["east"] = entry
    return state, writer, mirror, home, proxy


async def test_a_proxy_failed_while_its_running_status_is_being_written_ends_failed() -> None:
    _, writer, mirror, home, proxy = _running_delegate()
    mirrored = asyncio.create_task(mirror.sync(("east", proxy.uid)))
    await asyncio.sleep(0.01)  # the Running write is in flight
    lost = asyncio.create_task(writer.delegate_lost(proxy, "DelegateDeleted", "deleted in peer east"))
    await asyncio.sleep(0.01)
    home.release.set()
    await asyncio.gather(mirrored, lost)
    assert home.writes == ["Running", "Failed"]  # the failure is the last word


async def test_a_status_read_before_a_failure_is_not_written_after_it() -> None:
    _, writer, mirror, home, proxy = _running_delegate()
    home.release.set()
    await writer.delegate_lost(proxy, "DelegateMissing", "no delegate")
    await mirror.sync(("east", proxy.uid))  # a Running event queued before the failure
    assert home.writes == ["Failed"]


async def test_a_delegate_pending_only_briefly_has_only_its_running_status_written() -> None:
    state, _, mirror, home, proxy = _running_delegate()
    home.release.set()
    delegate = state.peers["east"].by_proxy[proxy.uid]
    delegate.status, delegate.seen_at = {"phase": "Pending"}, time.monotonic()
    await mirror.sync(("east", proxy.uid))  # just created in the peer: not written yet
    delegate.status = {"phase": "Running"}
    await mirror.sync(("east", proxy.uid))
    assert home.writes == ["Running"]


async def test_a_delegate_pending_for_a_while_has_its_pending_status_written() -> None:
    state, _, mirror, home, proxy = _running_delegate()
    home.release.set()
    delegate = state.peers["east"].by_proxy[proxy.uid]
    delegate.status, delegate.seen_at = {"phase": "Pending"}, time.monotonic() - 5
    await mirror.sync(("east", proxy.uid))
    assert home.writes == ["Pending"]


async def test_a_replica_that_becomes_leader_acts_on_what_it_saw_while_following() -> None:
    from extender.delegation.avoid import AvoidList
    from extender.delegation.lifecycle import Lifecycle
    from extender.delegation.sweep import OrphanSweeper
    from extender.delegation.watches import DelegationWatches
    from extender.kube.leader import LeaderElector, LeaderGate
    from extender.peers.directory import PeerDirectory

    state, writer, mirror, home, proxy = _running_delegate()
    home.release.set()
    metrics = Metrics()
    lifecycle = Lifecycle(
        home,  # type: ignore[arg-type]
        state,
        writer,
        Events(),
        metrics,
        AvoidList(300),
        PeerDirectory(),
        "",
        remote_pending_timeout=60,
    )
    sweeper = OrphanSweeper(state, writer, metrics, "", every=60)
    watches = DelegationWatches(home, state, mirror, lifecycle, sweeper, "")  # type: ignore[arg-type]
    deleting = Proxy("uid-2", "shop", "web-2", "east", "spillover-east", True, 0, False, False)
    state.proxies[deleting.uid] = deleting
    watches.proxy_changed(proxy)  # seen while another replica leads: let go
    watches.proxy_changed(deleting)
    await asyncio.sleep(0.05)
    assert home.writes == [] and home.deleted == []

    elector = LeaderElector(home, "spillover-system", enabled=False)  # type: ignore[arg-type]
    gate = asyncio.create_task(LeaderGate(elector, [mirror, lifecycle, sweeper]).run())
    try:
        for _ in range(100):
            if home.writes and home.deleted:
                break
            await asyncio.sleep(0.01)
        assert home.writes == ["Running"] and home.deleted == ["/api/v1/namespaces/shop/pods/web-2"]
    finally:
        gate.cancel()
        await asyncio.gather(gate, return_exceptions=True)


class Refusing:
    """A peer's client while its apiserver is down."""

    def __init__(self) -> None:
        self.calls = 0

    async def request(self, *args: Any, **kwargs: Any) -> bytes:
        self.calls += 1
        raise ConnectionRefusedError("connection refused")


async def test_a_leftover_delegate_in_an_unreachable_peer_does_not_block_the_bind_elsewhere() -> None:
    from extender.capacity.model import PeerState
    from extender.delegation.avoid import AvoidList
    from extender.delegation.creator import DelegateCreator

    state, writer, _, _, _ = _running_delegate()
    down = Refusing()
    runtime = type("Runtime", (), {"raw": down, "state": PeerState(name="east", virtual_node="spillover-east")})()
    entry = PeerDelegates(runtime=runtime)  # type: ignore[arg-type]
    entry.by_proxy["uid-1"] = Delegate("shop", "web-1-x", "uid-1", {"phase": "Running"}, seen_at=0.0)
    state.peers["east"] = entry  # east is unreachable (PeerState starts so)
    creator = DelegateCreator(None, state, writer, Events(), AvoidList(300), "")  # type: ignore[arg-type]

    await creator._remove_leftovers("uid-1", keep="west")  # the bind to west goes on

    assert down.calls == 0
