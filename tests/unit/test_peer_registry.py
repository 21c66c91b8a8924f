"""The peer registry: peers joined and dropped as PeerClusters change, and told about on them."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from extender.kube.api import NODES, SECRETS
from extender.peers import registry as registry_module
from extender.peers.model import PEERCLUSTERS, PeerCluster
from extender.peers.status import ready_message
from tests.unit.fakes import Peers, kubeconfig_secret, peercluster, until


async def joined_east() -> tuple[Peers, PeerCluster]:
    peers = Peers()
    peers.home.add(SECRETS, kubeconfig_secret())
    east = msgspec.convert(peers.home.add(PEERCLUSTERS, peercluster()), PeerCluster)
    peers.registry.upsert(east)
    await until(lambda: peers.joined() and peers.directory.peers["east"].state.synced)
    return peers, east


async def test_a_deleted_peer_is_dropped_from_what_filter_the_planner_and_the_status_page_see() -> None:
    peers, east = await joined_east()
    state = peers.directory.peers["east"].state
    assert state.healthy and "east" in peers.reservations.peers

    peers.registry.delete(east)
    await until(lambda: not peers.joined())

    assert state.virtual_node not in peers.directory.by_virtual_node and "east" not in peers.reservations.peers
    assert not state.healthy and not peers.directory.states()
    assert NODES.item("spillover-east") in [c.path for c in peers.home.writes("DELETE")]


async def test_a_peer_lost_and_back_is_told_once_each_way_on_its_peercluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "PROBE_EVERY", 0.005)
    peers, _ = await joined_east()

    peers.peer_apis["east"].down = True
    await until(lambda: "PeerUnreachable" in peers.events.reasons())
    await until(lambda: not peers.directory.peers["east"].state.reachable)
    peers.peer_apis["east"].down = False
    await until(lambda: "PeerReachable" in peers.events.reasons())

    assert peers.events.reasons() == ["PeerUnreachable", "PeerReachable"]
    await peers.registry.close()


async def test_a_deleted_peercluster_is_told_detaching_once() -> None:
    peers, _ = await joined_east()
    deleting = msgspec.convert(peercluster(deleting=True), PeerCluster)
    deleting.metadata.uid = "pc-1"

    for _ in range(3):  # the MODIFIED events of the detach
        peers.registry.upsert(deleting)

    assert peers.events.reasons() == ["Detaching"]
    await until(lambda: bool(peers.directory.peers["east"].state.detaching))
    await peers.registry.close()


async def test_pausing_a_peer_tells_its_peercluster_at_once_and_never_says_placing_pods_here() -> None:
    """Right after a pause, `kubectl get peerclusters` and `spillover status` said "placing pods
    here" until the next periodic status write."""
    peers, east = await joined_east()
    state = peers.directory.peers["east"].state
    assert state.healthy

    def status_writes() -> list[dict[str, Any]]:
        path = PEERCLUSTERS.item("east", subresource="status")
        return [c.body for c in peers.home.writes("PATCH") if c.path == path]

    written = len(status_writes())
    paused = msgspec.convert(peercluster(), PeerCluster)
    paused.metadata = east.metadata
    paused.spec.paused = True
    peers.registry.upsert(paused)
    await until(lambda: len(status_writes()) == written + 1)

    ready = status_writes()[-1]["status"]["conditions"][0]
    assert ready["type"] == "Ready" and ready["status"] == "False"
    assert ready["message"] == "peer east is paused (PeerCluster spec.paused)"
    peers.registry.upsert(paused)  # nothing changed: no second write
    await asyncio.sleep(0.05)
    assert len(status_writes()) == written + 1

    assert ready_message(state, "", "") == "peer east is paused (PeerCluster spec.paused)"
    state.paused = False
    assert ready_message(state, "", "") == "placing pods here"
    state.detaching = "its PeerCluster is being deleted"
    assert ready_message(state, "deleting 2 objects", "") == "deleting 2 objects"
    assert "placing pods here" not in ready_message(state, "", "")
    await peers.registry.close()


def test_a_peercluster_event_that_changes_no_spec_field_changes_no_generation() -> None:
    from extender.peers.registry import apply_spec
    from extender.scheduling.memory import peer

    east = peer("east")
    spec = msgspec.convert({"metadata": {"name": "east"}, "spec": {"cost": 2.0, "tier": 1}}, PeerCluster)
    apply_spec(east, spec)
    first = east.generation
    apply_spec(east, spec)  # the same spec again: a status write brought it back
    assert east.generation == first and east.cost == 2.0
    paused = msgspec.convert({"metadata": {"name": "east"}, "spec": {"paused": True}}, PeerCluster)
    apply_spec(east, paused)
    assert east.generation > first and east.paused
