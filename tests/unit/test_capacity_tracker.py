from __future__ import annotations

from collections.abc import Callable

from extender.capacity.model import PeerState
from extender.capacity.reservations import Reservations
from extender.capacity.tracker import PeerTracker
from tests.unit.peer_objects import as_node, as_pod, finish, node_json, pod_json, pod_uid


def tracker(
    *names: str, on_delegate_seen: Callable[[str], None] | None = None
) -> tuple[PeerState, PeerTracker, list[int]]:
    peer = PeerState(name="east", virtual_node="spillover-east")
    changes: list[int] = []
    t = PeerTracker(peer, lambda p: changes.append(p.generation), on_delegate_seen)
    t.nodes.replace([as_node(node_json(name)) for name in names or ("n1", "n2")])
    return peer, t, changes


def free_cpu(peer: PeerState, node: str) -> int:
    return peer.nodes[node].free()["cpu"]


def test_free_capacity_is_per_node_allocatable_minus_bound_non_terminal_pods() -> None:
    peer, t, _ = tracker()
    t.pods.replace(
        [
            as_pod(pod_json(1, "n1", "3")),
            as_pod(pod_json(2, "n2", "1")),
            as_pod(pod_json(3, "n1", "2", phase="Succeeded")),
            as_pod(pod_json(4, "", "2", phase="Pending")),
        ]
    )
    assert free_cpu(peer, "n1") == 1000
    assert free_cpu(peer, "n2") == 3000
    assert peer.nodes["n1"].requested["pods"] == 1


def test_pod_deleted_or_finished_gives_capacity_back() -> None:
    peer, t, changes = tracker()
    t.pods.upsert(as_pod(pod_json(1, "n1", "3")))
    t.pods.upsert(as_pod(pod_json(1, "n1", "3", phase="Failed")))
    assert free_cpu(peer, "n1") == 4000
    t.pods.upsert(as_pod(pod_json(2, "n2", "2")))
    t.pods.delete(as_pod(pod_json(2, "n2", "2")))
    assert free_cpu(peer, "n2") == 4000
    assert changes == sorted(changes) and len(changes) >= 4


def test_pods_listed_before_their_nodes_count_once_the_nodes_are_listed() -> None:
    # A restart of Spillover: the pod list can complete before the node list.
    peer = PeerState(name="east", virtual_node="spillover-east")
    t = PeerTracker(peer, lambda _: None)
    t.pods.replace([as_pod(pod_json(i, f"n{i % 3}", "1", delegate_of=f"p-{i}")) for i in range(4)])
    assert not peer.nodes and set(peer.ghosts) == {"n0", "n1", "n2"}
    t.nodes.replace([as_node(node_json(f"n{i}")) for i in range(3)])
    assert [free_cpu(peer, f"n{i}") for i in range(3)] == [2000, 3000, 3000]
    assert peer.free_total()["cpu"] == 8000 and not peer.ghosts


def test_a_node_deleted_and_recreated_under_its_name_keeps_the_pods_still_bound_to_it() -> None:
    peer, t, _ = tracker()
    t.pods.upsert(as_pod(pod_json(1, "n1", "3")))
    t.nodes.delete(as_node(node_json("n1")))
    assert "n1" not in peer.nodes and peer.ghosts["n1"].requested["cpu"] == 3000
    t.nodes.upsert(as_node(node_json("n1")))
    assert free_cpu(peer, "n1") == 1000 and not peer.ghosts


def test_pods_deleted_while_their_node_is_gone_are_not_counted_when_it_returns() -> None:
    peer, t, _ = tracker()
    t.pods.upsert(as_pod(pod_json(1, "n1", "3")))
    t.nodes.delete(as_node(node_json("n1")))
    t.pods.delete(as_pod(pod_json(1, "n1", "3")))
    assert not peer.ghosts  # nothing refers to the name any more
    t.nodes.upsert(as_node(node_json("n1")))
    assert free_cpu(peer, "n1") == 4000


def test_a_heartbeat_changes_nothing_not_even_the_generation() -> None:
    peer, t, changes = tracker()
    before = (peer.generation, len(changes))
    t.nodes.upsert(as_node(node_json("n1", heartbeat="2026-11-30T16:00:00Z", version=9)))
    assert (peer.generation, len(changes)) == before
    t.pods.upsert(as_pod(pod_json(1, "n1", "1")))
    t.pods.upsert(as_pod(pod_json(1, "n1", "1", version=2)))  # a status write: same requests
    assert len(changes) == before[1] + 1
    t.nodes.upsert(as_node(node_json("n1", cpu="8")))  # what the scheduler reads: a change
    assert len(changes) == before[1] + 2 and free_cpu(peer, "n1") == 7000


