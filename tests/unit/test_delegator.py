"""Delegation's writes: one status writer per proxy, the latest word last, no bind held up by a
peer that is down, and a replica that takes the lead acting on what it saw while following."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from extender.delegation import mirror
from extender.kube.api import LEASES, PODS
from extender.kube.leader import LeaderElector, LeaderGate
from extender.kube.times import rfc3339
from extender.kube.workqueue import WorkQueue
from extender.wire.core import Pod
from tests.unit.apiserver import FakeApiserver
from tests.unit.fakes import Delegation, controlled, delegate_pod, proxy_pod, until

STATUS = PODS.item("web-1", "shop", "status")


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
        await until(lambda: writes == ["uid-1"])  # a worker is now writing uid-1
        queue.add("uid-1")  # Running arrives while Pending is being written
        queue.add("uid-1")
        await asyncio.sleep(0.01)
        assert writes == ["uid-1"] and not overlaps  # the other workers did not take it
        release.set()
        await until(lambda: len(writes) == 2 and not writing)
        assert writes == ["uid-1", "uid-1"]  # written once more, after the first write: the latest wins
        assert not overlaps
    finally:
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)


def test_a_queue_not_running_takes_nothing() -> None:
    queue: WorkQueue[str] = WorkQueue("test")
    queue.add("uid-1")  # a follower's watch event: the leader acts on it, not this replica
    assert len(queue) == 0


def status_writes(home: FakeApiserver) -> list[str]:
    return [c.body["status"]["phase"] for c in home.writes("PATCH") if c.path == STATUS]


async def running_delegate(phase: str = "Running") -> Delegation:
    """web-1 spilled to east, its delegate in ``phase`` there; watches synced, not leading."""
    world = Delegation()
    proxy = world.home.add(PODS, proxy_pod("web-1"))
    world.api().add(PODS, delegate_pod(proxy, phase))
    world.join()
    await world.synced()
    return world


async def test_a_proxy_failed_while_its_running_status_is_being_written_ends_failed() -> None:
    world = await running_delegate()
    release = world.home.hold("PATCH", STATUS)
    proxy = world.state.proxies["uid-web-1"]
    mirrored = asyncio.create_task(world.mirror.sync(("east", proxy.uid)))
    await until(lambda: len(world.home.writes()) == 1)  # the Running write is in flight
    lost = asyncio.create_task(world.writer.delegate_lost(proxy, "DelegateDeleted", "deleted in peer east"))
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(mirrored, lost)
    assert status_writes(world.home) == ["Running", "Failed"]  # the failure is the last word
    await world.close()


async def test_a_status_read_before_a_failure_is_not_written_after_it() -> None:
    world = await running_delegate()
    proxy = world.state.proxies["uid-web-1"]
    await world.writer.delegate_lost(proxy, "DelegateMissing", "no delegate")
    await world.mirror.sync(("east", proxy.uid))  # a Running event queued before the failure
    assert status_writes(world.home) == ["Failed"]
    await world.close()


async def test_a_delegate_pending_only_briefly_has_only_its_running_status_written() -> None:
    world = await running_delegate("Pending")
    await world.mirror.sync(("east", "uid-web-1"))  # just created in the peer: not written yet
    await world.api().request("PATCH", PODS.item("web-1-x", "shop", "status"), {"status": {"phase": "Running"}})
    await until(lambda: world.state.peers["east"].by_proxy["uid-web-1"].status.get("phase") == "Running")
    await world.mirror.sync(("east", "uid-web-1"))
    assert status_writes(world.home) == ["Running"]
    await world.close()


async def test_a_delegate_pending_for_a_while_has_its_pending_status_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror, "PENDING_MIRROR_DELAY", 0.05)
    world = await running_delegate("Pending")
    async with world.leading():
        await until(lambda: status_writes(world.home) == ["Pending"])  # after PENDING_MIRROR_DELAY
    await world.close()


async def test_a_leftover_delegate_in_an_unreachable_peer_does_not_block_the_bind_elsewhere() -> None:
    world = Delegation("east", "west")
    raw = proxy_pod("web-1")
    world.api("east").add(PODS, delegate_pod(raw, "Running"))  # an earlier bind of it, cut off
    world.join("east")
    west = world.join("west")
    await world.synced()
    world.directory.peers["east"].state.set_reachable(False, "connection refused")
    world.api("east").down = True

    pod = msgspec.convert(raw, Pod)
    await world.creator.create_delegate(raw, pod, west, "west-0")  # the bind to west goes on

    assert not world.api("east").writes() and world.api("west").objects(PODS)
    await world.close()


async def test_a_replica_that_becomes_leader_acts_on_what_it_saw_while_following() -> None:
    world = Delegation()
    running = world.home.add(PODS, proxy_pod("web-1"))
    world.api().add(PODS, delegate_pod(running, "Running"))
    deleting = proxy_pod("web-2", deletionTimestamp=rfc3339(), deletionGracePeriodSeconds=0, **controlled())
    world.home.add(PODS, deleting)
    lease: dict[str, Any] = {"metadata": {"namespace": "spillover-system", "name": "spillover-controller"}}
    lease["spec"] = {"holderIdentity": "other-replica", "leaseDurationSeconds": 15, "renewTime": rfc3339(micro=True)}
    world.home.add(LEASES, lease)
    world.join()
    await world.synced()  # the watches showed both proxies while another replica led
    elector = LeaderElector(world.home, "spillover-system", enabled=True, renew=0.01)
    gate = asyncio.create_task(LeaderGate(elector, [world.mirror, world.lifecycle, world.sweeper]).run())
    try:
        await asyncio.sleep(0.05)
        assert not status_writes(world.home) and not world.home.writes("DELETE")  # following: let go

        patch = {"spec": {"renewTime": "2020-01-01T00:00:00.000000Z"}}  # the other replica stopped renewing
        await world.home.request("PATCH", LEASES.item("spillover-controller", "spillover-system"), patch)
        await until(lambda: elector.leading)

        await until(lambda: bool(status_writes(world.home)) and bool(world.home.writes("DELETE")))
        assert status_writes(world.home) == ["Running"]
        assert [c.path for c in world.home.writes("DELETE")] == [PODS.item("web-2", "shop")]
    finally:
        gate.cancel()
        await asyncio.gather(gate, return_exceptions=True)
        await world.close()


async def test_a_replica_that_loses_the_lead_stops_its_controllers() -> None:
    world = Delegation()
    world.join()
    await world.synced()
    elector = LeaderElector(world.home, "spillover-system", enabled=True, renew=0.01)
    gate = asyncio.create_task(LeaderGate(elector, [world.mirror]).run())
    try:
        await until(lambda: elector.leading)
        proxy = world.home.add(PODS, proxy_pod("web-1"))
        world.api().add(PODS, delegate_pod(proxy, "Running"))
        await until(lambda: status_writes(world.home) == ["Running"])  # leading: mirrored

        taken = {"spec": {"holderIdentity": "other-replica", "renewTime": rfc3339(micro=True)}}
        await world.home.request("PATCH", LEASES.item("spillover-controller", "spillover-system"), taken)
        await until(lambda: not elector.leading)
        await world.api().request("PATCH", PODS.item("web-1-x", "shop", "status"), {"status": {"phase": "Failed"}})
        await asyncio.sleep(0.05)
        assert status_writes(world.home) == ["Running"]  # the new leader mirrors it, not this replica
    finally:
        gate.cancel()
        await asyncio.gather(gate, return_exceptions=True)
        await world.close()


def proxy_status(world: Delegation, name: str = "web-1") -> dict[str, Any]:
    return dict((world.home.get_object(PODS, name, "shop") or {}).get("status") or {})


async def test_a_proxy_marked_not_ready_while_its_node_was_not_ready_is_ready_again_once_the_node_is() -> None:
    """The node-lifecycle controller turns Ready False on the pods of a node it finds Unknown
    (its Lease not renewed while Spillover could not reach home); the delegate kept running, so
    once the virtual node is Ready the proxy says so again: written once, not in turns with that
    controller should it mark it again."""
    world = Delegation()
    ready = [{"type": "Ready", "status": "True"}]
    proxy = world.home.add(PODS, proxy_pod("web-1"))
    delegate = delegate_pod(proxy, "Running")
    delegate["status"]["conditions"] = ready
    world.api().add(PODS, delegate)
    east = world.join()
    await world.synced()
    marked = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    async with world.leading():
        await until(lambda: proxy_status(world).get("conditions") == ready)  # mirrored
        east.set_reachable(False, "the home apiserver could not be reached")  # its node NotReady
        await world.home.request("PATCH", STATUS, marked)  # the controller's mark
        await until(lambda: world.state.proxies["uid-web-1"].ready == "False")
        await asyncio.sleep(0.05)
        assert proxy_status(world)["conditions"] == marked["status"]["conditions"], "no fight while NotReady"

        east.set_reachable(True)
        await world.mirror.sync(("east", "uid-web-1"))
        assert proxy_status(world)["conditions"] == ready

        await world.home.request("PATCH", STATUS, marked)  # marked again at once (its view lagged)
        await until(lambda: world.state.proxies["uid-web-1"].ready == "False")
        await world.mirror.sync(("east", "uid-web-1"))
        assert proxy_status(world)["conditions"] == marked["status"]["conditions"], "one write per RESTORE_EVERY"
    await world.close()
