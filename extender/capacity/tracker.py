"""Keeps one peer's per-node free capacity current from its Node and Pod watches.

Pods are counted as kube-scheduler v1.36 counts them in its cache: every pod bound to a node and
not terminal (its informer leaves out Succeeded and Failed pods: pkg/scheduler/scheduler.go),
including pods being deleted, by ``bound_pod_requests`` (in-place resizes included). Pods bound by
Spillover (label spillover.io/proxy-uid) are also tallied apart, so the virtual node can
advertise what the peer could take if none of them were there (the home scheduler already
counts their proxies against it).

The node and pod watches are independent streams, so any order of their events can happen: pods
listed before their nodes, a node deleted while its pods are still listed, a node deleted and
re-created under the same name. As in kube-scheduler's cache (pkg/scheduler/backend/cache/cache.go:
``addPod`` creates the NodeInfo of a node not seen yet, ``RemoveNode`` keeps a "ghost" while pods
refer to it), what pods use is kept per node *name*, whether or not the node is there, so the
figures are exact once both streams have caught up, whatever the interleaving.

Memory: a peer may run 100,000 pods. Each is kept as a compact record (``pod_records``), and
allocatable lists are shared, since most nodes have one of a handful of shapes.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any

from extender import labels
from extender.capacity.model import PeerState
from extender.capacity.node import EMPTY, NodeCapacity
from extender.capacity.pod_records import Counted, PodKey, Record, Shapes, pod_key
from extender.kube.reflector import Handler, Listing
from extender.pod_requests import bound_pod_requests, simple_signature
from extender.resources import PODS, QuantityError, Resources, add_into, node_allocatable
from extender.wire.core import Node, PeerNode, PeerPod, Pod

log = logging.getLogger("spillover.capacity")
TERMINAL = ("Succeeded", "Failed")
POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"
"""What kube-scheduler's own pod informer asks for (pkg/scheduler/scheduler.go
``newPodInformer``): finished pods are never sent, and a pod that finishes arrives as DELETED."""
_NO_LABELS: Mapping[str, str] = {}
ADOPT_SLICE = 250
"""Nodes recounted from a fresh pod list between two turns of the event loop."""
_INTERNED_MAX = 50_000
"""Distinct allocatable lists remembered for sharing before starting over."""

NodeLike = PeerNode | Node
"""A node as a peer's watch decodes it (lean) or as home's does (home's capacity uses this tracker too)."""
PodLike = PeerPod | Pod


class PeerTracker:
    """The watch handlers of one peer; ``on_change`` fires after every capacity change."""

    def __init__(
        self,
        peer: PeerState,
        on_change: Callable[[PeerState], None],
        on_delegate_seen: Callable[[str], None] | None = None,
    ) -> None:
        self.peer = peer
        self.on_change = on_change
        self.on_delegate_seen = on_delegate_seen
        """Called with the proxy UID of each delegate seen bound to a node here (its bind's
        reservation is then counted by the pod itself)."""
        self._pods: dict[PodKey, Record] = {}
        self._shapes = Shapes()
        self._allocatables: dict[tuple[tuple[str, int], ...], Resources] = {}
        self._by_signature: dict[Hashable, Resources] = {}
        """Requests of plain pods by what they are computed from (``simple_signature``)."""
        self._warned = 0.0
        self.nodes = _NodeHandler(self)
        self.pods = _PodHandler(self)

    def changed(self) -> None:
        self.peer.bump()
        self.on_change(self.peer)

    @property
    def pod_count(self) -> int:
        return len(self._pods)

    @property
    def shape_count(self) -> int:
        """Distinct request vectors of the pods counted now."""
        return len(self._shapes.ids)

    # --- what a pod and a node amount to ------------------------------------------------------

    def _interned(self, table: dict[tuple[tuple[str, int], ...], Resources], amounts: Resources) -> Resources:
        key = tuple(sorted(amounts.items()))
        shared = table.get(key)
        if shared is None:
            if len(table) >= _INTERNED_MAX:
                table.clear()
            shared = table[key] = amounts
        return shared

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned > 60:
            self._warned = now
            log.warning("peer %s: %s", self.peer.name, message)

    def count(self, pod: PodLike) -> tuple[PodKey, Counted | None, str | None]:
        """The pod's key, what it takes where (None: nothing, it is unbound or finished), and the
        proxy UID when it is one of Spillover's delegates."""
        key = pod_key(pod.metadata.uid)
        node_name = pod.spec.node_name
        if not node_name or (pod.status is not None and pod.status.phase in TERMINAL):
            return key, None, None
        signature = simple_signature(pod)
        requests = self._by_signature.get(signature) if signature is not None else None
        if requests is None:
            try:
                requests = bound_pod_requests(pod)
            except QuantityError as exc:  # the apiserver never sends one; count the pod slot at least
                self._warn(f"pod {pod.metadata.name} ({pod.metadata.uid}): {exc}; counted as one pod slot only")
                requests = {PODS: 1}
            if signature is not None:
                if len(self._by_signature) >= _INTERNED_MAX:
                    self._by_signature.clear()
                self._by_signature[signature] = requests
        pod_labels = pod.metadata.labels
        proxy = pod_labels.get(labels.PROXY_UID) if pod_labels else None
        return key, (sys.intern(node_name), requests, proxy is not None), proxy

    def _slot(self, name: str) -> NodeCapacity:
        """The node of that name, present or ghost; a new ghost if pods are seen before it."""
        peer = self.peer
        node = peer.nodes.get(name) or peer.ghosts.get(name)
        if node is None:
            node = peer.ghosts[name] = _ghost(name)
        return node

    # --- pods ---------------------------------------------------------------------------------

    def set_pod(self, pod: PodLike) -> None:
        key, counted, proxy = self.count(pod)
        record = self._pods.get(key)
        old = self._shapes.counted(record) if record is not None else None
        if counted != old:  # a status write, a label: nothing the scheduler counts changed
            if record is not None and old is not None:
                self._forget(key, record, old)
            if counted is not None:
                self._pods[key] = self._shapes.record(counted)
                self.peer.use(self._slot(counted[0]), counted[1], 1, counted[2])
            self.on_change(self.peer)
        if proxy is not None and counted is not None and self.on_delegate_seen is not None:
            self.on_delegate_seen(proxy)

    def _forget(self, key: PodKey, record: Record, counted: Counted) -> None:
        del self._pods[key]
        self.peer.use(self._slot(counted[0]), counted[1], -1, counted[2])
        self._shapes.drop(record[1] >> 1)

    def drop_pod(self, uid: str) -> None:
        key = pod_key(uid)
        record = self._pods.get(key)
        if record is None:
            return
        self._forget(key, record, self._shapes.counted(record))
        self.on_change(self.peer)

    def replace_pods(self, pods: Sequence[PodLike]) -> None:
        listing = _PodListing(self)
        listing.add(pods)
        for _ in self.adopting(listing.pods, listing.shapes, listing.finished()):
            pass
        listing.release_reservations()

    def adopting(
        self, pods: dict[PodKey, Record], shapes: Shapes, usage: dict[str, tuple[Resources, Resources]]
    ) -> Iterator[None]:
        """A complete pod list replaces what was counted, node by node, pausing (yielding) every
        ``ADOPT_SLICE`` nodes so the event loop runs in between; each node is exact throughout,
        counted by the previous list or by this one, never half of each."""
        peer = self.peer
        self._pods, self._shapes = pods, shapes
        names = list(dict.fromkeys([*peer.nodes, *peer.ghosts, *usage]))
        for done, name in enumerate(names, 1):
            requested, delegated = usage.get(name, (EMPTY, EMPTY))
            node = peer.nodes.get(name) or peer.ghosts.get(name)
            if node is None:
                node = peer.ghosts[name] = _ghost(name)
            peer.recount(node, requested, delegated)
            if done % ADOPT_SLICE == 0:
                yield
        peer.free_bounds()  # anything left stale is redone here, in the watch, not in a filter call
        self.on_change(peer)

    # --- nodes --------------------------------------------------------------------------------

    def _apply_node(self, item: NodeLike) -> bool:
        """Take in a node as listed or watched; False when nothing kube-scheduler reads changed
        (a heartbeat, a condition, an image list): then nothing else changes either."""
        name = sys.intern(item.metadata.name)
        try:
            allocatable = node_allocatable(item.status.allocatable)
        except QuantityError as exc:
            self._warn(f"node {name}: {exc}; it offers nothing until its allocatable parses")
            allocatable = {}
        allocatable = self._interned(self._allocatables, allocatable)
        node_labels = item.metadata.labels or _NO_LABELS
        taints = tuple(item.spec.taints or ())
        unschedulable = item.spec.unschedulable
        peer = self.peer
        node = peer.nodes.get(name)
        if node is not None:
            if (
                node.allocatable == allocatable
                and node.unschedulable == unschedulable
                and node.taints == taints
                and node.labels == node_labels
            ):
                return False
            peer.reshape(node, allocatable, node_labels, taints, unschedulable)
            return True
        node = peer.ghosts.get(name) or _ghost(name)
        node.allocatable, node.labels, node.taints, node.unschedulable = allocatable, node_labels, taints, unschedulable
        peer.place(node)
        return True

    def set_node(self, node: NodeLike) -> None:
        if self._apply_node(node):
            self.on_change(self.peer)

    def drop_node(self, name: str) -> None:
        if self.peer.unplace(name) is not None:
            self.on_change(self.peer)

    def replace_nodes(self, nodes: Sequence[NodeLike]) -> None:
        listing = _NodeListing(self)
        listing.add(nodes)
        listing.done()


def _ghost(name: str) -> NodeCapacity:
    return NodeCapacity(name=name, allocatable=EMPTY, requested=EMPTY, delegated=EMPTY, reserved=EMPTY,
                        labels=_NO_LABELS)


class _NodeListing(Listing[Any]):
    """A node list taken page by page: each listed node is current as soon as its page comes (a
    node is one object, right on its own); those not listed at all go when the list is complete."""

    def __init__(self, tracker: PeerTracker) -> None:
        self.t = tracker
        self.listed: set[str] = set()
        tracker.peer.free_bounds()  # a live tally from the start: nodes enter it one by one, no rebuild

    def add(self, items: Sequence[NodeLike]) -> None:
        for node in items:
            self.t._apply_node(node)
            self.listed.add(node.metadata.name)

    def done(self) -> None:
        peer = self.t.peer
        for name in [name for name in peer.nodes if name not in self.listed]:
            peer.unplace(name)
        peer.free_bounds()
        self.t.changed()


class _PodListing(Listing[Any]):
    """A pod list taken page by page into compact records, then swapped in whole: until the last
    page the scheduling path keeps reading the previous, complete count."""

    def __init__(self, tracker: PeerTracker) -> None:
        self.t = tracker
        self.pods: dict[PodKey, Record] = {}
        self.shapes = Shapes()
        self.usage: dict[str, tuple[Resources, Resources]] = {}
        self.proxies: list[str] = []

    def _tally(self, counted: Counted, sign: int) -> None:
        node, requests, delegate = counted
        entry = self.usage.get(node)
        if entry is None:
            entry = self.usage[node] = ({}, EMPTY)
        amounts = requests if sign > 0 else {k: -v for k, v in requests.items()}
        add_into(entry[0], amounts)
        if delegate:
            delegated = entry[1] if entry[1] is not EMPTY else {}
            add_into(delegated, amounts)
            self.usage[node] = (entry[0], delegated)

    def add(self, items: Sequence[PodLike]) -> None:
        count, pods, shapes = self.t.count, self.pods, self.shapes
        for pod in items:
            key, counted, proxy = count(pod)
            if counted is None:
                continue
            old = pods.get(key)
            if old is not None:  # listed twice (never from an apiserver): count it once
                self._tally(shapes.counted(old), -1)
                shapes.drop(old[1] >> 1)
            pods[key] = shapes.record(counted)
            self._tally(counted, 1)
            if proxy is not None:
                self.proxies.append(proxy)

    def finished(self) -> dict[str, tuple[Resources, Resources]]:
        for node, (requested, delegated) in self.usage.items():  # zeros from a pod listed twice
            self.usage[node] = (_nonzero(requested), _nonzero(delegated))
        return self.usage

    def release_reservations(self) -> None:
        if self.t.on_delegate_seen is not None:
            for proxy in self.proxies:
                self.t.on_delegate_seen(proxy)

    async def done(self) -> None:
        for _ in self.t.adopting(self.pods, self.shapes, self.finished()):
            await asyncio.sleep(0)
        self.release_reservations()


def _nonzero(amounts: Resources) -> Resources:
    return {name: amount for name, amount in amounts.items() if amount} or EMPTY


class _NodeHandler(Handler[PeerNode]):
    def __init__(self, tracker: PeerTracker) -> None:
        self.t = tracker

    def listing(self) -> Listing[PeerNode]:
        return _NodeListing(self.t)

    def replace(self, items: list[PeerNode]) -> None:
        self.t.replace_nodes(items)

    def upsert(self, item: PeerNode) -> None:
        self.t.set_node(item)

    def delete(self, item: PeerNode) -> None:
        self.t.drop_node(item.metadata.name)


class _PodHandler(Handler[PeerPod]):
    def __init__(self, tracker: PeerTracker) -> None:
        self.t = tracker

    def listing(self) -> Listing[PeerPod]:
        return _PodListing(self.t)

    def replace(self, items: list[PeerPod]) -> None:
        self.t.replace_pods(items)

    def upsert(self, item: PeerPod) -> None:
        self.t.set_pod(item)

    def delete(self, item: PeerPod) -> None:
        self.t.drop_pod(item.metadata.uid)
