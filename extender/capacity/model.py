"""What Spillover knows about each peer: its nodes' free resources and its health.

These objects are owned and mutated by the capacity watchers (one asyncio task per peer); the
scheduling handlers only read them, in the same event loop, so no locks are needed.

A peer may have thousands of nodes and change many times a second, so what the scheduling path
asks of a peer as a whole (the most free on one node, per resource; the free and advertised
totals) is kept up to date change by change (``Tally``) instead of being recomputed by a walk over
every node. Changes go through ``PeerState``'s methods (``use``, ``hold``, ``place``, ``reshape``,
``unplace``), which keep the tally exact; anything else that edits nodes directly (tests, the
planner's snapshots) just makes the next read rebuild it from scratch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from extender.capacity.columns import Columns
from extender.capacity.node import NodeCapacity, shifted
from extender.capacity.tally import MISFITS_KEPT, Tally
from extender.pod_security import DEFAULT_LEVEL, Level
from extender.resources import CPU, MEMORY, Resources
from extender.wire.core import Taint


@dataclass(frozen=True, slots=True)
class FreeBounds:
    """Upper bounds on what one node of a peer has free, as of one capacity generation.

    A pod asking more of a resource than ``largest`` fits no node; one with no node selector or
    affinity asking more than ``largest_open`` (the most on an uncordoned, untainted node) can
    only fit one of the ``restricted`` nodes, so only those need a look. The mappings are live:
    read them at once, before the peer changes.
    """

    generation: int
    node_count: int
    largest: Mapping[str, int]
    largest_open: Mapping[str, int]
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
    ghosts: dict[str, NodeCapacity] = field(default_factory=dict)
    """Nodes not (or no longer) in the peer that pods or reservations still refer to. As
    kube-scheduler keeps a deleted node's NodeInfo while pods name it (pkg/scheduler/backend/cache/
    cache.go ``RemoveNode``: "we keep a ghost node with the list of pods until all pod deletion
    events have arrived"), so that a node coming back, or pods seen before their node, count right."""
    unreachable_since: float | None = None
    """time.monotonic() when the peer was last seen going unreachable; None while reachable."""
    generation: int = 0
    """Bumped whenever something the scheduling path reads changes; mirrored onto the virtual node."""
    _tally: Tally | None = field(default=None, init=False, repr=False, compare=False)
    """Aggregates kept change by change; never shared by a copy (``dataclasses.replace`` leaves it out)."""

    def __copy__(self) -> PeerState:
        """A copy that rebuilds its own tally (the planner snapshots peers for a worker thread)."""
        clone = PeerState(self.name, self.virtual_node)
        for name in PeerState.__slots__:
            setattr(clone, name, getattr(self, name))
        clone._tally = None
        return clone

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

    # --- changes (each keeps the tally exact and bumps the generation) -------------------------

    def bump(self) -> None:
        """A new generation (something the scheduling path reads changed), tally kept."""
        tally = self._current()
        self.generation += 1
        if tally is not None:
            tally.generation = self.generation

    def invalidate(self) -> None:
        """Nodes were replaced wholesale: rebuild the tally on the next read."""
        self._tally = None
        self.generation += 1

    def _current(self) -> Tally | None:
        tally = self._tally
        if tally is not None and tally.generation == self.generation and tally.node_count == len(self.nodes):
            return tally
        self._tally = None
        return None

    def _present(self, node: NodeCapacity) -> bool:
        return self.nodes.get(node.name) is node

    def use(self, node: NodeCapacity, requests: Mapping[str, int], sign: int, delegate: bool) -> None:
        """A pod starts (sign 1) or stops (-1) counting against ``node`` (present or ghost)."""

        def change() -> None:
            node.requested = shifted(node.requested, requests, sign)
            if delegate:
                node.delegated = shifted(node.delegated, requests, sign)

        self._change(node, requests, change, loosens=sign < 0)

    def hold(self, node: NodeCapacity, requests: Mapping[str, int], sign: int) -> None:
        """Reserve (sign 1) or give back (-1) room on ``node`` for a pod being placed there."""

        def change() -> None:
            node.reserved = shifted(node.reserved, requests, sign)

        self._change(node, requests, change, loosens=sign < 0)

    def recount(self, node: NodeCapacity, requested: Resources, delegated: Resources) -> None:
        """Replace what pods use on ``node`` wholesale (a fresh pod list), keeping the tally exact."""

        def change() -> None:
            node.requested, node.delegated = requested, delegated

        self._change(node, node.requested.keys() | requested.keys(), change, loosens=True)

    def _change(self, node: NodeCapacity, names: Iterable[str], change: Callable[[], None], loosens: bool) -> None:
        """Apply ``change`` to what ``node``'s pods or reservations use of ``names``: its share is
        taken out of the tally before and put back after, so the tally stays exact."""
        tally = self._current() if self._present(node) else None
        if tally is not None:
            tally.account(node, names, -1)
        change()
        if tally is not None:
            tally.account(node, names, 1)
            if loosens:
                tally.loosen(node)
        self._forget_if_idle(node)
        self.bump()

    def _forget_if_idle(self, node: NodeCapacity) -> None:
        if not node.holds_anything() and self.ghosts.get(node.name) is node:
            del self.ghosts[node.name]

    def place(self, node: NodeCapacity) -> None:
        """``node`` is in the peer (new, or back from the ghosts with what still counts on it)."""
        tally = self._current()
        if self.ghosts.get(node.name) is node:
            del self.ghosts[node.name]
        old = self.nodes.get(node.name)
        if old is not None and old is not node:
            self.unplace(node.name)
            tally = self._current()
        self.nodes[node.name] = node
        if tally is not None:
            tally.add_node(node)
            tally.loosen(node)
        self.bump()

    def reshape(
        self,
        node: NodeCapacity,
        allocatable: Resources,
        labels: Mapping[str, str],
        taints: tuple[Taint, ...],
        unschedulable: bool,
    ) -> None:
        """The node's own spec or status changed (what it offers, its labels, taints or cordon)."""
        tally = self._current() if self._present(node) else None
        if tally is not None:
            tally.remove_node(node)
        node.allocatable, node.labels, node.taints, node.unschedulable = allocatable, labels, taints, unschedulable
        if tally is not None:
            tally.add_node(node)
            tally.loosen(node)
        self.bump()

    def unplace(self, name: str) -> NodeCapacity | None:
        """The node left the peer; it stays a ghost while pods or reservations refer to it."""
        node = self.nodes.get(name)
        if node is None:
            return None
        tally = self._current()
        del self.nodes[name]
        if tally is not None:
            tally.remove_node(node)
        if node.holds_anything():
            self.ghosts[name] = node
        self.bump()
        return node

    # --- reads ---------------------------------------------------------------------------------

    def _tallied(self) -> Tally:
        tally = self._current()
        if tally is None:
            tally = Tally(self.generation, 0)
            for node in self.nodes.values():
                tally.add_node(node)
            self._tally = tally
        return tally

    def free_bounds(self) -> FreeBounds:
        """The most free on one node, per resource, for the filter path to skip scans with.

        Kept current change by change; only when the last node holding the most of a resource
        loses some does the next read walk the nodes again for that resource.
        """
        tally = self._tallied()
        tally.refresh()
        restricted = tally.restricted_view
        if restricted is None:
            restricted = tally.restricted_view = tuple(tally.restricted.values())
        return FreeBounds(self.generation, len(self.nodes), tally.top.top, tally.open.top, restricted)

    def columns(self) -> Columns:
        """Free room per node and resource as numpy columns (see ``Columns``), current."""
        return self._tallied().columns

    def label_count(self, key: str, value: str | None = None) -> int:
        """How many nodes carry label ``key`` (with ``value``, when given)."""
        tally = self._tallied()
        return tally.label_keys.get(key, 0) if value is None else tally.labels.get((key, value), 0)

    def misfit(self, key: Hashable) -> tuple[str, Sequence[NodeCapacity]] | None:
        """Why a pod of this shape fitted no node when last checked, and the nodes that may have
        gained room since (the caller checks just those); None when unknown or too long ago."""
        tally = self._tallied()
        entry = tally.misfits.get(key)
        if entry is None:
            return None
        checked, reason = entry
        if checked < tally.loosened_start:
            del tally.misfits[key]
            return None
        end = tally.loosened_start + len(tally.loosened)
        changed = tally.loosened[checked - tally.loosened_start :]
        tally.misfits[key] = (end, reason)
        return reason, changed

    def remember_misfit(self, key: Hashable, reason: str) -> None:
        """A full scan found no node for pods of this shape (see ``misfit``)."""
        tally = self._tallied()
        if len(tally.misfits) >= MISFITS_KEPT:
            tally.misfits.clear()
        tally.misfits[key] = (tally.loosened_start + len(tally.loosened), reason)

    def forget_misfit(self, key: Hashable) -> None:
        self._tallied().misfits.pop(key, None)

    def free_total(self) -> Resources:
        """Free room summed over schedulable nodes (what `spillover status` shows, not placement)."""
        return {name: amount for name, amount in self._tallied().free_sum.items() if amount > 0}

    def advertised(self) -> Resources:
        """What the home scheduler may place on the peer's virtual node in total.

        Per schedulable node: allocatable minus what pods other than Spillover's own use, floored
        at zero; summed. The home scheduler subtracts the proxies bound to the virtual node itself.
        """
        return {name: amount for name, amount in self._tallied().advertised.items() if amount > 0}

    def headroom(self) -> float:
        """Free share (0-1) of the peer's schedulable CPU and memory, averaged."""
        tally = self._tallied()
        shares = []
        for name in (CPU, MEMORY):
            total = tally.alloc_sum.get(name, 0)
            shares.append(tally.free_sum.get(name, 0) / total if total else 0.0)
        return sum(shares) / len(shares)
