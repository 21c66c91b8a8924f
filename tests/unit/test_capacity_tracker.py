from __future__ import annotations

from collections.abc import Callable

from extender import labels
from extender.capacity.model import PeerState
from extender.capacity.tracker import PeerTracker, Reservations, virtual_allocatable
from extender.wire.core import (
    Container,
    Node,
    NodeCondition,
    NodeSpec,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    ResourceRequirements,
)


def node(name: str, cpu: str = "4", ready: bool = True, unschedulable: bool = False) -> Node:
    return Node(
        metadata=ObjectMeta(name=name),
        spec=NodeSpec(unschedulable=unschedulable),
        status=NodeStatus(
            allocatable={"cpu": cpu, "memory": "8Gi", "pods": "110"},
            conditions=[NodeCondition(type="Ready", status="True" if ready else "False")],
        ),
    )


def pod(uid: str, node_name: str, cpu: str, phase: str = "Running", delegate: bool = False) -> Pod:
    return Pod(
        metadata=ObjectMeta(
            name=uid, namespace="ns", uid=uid, labels={labels.PROXY_UID: "p-" + uid} if delegate else None
        ),
        spec=PodSpec(
            node_name=node_name, containers=[Container(resources=ResourceRequirements(requests={"cpu": cpu}))]
        ),
        status=PodStatus(phase=phase),
    )


def tracker(on_delegate_seen: Callable[[str], None] | None = None) -> tuple[PeerState, PeerTracker, list[int]]:
    peer = PeerState(name="east", virtual_node="spillover-east")
    changes: list[int] = []
    t = PeerTracker(peer, lambda p: changes.append(p.generation), on_delegate_seen)
    t.nodes.replace([node("n1"), node("n2")])
    return peer, t, changes


def test_free_capacity_is_per_node_allocatable_minus_bound_non_terminal_pods() -> None:
    peer, t, _ = tracker()
    t.pods.replace(
        [pod("a", "n1", "3"), pod("b", "n2", "1"), pod("done", "n1", "2", phase="Succeeded"), pod("pending", "", "2")]
    )
    assert peer.nodes["n1"].free()["cpu"] == 1000
    assert peer.nodes["n2"].free()["cpu"] == 3000


def test_pod_deleted_or_finished_gives_capacity_back() -> None:
    peer, t, changes = tracker()
    t.pods.upsert(pod("a", "n1", "3"))
    t.pods.upsert(pod("a", "n1", "3", phase="Failed"))
    assert peer.nodes["n1"].free()["cpu"] == 4000
    t.pods.upsert(pod("b", "n2", "2"))
    t.pods.delete(pod("b", "n2", "2"))
    assert peer.nodes["n2"].free()["cpu"] == 4000
    assert changes == sorted(changes) and len(changes) >= 4


def test_pods_seen_before_their_node_are_counted_when_it_appears() -> None:
    peer, t, _ = tracker()
    t.pods.upsert(pod("a", "n3", "1"))
    t.nodes.upsert(node("n3"))
    assert peer.nodes["n3"].free()["cpu"] == 3000


def test_virtual_allocatable_sums_room_left_by_foreign_pods_on_schedulable_nodes_only() -> None:
    peer, t, _ = tracker()
    t.nodes.upsert(node("cordoned", unschedulable=True))
    t.pods.replace([pod("foreign", "n1", "3"), pod("ours", "n2", "2", delegate=True)])
    # n1: 4-3 = 1; n2: delegates are counted by home against the virtual node, so 4; cordoned: excluded
    assert virtual_allocatable(peer)["cpu"] == 5000


def test_reservation_holds_capacity_until_released() -> None:
    peer, _t, _ = tracker()
    r = Reservations(ttl=30)
    r.hold("uid1", peer, "n1", {"cpu": 3000})
    assert peer.nodes["n1"].free()["cpu"] == 1000
    r.release("uid1")
    assert peer.nodes["n1"].free()["cpu"] == 4000


def test_expired_reservation_gives_capacity_back_even_when_expired_by_an_insert() -> None:
    peer, _t, _ = tracker()
    clock = [100.0]
    r = Reservations(ttl=30, timer=lambda: clock[0])
    r.hold("uid1", peer, "n1", {"cpu": 3000})
    clock[0] += 31
    r.hold("uid2", peer, "n2", {"cpu": 1000})  # the insert expires uid1 internally
    assert peer.nodes["n1"].free()["cpu"] == 4000
    assert peer.nodes["n2"].free()["cpu"] == 3000
    assert len(r) == 1


def test_seeing_the_delegate_releases_its_reservation() -> None:
    r = Reservations(ttl=30)
    peer, t, _ = tracker(on_delegate_seen=r.release)
    r.hold("p-a", peer, "n1", {"cpu": 2000, "pods": 1})
    t.pods.upsert(pod("a", "n1", "2", delegate=True))
    assert peer.nodes["n1"].free()["cpu"] == 2000  # counted once, not twice
