"""Home's real nodes and what is free on each, kept exact by home's Node and Pod watches.

One cache for every reader of home's nodes: bind judges a pod's own rules against a node from it
(labels, taints, cordon; no I/O), and repatriation asks it whether a home node would take a pod
that runs in a peer now. It is the capacity package's own peer tracker pointed at home: per
node, allocatable minus the requests of the non-terminal pods bound there, counted as
kube-scheduler's NodeResourcesFit counts them (``extender.resources.pod_requests``), and
``find_node`` judges a pod against it by every rule the peers' nodes are judged by. Virtual
nodes (label ``spillover.io/virtual``) and the proxies bound to them are left out: they stand
for peers, not for room at home.

Pods coming home are held here (``coming_home``) from their eviction until their replacement is
bound, so the room they were promised is not promised twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from extender import labels
from extender.capacity.fit import FitResult, find_node
from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.capacity.reservations import Reservations
from extender.capacity.tracker import PeerTracker
from extender.kube.reflector import Handler
from extender.resources import Resources
from extender.wire.core import Node, ObjectMeta, Pod

HOME = "home"
COMING_HOME_SECONDS = 180.0
"""How long room stays held for a pod coming home whose replacement has not been bound yet."""


def is_virtual_node(meta: ObjectMeta) -> bool:
    return (meta.labels or {}).get(labels.VIRTUAL) == "true"


class HomeCapacity:
    """Home's real nodes (``names``) and their free room, for bind and repatriation."""

    def __init__(self, coming_home_seconds: float = COMING_HOME_SECONDS) -> None:
        self.state = PeerState(name=HOME, virtual_node="", reachable=True, synced=True)
        self._tracker = PeerTracker(self.state, on_change=_unchanged)
        self.nodes: Handler[Node] = _RealNodes(self._tracker)
        self.pods: Handler[Pod] = _PodsOnRealNodes(self)
        self.coming_home = Reservations(ttl=coming_home_seconds)
        self.coming_home.peers[HOME] = self.state

    @property
    def names(self) -> Mapping[str, NodeCapacity]:
        """The real home nodes, by name."""
        return self.state.nodes

    def node(self, name: str) -> NodeCapacity | None:
        """A real node as bind judges a pod's own rules against it. Readiness is not among them:
        kube-scheduler reads no node condition (a NotReady node carries the lifecycle controller's
        taints, which are judged like any other)."""
        return self.state.nodes.get(name)

    def is_spilled(self, pod: Pod) -> bool:
        """Whether the pod is bound to a virtual node (a proxy of a pod running in a peer)."""
        node = pod.spec.node_name
        return bool(node) and node.startswith(labels.VIRTUAL_NODE_PREFIX) and node not in self.state.nodes

    def room_for(self, pod: Pod, requests: Resources) -> FitResult:
        """The home node that would take the pod now, by every rule ``filter`` applies to a
        peer's nodes (cordon, taints, node selector, required node affinity, each resource),
        counting the pods already coming home; or why none would."""
        return find_node(pod, requests, self.state)

    def hold(self, uid: str, node: str, requests: Resources) -> None:
        """Room on ``node`` for a pod coming home, until ``release`` or the hold's TTL."""
        self.coming_home.hold(uid, self.state, node, requests)

    def release(self, uid: str) -> None:
        self.coming_home.release(uid)

    def snapshot(self) -> PeerState:
        """A copy of home to try placements on without touching the cache."""
        clone = dataclasses.replace(self.state, nodes={}, ghosts={})
        for name, node in self.state.nodes.items():
            clone.nodes[name] = dataclasses.replace(
                node, requested=dict(node.requested), reserved=dict(node.reserved), delegated={}
            )
        return clone


def _unchanged(_: PeerState) -> None:
    """Home has no virtual node to rewrite when its capacity moves."""


class _RealNodes(Handler[Node]):
    def __init__(self, tracker: PeerTracker) -> None:
        self.tracker = tracker

    def replace(self, items: list[Node]) -> None:
        self.tracker.replace_nodes([n for n in items if not is_virtual_node(n.metadata)])

    def upsert(self, item: Node) -> None:
        if not is_virtual_node(item.metadata):
            self.tracker.set_node(item)

    def delete(self, item: Node) -> None:
        self.tracker.drop_node(item.metadata.name)


class _PodsOnRealNodes(Handler[Pod]):
    """Counts the pods bound to real nodes; proxies on virtual nodes take no room at home."""

    def __init__(self, home: HomeCapacity) -> None:
        self.home = home
        self.tracker = home._tracker

    def replace(self, items: list[Pod]) -> None:
        self.tracker.replace_pods([p for p in items if not self.home.is_spilled(p)])

    def upsert(self, item: Pod) -> None:
        if self.home.is_spilled(item):
            self.tracker.drop_pod(item.metadata.uid)
        else:
            self.tracker.set_pod(item)

    def delete(self, item: Pod) -> None:
        self.tracker.drop_pod(item.metadata.uid)
