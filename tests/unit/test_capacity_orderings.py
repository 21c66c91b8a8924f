"""The capacity cache is exact whatever the order of its events (property-based).

A peer's nodes and pods change in the apiserver; the two watches that tell Spillover are separate
streams, each in order but running ahead of or behind the other at will; either may expire and
re-list, and Spillover may restart (everything forgotten, both listed afresh). Hypothesis drives
all of that at random, with reservations held, released, expired and taken over by their delegate,
and after every single step compares each node's figures in the cache with a count from scratch of
exactly the objects each stream has delivered so far: requested, delegated, reserved, free, and
the per-peer aggregates the filter and the virtual node read (most free per resource, over all and
over open nodes; free and advertised totals), and whether a pod fits anywhere, as the filter
answers it from its bounds and its memory of pods that fitted nowhere. Ghosts (nodes gone but still named by pods or
reservations) must be exactly those, so nothing leaks either.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from extender.capacity.fit import find_node, node_fit_rejection
from extender.capacity.model import PeerState
from extender.capacity.reservations import Reservations
from extender.capacity.tracker import TERMINAL, PeerTracker
from extender.pod_requests import bound_pod_requests, pod_requests
from extender.resources import Resources, add_into, node_allocatable
from extender.scheduling.memory import make_pod
from extender.wire.core import PeerNode, PeerPod
from tests.unit.peer_objects import as_node, as_pod, finish, node_json, pod_json, pod_uid

NODE_NAMES = ("n0", "n1", "n2", "n3")
POD_IDS = range(10)
CPUS = ("100m", "500m", "1", "2500m")
TTL = 30.0

SHAPES = (  # pods the filter judges after every step: each fits somewhere only now and then
    make_pod(cpu="3", memory="1Gi"),
    make_pod(cpu="1500m", memory="1Gi", nodeSelector={"kubernetes.io/hostname": "n2"}),
    make_pod(cpu="2", memory="1Gi", tolerations=[{"key": "gpu", "operator": "Exists"}]),
)
nodes_ = st.sampled_from(NODE_NAMES)
pods_ = st.sampled_from(POD_IDS)

Event = tuple[str, Any]
"""("upsert", object) | ("delete", object) | ("list", [objects]) on one stream."""


class Stream:
    """One watch: events not delivered yet, and what has been delivered (the cache's truth)."""

    def __init__(self) -> None:
        self.pending: list[Event] = []
        self.told: dict[str, Any] = {}

    def relist(self, world: dict[str, Any]) -> None:
        """The watch expired: what was queued is lost; a list of the world as it is now follows."""
        self.pending = [("list", list(world.values()))]


class CacheUnderAnyOrder(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world_nodes: dict[str, dict[str, Any]] = {}
        self.world_pods: dict[str, dict[str, Any]] = {}
        self.versions = 0
        self.clock = 0.0

    @initialize()
    def start(self) -> None:
        self.restart_spillover()

    # --- Spillover ------------------------------------------------------------------------------

    @rule()
    def restart_spillover(self) -> None:
        self.peer = PeerState(name="east", virtual_node="spillover-east", reachable=True, synced=True)
        self.tracker = PeerTracker(self.peer, lambda _: None, self._delegate_seen)
        self.reservations = Reservations(ttl=TTL, timer=lambda: self.clock)
        self.reservations.peers["east"] = self.peer
        self.held: dict[str, tuple[str, int]] = {}
        """proxy uid -> (node name, millicores): what the reservations should hold."""
        self.nodes, self.pods = Stream(), Stream()
        self.nodes.relist(self.world_nodes)
        self.pods.relist(self.world_pods)

    def _delegate_seen(self, proxy: str) -> None:
        self.reservations.release(proxy)

    @rule(proxy=pods_, node=nodes_, cpu=st.sampled_from((200, 1000)))
    def hold(self, proxy: int, node: str, cpu: int) -> None:
        uid = pod_uid(proxy)
        if uid in self.world_pods or uid in self.pods.told:
            return  # a bind holds room before its delegate exists, never after
        self.reservations.hold(f"p-{proxy}", self.peer, node, {"cpu": cpu, "pods": 1})
        self.held.pop(f"p-{proxy}", None)
        if node in self.nodes.told:  # a bind to a node the cache does not know holds nothing
            self.held[f"p-{proxy}"] = (node, cpu)

    @rule(proxy=pods_)
    def release(self, proxy: int) -> None:
        self.reservations.release(f"p-{proxy}")
        self.held.pop(f"p-{proxy}", None)

    @rule()
    def reservations_expire(self) -> None:
        self.clock += TTL + 1
        self.reservations.expire()
        self.held.clear()

    # --- the peer's apiserver ---------------------------------------------------------------------

    def _version(self) -> int:
        self.versions += 1
        return self.versions

    @rule(name=nodes_, cpu=st.sampled_from(("2", "4")), tainted=st.booleans(), cordoned=st.booleans())
    def node_added_or_changed(self, name: str, cpu: str, tainted: bool, cordoned: bool) -> None:
        taints = [{"key": "gpu", "value": "a100", "effect": "NoSchedule"}] if tainted else None
        node = node_json(name, cpu=cpu, taints=taints, unschedulable=cordoned, version=self._version())
        self.world_nodes[name] = node
        self.nodes.pending.append(("upsert", node))

    @rule(name=nodes_)
    @precondition(lambda self: bool(self.world_nodes))
    def node_heartbeat(self, name: str) -> None:
        if name in self.world_nodes:
            node = dict(self.world_nodes[name])
            node["metadata"] = {**node["metadata"], "resourceVersion": str(self._version())}
            self.world_nodes[name] = node
            self.nodes.pending.append(("upsert", node))

    @rule(name=nodes_)
    def node_deleted(self, name: str) -> None:
        node = self.world_nodes.pop(name, None)
        if node is not None:
            self.nodes.pending.append(("delete", node))

    @rule(n=pods_, node=st.sampled_from(("", *NODE_NAMES)), cpu=st.sampled_from(CPUS), delegate=st.booleans())
    def pod_created(self, n: int, node: str, cpu: str, delegate: bool) -> None:
        uid = pod_uid(n)
        if uid in self.world_pods:
            return
        pod = pod_json(n, node, cpu, phase="Running" if node else "Pending",
                       delegate_of=f"p-{n}" if delegate else None, version=self._version())
        self.world_pods[uid] = pod
        self.pods.pending.append(("upsert", pod))

    def _change_pod(self, n: int, change: dict[str, Any]) -> None:
        old = self.world_pods.get(pod_uid(n))
        if old is None:
            return
        labels = old["metadata"]["labels"]
        proxy = labels.get("spillover.io/proxy-uid")
        current = {
            "node": old["spec"].get("nodeName", ""),
            "cpu": old["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "phase": old["status"]["phase"],
            "delegate_of": proxy,
            "allocated_cpu": (old["status"]["containerStatuses"][0].get("allocatedResources") or {}).get("cpu"),
        }
        current.update(change)
        pod = pod_json(n, version=self._version(), **current)
        self.world_pods[pod_uid(n)] = pod
        self.pods.pending.append(("upsert", pod))

    @rule(n=pods_, node=nodes_)
    def pod_bound(self, n: int, node: str) -> None:
        old = self.world_pods.get(pod_uid(n))
        if old is not None and not old["spec"].get("nodeName"):  # nodeName is set once
            self._change_pod(n, {"node": node, "phase": "Running"})

    @rule(n=pods_, cpu=st.sampled_from(CPUS), settled=st.booleans())
    def pod_resized(self, n: int, cpu: str, settled: bool) -> None:
        old = self.world_pods.get(pod_uid(n))
        if old is not None:
            before = old["spec"]["containers"][0]["resources"]["requests"]["cpu"]
            self._change_pod(n, {"cpu": cpu, "allocated_cpu": cpu if settled else before})

    @rule(n=pods_, phase=st.sampled_from(TERMINAL))
    def pod_finished(self, n: int, phase: str) -> None:
        self._change_pod(n, {"phase": phase})

    @rule(n=pods_)
    def pod_deleted(self, n: int) -> None:
        pod = self.world_pods.pop(pod_uid(n), None)
        if pod is not None:
            self.pods.pending.append(("delete", pod))

    # --- the two watches, delivering in any interleaving ---------------------------------------

    @rule(count=st.integers(1, 3))
    def node_events_arrive(self, count: int) -> None:
        for _ in range(min(count, len(self.nodes.pending))):
            kind, obj = self.nodes.pending.pop(0)
            if kind == "list":
                self.tracker.nodes.replace([as_node(o) for o in obj])
                self.nodes.told = {o["metadata"]["name"]: as_node(o) for o in obj}
            elif kind == "upsert":
                self.tracker.nodes.upsert(as_node(obj))
                self.nodes.told[obj["metadata"]["name"]] = as_node(obj)
            else:
                self.tracker.nodes.delete(as_node(obj))
                self.nodes.told.pop(obj["metadata"]["name"], None)

    @rule(count=st.integers(1, 3), pages=st.integers(1, 3))
    def pod_events_arrive(self, count: int, pages: int) -> None:
        for _ in range(min(count, len(self.pods.pending))):
            kind, obj = self.pods.pending.pop(0)
            if kind == "list":
                decoded = [as_pod(o) for o in obj]
                listing = self.tracker.pods.listing()
                for page in range(pages):
                    listing.add(decoded[page::pages])
                self.pods.told = {p.metadata.uid: p for p in decoded}
                finish(listing)
            elif kind == "upsert":
                pod = as_pod(obj)
                self.pods.told[pod.metadata.uid] = pod
                self.tracker.pods.upsert(pod)
            else:
                pod = as_pod(obj)
                self.pods.told.pop(pod.metadata.uid, None)
                self.tracker.pods.delete(pod)
            self._delegates_take_over()

    @rule()
    def node_watch_expires(self) -> None:
        self.nodes.relist(self.world_nodes)

    @rule()
    def pod_watch_expires(self) -> None:
        self.pods.relist(self.world_pods)

    # --- the count from scratch ----------------------------------------------------------------

    def _counting(self) -> list[PeerPod]:
        return [
            p for p in self.pods.told.values()
            if p.spec.node_name and (p.status is None or p.status.phase not in TERMINAL)
        ]

    def _delegates_take_over(self) -> None:
        """A delegate seen counted on a node takes over the room its bind held."""
        seen = {p.metadata.labels["spillover.io/proxy-uid"] for p in self._counting()
                if p.metadata.labels and "spillover.io/proxy-uid" in p.metadata.labels}
        for proxy in seen & set(self.held):
            del self.held[proxy]

    @invariant()
    def every_node_is_counted_from_exactly_what_was_delivered(self) -> None:
        requested: dict[str, Resources] = {}
        delegated: dict[str, Resources] = {}
        reserved: dict[str, Resources] = {}
        for pod in self._counting():
            amounts = bound_pod_requests(pod)
            add_into(requested.setdefault(pod.spec.node_name, {}), amounts)
            if pod.metadata.labels and "spillover.io/proxy-uid" in pod.metadata.labels:
                add_into(delegated.setdefault(pod.spec.node_name, {}), amounts)
        for held_on, cpu in self.held.values():
            add_into(reserved.setdefault(held_on, {}), {"cpu": cpu, "pods": 1})

        told: dict[str, PeerNode] = self.nodes.told
        peer = self.peer
        assert set(peer.nodes) == set(told)
        for node_name, told_node in told.items():
            cached = peer.nodes[node_name]
            assert cached.allocatable == node_allocatable(told_node.status.allocatable)
            assert cached.requested == requested.get(node_name, {}), node_name
            assert cached.delegated == delegated.get(node_name, {}), node_name
            assert cached.reserved == reserved.get(node_name, {}), node_name
            assert cached.unschedulable == told_node.spec.unschedulable
            assert cached.taints == tuple(told_node.spec.taints or ())
        named = set(requested) | set(reserved)
        assert set(peer.ghosts) == named - set(told)

        # What the filter and the virtual node read, against a walk over the nodes.
        largest: Resources = {}
        largest_open: Resources = {}
        free_total: Resources = {}
        advertised: Resources = {}
        for node in peer.nodes.values():
            for name, left in node.free().items():
                if name not in node.allocatable:
                    continue
                if left > 0:
                    largest[name] = max(largest.get(name, 0), left)
                    if node.is_open:
                        largest_open[name] = max(largest_open.get(name, 0), left)
                    if node.schedulable:
                        free_total[name] = free_total.get(name, 0) + left
                room = node.allocatable[name] - node.requested.get(name, 0) + node.delegated.get(name, 0)
                if node.schedulable and room > 0:
                    advertised[name] = advertised.get(name, 0) + room
        bounds = peer.free_bounds()
        assert dict(bounds.largest) == largest
        assert dict(bounds.largest_open) == largest_open
        assert {n.name for n in bounds.restricted} == {n.name for n in peer.nodes.values() if not n.is_open}
        assert peer.free_total() == free_total
        assert peer.advertised() == advertised


    @invariant()
    def the_filter_answers_as_a_scan_of_every_node_would(self) -> None:
        for pod in SHAPES:
            requests = pod_requests(pod)
            fitting = {n.name for n in self.peer.nodes.values() if node_fit_rejection(pod, requests, n) is None}
            first = find_node(pod, requests, self.peer, tightest=False)  # may answer from its no-fit memory
            assert (first.node in fitting) if fitting else first.node is None
            tightest = find_node(pod, requests, self.peer)
            assert (tightest.node in fitting) if fitting else tightest.node is None


CacheUnderAnyOrder.TestCase.settings = settings(
    max_examples=150, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_the_capacity_cache_is_exact_under_any_ordering_of_events = CacheUnderAnyOrder.TestCase

