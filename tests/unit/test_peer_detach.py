"""Deleting a PeerCluster: held by Spillover's finalizer until nothing of Spillover's is left in
that peer (no orphans), its pods failed over; never held for a peer no kubeconfig can reach."""

from __future__ import annotations

import msgspec

from extender.kube.api import CONFIGMAPS, LEASES, NODES, PODS, SECRETS
from extender.peers.detach import PeerDetacher
from extender.peers.model import FINALIZER, PEERCLUSTERS, PeerCluster
from extender.peers.virtual_node import VirtualNodes
from extender.scheduling.memory import peer
from tests.unit.fakes import (
    Delegation,
    Peers,
    controlled,
    delegate_pod,
    kubeconfig_secret,
    peercluster,
    proxy_pod,
    until,
)


class Detaching(Delegation):
    """East's PeerCluster deleted; a, b and c spilled there (a controlled, c finished)."""

    def __init__(self) -> None:
        super().__init__()
        self.detacher = PeerDetacher(self.home, self.directory, VirtualNodes(self.home), self.evacuation)
        self.directory.specs["east"] = msgspec.convert(peercluster(finalizers=[FINALIZER], deleting=True), PeerCluster)
        for name, meta in (("a", controlled()), ("b", {}), ("c", {})):
            proxy = self.home.add(PODS, proxy_pod(f"web-{name}", **meta))
            phase = "Succeeded" if name == "c" else "Running"
            self.home.add(PODS, {**proxy, "status": {"phase": phase}})
            self.api().add(PODS, delegate_pod(proxy, phase))
        copy = {"namespace": "shop", "name": "settings", "labels": {"spillover.io/copy": "true"}}
        self.api().add(CONFIGMAPS, {"metadata": copy})

    def released(self) -> bool:
        return any(c.path == PEERCLUSTERS.item("east") for c in self.home.writes("PATCH"))

    def failed(self) -> list[str]:
        patches = self.home.writes("PATCH")
        return [c.path for c in patches if c.path.endswith("/status") and c.body["status"]["phase"] == "Failed"]


async def detaching(reachable: bool = True) -> Detaching:
    world = Detaching()
    east = world.join()
    east.detaching = "its PeerCluster is being deleted"
    await world.synced()
    east.set_reachable(reachable, "" if reachable else "connection refused")
    return world


async def test_a_deleted_peerclusters_pods_are_failed_over_and_its_peer_emptied_before_the_finalizer_goes() -> None:
    world = await detaching()

    await world.detacher.detach_deleted()

    assert world.failed() == [PODS.item("web-a", "shop", "status"), PODS.item("web-b", "shop", "status")]
    assert [c.path for c in world.home.writes("DELETE")] == [PODS.item("web-a", "shop")]  # its Deployment recreates it
    assert not world.api().objects(PODS) and not world.api().objects(CONFIGMAPS)
    assert not world.released()  # this pass still found objects: the next one confirms
    assert "deleting" in world.detacher.progress["east"]

    await world.detacher.detach_deleted()

    assert world.released() and len(world.failed()) == 2  # no pod failed twice
    assert "east" not in world.state.peers and not world.state.proxies_on("east")  # nothing left to remember
    await world.close()


async def test_a_deleted_peercluster_whose_peer_is_unreachable_is_held_and_says_how_to_let_it_go() -> None:
    world = await detaching(reachable=False)

    await world.detacher.detach_deleted()

    assert not world.home.writes() and not world.api().writes()
    progress = world.detacher.progress["east"]
    assert "connection refused" in progress and "remove the finalizer" in progress
    await world.close()


async def test_a_deleted_peercluster_with_an_unusable_kubeconfig_is_let_go() -> None:
    world = Detaching()
    world.directory.unusable["east"] = "cannot read the kubeconfig Secret: 404"

    await world.detacher.detach_deleted()

    assert world.released()
    await world.close()


async def test_releasing_a_detached_peer_removes_its_virtual_node_and_only_spillovers_finalizer() -> None:
    world = Detaching()
    world.directory.specs["east"] = msgspec.convert(
        peercluster(finalizers=["example.com/keep", FINALIZER], deleting=True), PeerCluster
    )
    world.home.add(NODES, {"metadata": {"name": "spillover-east"}})
    world.home.add(LEASES, {"metadata": {"namespace": "kube-node-lease", "name": "spillover-east"}})

    assert world.directory.deleting() == ["east"]
    assert await world.detacher.release("east")

    assert not world.home.objects(NODES) and not world.home.objects(LEASES)
    finalizers = [c.body["metadata"]["finalizers"] for c in world.home.writes("PATCH")]
    assert finalizers == [["example.com/keep"]]
    await world.close()


async def test_a_live_peercluster_gets_the_finalizer_without_losing_anothers() -> None:
    peers = Peers()
    peers.home.add(SECRETS, kubeconfig_secret())
    live = peers.home.add(PEERCLUSTERS, peercluster(finalizers=["example.com/keep"]))
    gone = peers.home.add(PEERCLUSTERS, peercluster("west", deleting=True))

    peers.registry.upsert(msgspec.convert(live, PeerCluster))
    peers.registry.upsert(msgspec.convert(gone, PeerCluster))  # being deleted: no finalizer added
    await until(lambda: bool(peers.home.writes("PATCH")))

    patches = [c for c in peers.home.writes("PATCH") if c.path.startswith(PEERCLUSTERS.collection())]
    assert [(c.path, c.body) for c in patches if not c.path.endswith("/status")] == [
        (
            PEERCLUSTERS.item("east"),
            {
                "metadata": {
                    "finalizers": ["example.com/keep", FINALIZER],
                    "resourceVersion": live["metadata"]["resourceVersion"],
                }
            },
        )
    ]
    await peers.registry.close()


async def test_a_detaching_peer_takes_no_pods_and_says_why() -> None:
    state = peer("east")
    assert state.healthy
    state.detaching = "its PeerCluster is being deleted"
    assert not state.healthy
    assert "being detached" in state.health_reason()


async def test_failures_and_peer_state_show_in_the_metrics() -> None:
    world = await detaching()
    east = world.directory.peers["east"].state
    world.metrics.watch(world.directory.states, world.state.delegate_phases)

    value = world.metrics.registry.get_sample_value
    assert value("spillover_delegates", {"peer": "east", "phase": "Running"}) == 2

    await world.detacher.detach_deleted()

    assert value("spillover_delegates_lost_total", {"peer": "east", "reason": "PeerDetached"}) == 2
    assert value("spillover_peer_ready", {"peer": "east"}) == 0  # being detached
    assert value("spillover_peer_free", {"peer": "east", "resource": "cpu"}) == east.free_total()["cpu"] / 1000 > 0
    await world.close()
