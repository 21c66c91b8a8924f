"""Keeps one peer's per-node free capacity current from its Node and Pod watches.

Pods are counted as kube-scheduler counts them: every pod bound to a node and not terminal
(Succeeded/Failed), including pods being deleted, by their effective requests. Pods bound by
Spillover (label spillover.io/proxy-uid) are also tallied apart, so the virtual node can
advertise what the peer could take if none of them were there (the home scheduler already
counts their proxies against it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache

from extender import labels
from extender.capacity.model import NodeCapacity, PeerState
from extender.kube.reflector import Handler
from extender.resources import Resources, add_into, parse_resources, pod_requests, subtract
from extender.wire.core import Node, Pod

TERMINAL = ("Succeeded", "Failed")


@dataclass(slots=True)
class _Counted:
    node: str
    requests: Resources
    delegate: bool


@dataclass(slots=True)
class Reservation:
    peer: str
    node: str
    requests: Resources


def node_capacity(node: Node, previous: NodeCapacity | None) -> NodeCapacity:
    conditions = {c.type: c.status for c in node.status.conditions or ()}
    cap = NodeCapacity(
        name=node.metadata.name,
        allocatable=parse_resources(node.status.allocatable or node.status.capacity),
        labels=dict(node.metadata.labels or {}),
        taints=tuple(node.spec.taints or ()),
        ready=conditions.get("Ready") == "True",
        unschedulable=node.spec.unschedulable,
    )
    if previous is not None:
        cap.requested = previous.requested
        cap.delegated = previous.delegated
        cap.reserved = previous.reserved
    return cap


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
        """Called with the proxy UID of each delegate first seen bound to a node here."""
        self._pods: dict[str, _Counted] = {}
        self._orphan_requests: dict[str, Resources] = {}
        """Requests of pods on nodes not (yet) seen, per node name: applied when it appears."""
        self.nodes = _NodeHandler(self)
        self.pods = _PodHandler(self)

    def changed(self) -> None:
        self.peer.generation += 1
        self.on_change(self.peer)

    def _account(self, node_name: str, requests: Resources, delegate: bool, sign: int) -> None:
        amounts = requests if sign > 0 else {k: -v for k, v in requests.items()}
        node = self.peer.nodes.get(node_name)
        if node is None:
            pending = self._orphan_requests.setdefault(node_name, {})
            add_into(pending, amounts)
            return
        add_into(node.requested, amounts)
        if delegate:
            add_into(node.delegated, amounts)

    def set_pod(self, pod: Pod) -> None:
        uid = pod.metadata.uid
        counted = self._pods.get(uid)
        phase = pod.status.phase if pod.status else ""
        node_name = pod.spec.node_name
        if not node_name or phase in TERMINAL:
            if counted is not None:
                self.drop_pod(uid)
            return
        if counted is not None and counted.node == node_name:
            return  # requests of a bound pod are immutable (in-place resize is not modelled)
        if counted is not None:
            self.drop_pod(uid)
        pod_labels = pod.metadata.labels or {}
        delegate = labels.PROXY_UID in pod_labels
        requests = pod_requests(pod)
        self._pods[uid] = _Counted(node_name, requests, delegate)
        self._account(node_name, requests, delegate, +1)
        if delegate and self.on_delegate_seen is not None:
            self.on_delegate_seen(pod_labels[labels.PROXY_UID])
        self.changed()

    def drop_pod(self, uid: str) -> None:
        counted = self._pods.pop(uid, None)
        if counted is None:
            return
        self._account(counted.node, counted.requests, counted.delegate, -1)
        self.changed()

    def replace_pods(self, pods: list[Pod]) -> None:
        for node in self.peer.nodes.values():
            node.requested = {}
            node.delegated = {}
        self._pods.clear()
        self._orphan_requests.clear()
        for pod in pods:
            self.set_pod(pod)
        self.changed()

    def set_node(self, node: Node) -> None:
        name = node.metadata.name
        cap = node_capacity(node, self.peer.nodes.get(name))
        if name not in self.peer.nodes:
            add_into(cap.requested, self._orphan_requests.pop(name, {}))
        self.peer.nodes[name] = cap
        self.changed()

    def drop_node(self, name: str) -> None:
        if self.peer.nodes.pop(name, None) is not None:
            self.changed()

    def replace_nodes(self, nodes: list[Node]) -> None:
        old = self.peer.nodes
        self.peer.nodes = {}
        for node in nodes:
            self.peer.nodes[node.metadata.name] = node_capacity(node, old.get(node.metadata.name))
        self.changed()


class _NodeHandler(Handler[Node]):
    def __init__(self, tracker: PeerTracker) -> None:
        self.t = tracker

    def replace(self, items: list[Node]) -> None:
        self.t.replace_nodes(items)

    def upsert(self, item: Node) -> None:
        self.t.set_node(item)

    def delete(self, item: Node) -> None:
        self.t.drop_node(item.metadata.name)


class _PodHandler(Handler[Pod]):
    def __init__(self, tracker: PeerTracker) -> None:
        self.t = tracker

    def replace(self, items: list[Pod]) -> None:
        self.t.replace_pods(items)

    def upsert(self, item: Pod) -> None:
        self.t.set_pod(item)

    def delete(self, item: Pod) -> None:
        self.t.drop_pod(item.metadata.uid)


class _ExpiringHolds(TTLCache[str, Reservation]):
    """A TTLCache that hands every expired reservation back, however the expiry was triggered.

    TTLCache also expires items inside ``__setitem__``; overriding ``expire`` is the one place
    that sees them all, so no held capacity can leak.
    """

    def __init__(
        self, ttl: float, maxsize: int, on_expired: Callable[[Reservation], None], timer: Callable[[], float]
    ) -> None:
        super().__init__(maxsize=maxsize, ttl=ttl, timer=timer)
        self._on_expired = on_expired

    def expire(self, time: float | None = None) -> list[tuple[str, Reservation]]:
        expired: list[tuple[str, Reservation]] = list(super().expire(time))
        for _, reservation in expired:
            self._on_expired(reservation)
        return expired

    def popitem(self) -> tuple[str, Reservation]:
        key, reservation = super().popitem()  # evicted for size: give the capacity back too
        self._on_expired(reservation)
        return key, reservation


class Reservations:
    """Capacity held for pods being placed until the peer's watch shows them (or a TTL passes).

    Without it, a burst of binds would all see the same free node and overcommit the peer
    between the create call and the watch event that counts the new pod.
    """

    def __init__(self, ttl: float = 30.0, maxsize: int = 100_000, timer: Callable[[], float] = time.monotonic) -> None:
        self._held = _ExpiringHolds(ttl, maxsize, self._undo, timer)
        self.peers: dict[str, PeerState] = {}

    def hold(self, proxy_uid: str, peer: PeerState, node: str, requests: Resources) -> None:
        self.release(proxy_uid)
        self.expire()
        target = peer.nodes.get(node)
        if target is None:
            return
        add_into(target.reserved, requests)
        self._held[proxy_uid] = Reservation(peer.name, node, dict(requests))
        self.peers[peer.name] = peer
        peer.generation += 1

    def release(self, proxy_uid: str) -> None:
        reservation = self._held.pop(proxy_uid, None)
        if reservation is not None:
            self._undo(reservation)

    def expire(self) -> int:
        return len(self._held.expire())

    def holds(self, proxy_uid: str) -> bool:
        return proxy_uid in self._held

    def _undo(self, reservation: Reservation) -> None:
        peer = self.peers.get(reservation.peer)
        if peer is None:
            return
        node = peer.nodes.get(reservation.node)
        if node is not None:
            node.reserved = subtract(node.reserved, reservation.requests)
            peer.generation += 1

    def __len__(self) -> int:
        return len(self._held)


def virtual_allocatable(peer: PeerState) -> Resources:
    """What the home scheduler may place on the peer's virtual node in total.

    Per schedulable node: allocatable minus what pods other than Spillover's own use, floored
    at zero; summed. The home scheduler subtracts the proxies bound to the virtual node itself.
    """
    total: Resources = {}
    for node in peer.nodes.values():
        if not node.schedulable:
            continue
        foreign = subtract(node.requested, node.delegated)
        for name, amount in node.allocatable.items():
            room = amount - foreign.get(name, 0)
            if room > 0:
                total[name] = total.get(name, 0) + room
    return total