def test_an_in_place_resize_is_counted_as_kube_scheduler_counts_it() -> None:
    peer, t, _ = tracker()
    t.pods.upsert(as_pod(pod_json(1, "n1", "1")))
    t.pods.upsert(as_pod(pod_json(1, "n1", "500m", allocated_cpu="1")))  # shrinking: 1 CPU still held
    assert free_cpu(peer, "n1") == 3000
    t.pods.upsert(as_pod(pod_json(1, "n1", "500m", allocated_cpu="500m")))  # done
    assert free_cpu(peer, "n1") == 3500


def test_virtual_node_advertises_room_left_by_foreign_pods_on_schedulable_nodes_only() -> None:
    peer, t, _ = tracker()
    t.nodes.upsert(as_node(node_json("cordoned", unschedulable=True)))
    t.pods.replace([as_pod(pod_json(1, "n1", "3")), as_pod(pod_json(2, "n2", "2", delegate_of="p-2"))])
    # n1: 4-3 = 1; n2: delegates are counted by home against the virtual node, so 4; cordoned: excluded
    assert peer.advertised()["cpu"] == 5000
    t.pods.upsert(as_pod(pod_json(3, "n2", "1")))
    assert peer.advertised()["cpu"] == 4000


def test_a_paged_pod_list_takes_effect_only_when_complete() -> None:
    peer, t, _ = tracker()
    t.pods.upsert(as_pod(pod_json(1, "n1", "1")))
    listing = t.pods.listing()
    listing.add([as_pod(pod_json(2, "n1", "2"))])
    assert free_cpu(peer, "n1") == 3000  # the old count still stands mid-list
    listing.add([as_pod(pod_json(3, "n2", "1"))])
    finish(listing)
    assert (free_cpu(peer, "n1"), free_cpu(peer, "n2")) == (2000, 3000)


def test_reservation_holds_capacity_until_released() -> None:
    peer, _t, _ = tracker()
    r = Reservations(ttl=30)
    r.hold("uid1", peer, "n1", {"cpu": 3000})
    assert free_cpu(peer, "n1") == 1000
    r.release("uid1")
    assert free_cpu(peer, "n1") == 4000


def test_a_reservation_survives_its_node_being_deleted_and_recreated() -> None:
    peer, t, _ = tracker()
    r = Reservations(ttl=30)
    r.hold("uid1", peer, "n1", {"cpu": 3000})
    t.nodes.delete(as_node(node_json("n1")))
    t.nodes.upsert(as_node(node_json("n1")))
    assert free_cpu(peer, "n1") == 1000
    r.release("uid1")
    assert free_cpu(peer, "n1") == 4000 and not peer.ghosts


def test_expired_reservation_gives_capacity_back_even_when_expired_by_an_insert() -> None:
    peer, _t, _ = tracker()
    clock = [100.0]
    r = Reservations(ttl=30, timer=lambda: clock[0])
    r.hold("uid1", peer, "n1", {"cpu": 3000})
    clock[0] += 31
    r.hold("uid2", peer, "n2", {"cpu": 1000})  # the insert expires uid1 internally
    assert free_cpu(peer, "n1") == 4000
    assert free_cpu(peer, "n2") == 3000
    assert len(r) == 1


def test_seeing_the_delegate_releases_its_reservation() -> None:
    r = Reservations(ttl=30)
    peer, t, _ = tracker(on_delegate_seen=r.release)
    r.hold("p-a", peer, "n1", {"cpu": 2000, "pods": 1})
    t.pods.upsert(as_pod(pod_json(1, "n1", "2", delegate_of="p-a")))
    assert free_cpu(peer, "n1") == 2000  # counted once, not twice


def test_pod_uids_are_kept_compactly_and_found_again_for_deletion() -> None:
    peer, t, _ = tracker()
    t.pods.upsert(as_pod(pod_json(7, "n1", "1")))
    assert t.pod_count == 1
    t.drop_pod(pod_uid(7))
    assert t.pod_count == 0 and free_cpu(peer, "n1") == 4000


def test_request_shapes_are_shared_and_forgotten_when_no_pod_has_them() -> None:
    _peer, t, _ = tracker()
    for n in range(40):
        t.pods.upsert(as_pod(pod_json(n, "n1", f"{1 + n % 4}m")))
    assert t.shape_count == 4
    for n in range(40):
        t.drop_pod(pod_uid(n))
    assert t.shape_count == 0
