"""What Spillover knows about each peer: its nodes' free resources and its health.

These objects are owned and mutated by the capacity watchers (one asyncio task per peer); the
scheduling handlers only read them, in the same event loop, so no locks are needed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from extender.pod_security import DEFAULT_LEVEL, Level
from extender.resources import Resources, subtract
from extender.wire.core import Taint


@dataclass(slots=True)
class NodeCapacity:
    """One real node of a peer: what the scheduler there would see."""

    name: str
    allocatable: Resources = field(default_factory=dict)
    requested: Resources = field(default_factory=dict)
    """Sum of the requests of the node's non-terminal pods (pods slot included)."""
    delegated: Resources = field(default_factory=dict)
    """The part of ``requested`` that is Spillover's own delegate pods."""
    reserved: Resources = field(default_factory=dict)
    """Held for pods Spillover is placing here but the peer's watch has not shown yet."""
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    unschedulable: bool = False

    @property
    def schedulable(self) -> bool:
        return self.ready and not self.unschedulable

    @property
    def is_open(self) -> bool:
        """Schedulable and untainted: a pod with no placement constraints fits by resources alone."""
        return self.ready and not self.unschedulable and not self.taints

    def free(self) -> Resources:
        used = dict(self.requested)
        for name, amount in self.reserved.items():
            used[name] = used.get(name, 0) + amount
        return subtract(self.allocatable, used)


@dataclass(frozen=True, slots=True)
class FreeBounds:
    """Upper bounds on what one node of a peer has free, as of one capacity generation.

    A pod asking more of a resource than ``largest`` fits no node; one with no node selector or
    affinity asking more than ``largest_open`` (the most on a ready, uncordoned, untainted node)
    can only fit one of the ``restricted`` nodes, so only those need a look.
    """

    generation: int
    node_count: int
    largest: Resources
    largest_open: Resources
    restricted: tuple[NodeCapacity, ...]


@dataclass(slots=True)
class PeerState:
    """A peer cluster as the scheduling path sees it (from its PeerCluster and its watches)."""

    name: str
    virtual_node: str
    cost: float = 1.0
    """Relative price per CPU hour."""
    cost_per_gib: float = 0.0
    cost_per_gpu: float = 0.0
    tier: int = 0
    paused: bool = False
    detaching: str = ""
    """Why the peer takes no pods while its PeerCluster is being deleted ("" when it is not)."""
    reachable: bool = False
    synced: bool = False
    unreachable_reason: str = "not synced yet"
    remote_namespace: str | None = None
    """Namespace to run delegates in; None means the proxy pod's own namespace."""
    allowed_namespaces: Mapping[str, object] | None = None
    """A metav1.LabelSelector (matchLabels/matchExpressions) over home namespaces; None: all."""
    pod_security: Level = DEFAULT_LEVEL
    """The Pod Security level the peer's namespaces for Spillover enforce (PeerCluster spec.podSecurity)."""
    nodes: dict[str, NodeCapacity] = field(default_factory=dict)
    unreachable_since: float | None = None
    """time.monotonic() when the peer was last seen going unreachable; None while reachable."""
    generation: int = 0
    """Bumped whenever free capacity changes; mirrored onto the virtual node as an annotation."""
    _free_bounds: FreeBounds | None = None

    def set_reachable(self, ok: bool, reason: str = "") -> bool:
        """Record reachability; True when it flipped."""
        flipped = ok != self.reachable
        self.reachable = ok
        if ok:
            self.unreachable_since = None
        else:
            self.unreachable_reason = reason or self.unreachable_reason
            if self.unreachable_since is None:
                self.unreachable_since = time.monotonic()
        return flipped

    def unreachable_for(self) -> float | None:
        """Seconds the peer has been unreachable after having been reached once; None otherwise."""
        if self.reachable or self.unreachable_since is None or not self.synced:
            return None
        return time.monotonic() - self.unreachable_since

    @property
    def healthy(self) -> bool:
        return self.reachable and self.synced and not self.paused and not self.detaching

    def health_reason(self) -> str:
        if self.detaching:
            return f"peer {self.name} is being detached: {self.detaching}"
        if self.paused:
            return f"peer {self.name} is paused (PeerCluster spec.paused)"
        if not self.reachable:
            return f"peer {self.name} is unreachable: {self.unreachable_reason}"
        if not self.synced:
            return f"peer {self.name} capacity cache has not synced yet"
        return ""

    def known_free_bounds(self) -> FreeBounds | None:
        """``free_bounds()`` if it is still current, else None (never computes)."""
        memo = self._free_bounds
        if memo is not None and memo.generation == self.generation and memo.node_count == len(self.nodes):
            return memo
        return None

    def free_bounds(self) -> FreeBounds:
        """The most free on one node, per resource, for the filter path to skip scans with.

        Kept until the capacity generation (bumped by every watch event and reservation) or the
        node count moves.
        """
        known = self.known_free_bounds()
        if known is not None:
            return known
        largest: Resources = {}
        largest_open: Resources = {}
        restricted: list[NodeCapacity] = []
        for node in self.nodes.values():
            is_open = node.is_open
            if not is_open:
                restricted.append(node)
            for name, left in node.free().items():
                if left > largest.get(name, 0):
                    largest[name] = left
                if is_open and left > largest_open.get(name, 0):
                    largest_open[name] = left
        bounds = FreeBounds(self.generation, len(self.nodes), largest, largest_open, tuple(restricted))
        self._free_bounds = bounds
        return bounds

    def free_total(self) -> Resources:
        total: Resources = {}
        for node in self.nodes.values():
            if not node.schedulable:
                continue
            for name, amount in node.free().items():
                if amount > 0:
                    total[name] = total.get(name, 0) + amount
        return total
