"""What Spillover knows about each peer: its nodes' free resources and its health.

These objects are owned and mutated by the capacity watchers (one asyncio task per peer); the
scheduling handlers only read them, in the same event loop, so no locks are needed.

A peer may have thousands of nodes and change many times a second, so what the scheduling path
asks of a peer as a whole (the most free on one node, per resource; the free and advertised
totals) is kept up to date change by change (``_Tally``) instead of being recomputed by a walk over
every node. Changes go through ``PeerState``'s methods (``use``, ``hold``, ``place``, ``reshape``,
``unplace``), which keep the tally exact; anything else that edits nodes directly (tests, the
planner's snapshots) just makes the next read rebuild it from scratch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from extender.pod_security import DEFAULT_LEVEL, Level
from extender.resources import CPU, MEMORY, Resources, subtract
from extender.wire.core import Taint

EMPTY: Resources = {}
"""Shared by every node that holds no reservation or delegate; never written (``_shifted`` copies)."""


@dataclass(slots=True)
class NodeCapacity:
    """One real node of a peer: what the scheduler there would see."""

    name: str
    allocatable: Resources = field(default_factory=dict)
    """``status.allocatable`` as kube-scheduler reads it (never written in place: nodes share it)."""
    requested: Resources = field(default_factory=dict)
    """Sum of the requests of the node's non-terminal pods (pods slot included)."""
    delegated: Resources = field(default_factory=dict)
    """The part of ``requested`` that is Spillover's own delegate pods."""
    reserved: Resources = field(default_factory=dict)
    """Held for pods Spillover is placing here but the peer's watch has not shown yet."""
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False

    @property
    def schedulable(self) -> bool:
        """Not cordoned. kube-scheduler reads no node condition: a node that is not ready is kept
        off by the taints the node lifecycle controller puts on it (node.kubernetes.io/not-ready,
        /unreachable), which the fit checks like any other taint."""
        return not self.unschedulable

    @property
    def is_open(self) -> bool:
        """Uncordoned and untainted: a pod with no placement constraints fits by resources alone."""
        return not self.unschedulable and not self.taints

    def free(self) -> Resources:
        used = dict(self.requested)
        for name, amount in self.reserved.items():
            used[name] = used.get(name, 0) + amount
        return subtract(self.allocatable, used)

    def holds_anything(self) -> bool:
        """Whether any pod or reservation still refers to this node (a ghost must stay while so)."""
        return bool(self.requested) or bool(self.reserved)


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


def _shifted(amounts: Resources, delta: Mapping[str, int], sign: int) -> Resources:
    """``amounts`` + sign x ``delta``, in place unless it is the shared EMPTY; zeros are dropped so
    a node's figures equal a fresh count of the same pods."""
    out = {} if amounts is EMPTY else amounts
    for name, amount in delta.items():
        value = out.get(name, 0) + sign * amount
        if value:
            out[name] = value
        else:
            out.pop(name, None)
    return out if out else EMPTY


class _Top:
    """The largest positive value per resource over a changing set of nodes, with how many nodes
    share it. Removing the last node at the top leaves that resource stale until ``refresh``."""

    __slots__ = ("count", "stale", "top")

    def __init__(self) -> None:
        self.top: Resources = {}
        self.count: dict[str, int] = {}
        self.stale: set[str] = set()

    def enter(self, name: str, value: int) -> None:
        if name in self.stale:
            return
        top = self.top.get(name)
        if top is None or value > top:
            self.top[name] = value
            self.count[name] = 1
        elif value == top:
            self.count[name] += 1

    def leave(self, name: str, value: int) -> None:
        if name in self.stale or self.top.get(name) != value:
            return
        left = self.count[name] - 1
        if left:
            self.count[name] = left
        else:
            del self.top[name], self.count[name]
            self.stale.add(name)


_LOOSENED_KEPT = 8192
_MISFITS_KEPT = 4096


class Columns:
    """Every present node's free room per resource as numpy columns, one row per node.

    The filter asks "which nodes have room for this pod" of peers with thousands of nodes: a
    vectorized comparison per requested resource answers it in tens of microseconds, where a
    Python loop over the nodes took milliseconds. Rows are kept in step by the tally (``write``
    after every change); a node that offers none of a resource reads as having none of it free.
    """

    __slots__ = ("by_row", "cols", "hint", "open", "present", "row", "spare")

    def __init__(self) -> None:
        self.hint: NodeCapacity | None = None
        """The open node last found with room: tried first next time (it usually still has some)."""
        self.row: dict[str, int] = {}
        self.by_row: list[NodeCapacity | None] = []
        self.spare: list[int] = []
        self.cols: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = {}
        self.present: np.ndarray[Any, np.dtype[np.bool_]] = np.zeros(64, dtype=bool)
        self.open: np.ndarray[Any, np.dtype[np.bool_]] = np.zeros(64, dtype=bool)

    def _grow(self) -> None:
        size = len(self.present) * 2
        self.present = np.resize(self.present, size)
        self.present[len(self.by_row) :] = False
        self.open = np.resize(self.open, size)
        self.open[len(self.by_row) :] = False
        for name, col in self.cols.items():
            grown = np.zeros(size, dtype=np.int64)
            grown[: len(col)] = col
            self.cols[name] = grown

    def add(self, node: NodeCapacity) -> None:
        if self.spare:
            row = self.spare.pop()
            self.by_row[row] = node
        else:
            row = len(self.by_row)
            if row == len(self.present):
                self._grow()
            self.by_row.append(node)
        self.row[node.name] = row
        self.present[row] = True
        self.open[row] = not node.unschedulable and not node.taints
        self.write(node, node.allocatable)

    def remove(self, node: NodeCapacity) -> None:
        row = self.row.pop(node.name, None)
        if row is None:
            return
        for col in self.cols.values():
            col[row] = 0
        self.present[row] = self.open[row] = False
        self.by_row[row] = None
        self.spare.append(row)

    def write(self, node: NodeCapacity, names: Iterable[str]) -> None:
        row = self.row.get(node.name)
        if row is None:
            return
        alloc, used, held, cols = node.allocatable, node.requested, node.reserved, self.cols
        for name in names:
            total = alloc.get(name)
            col = cols.get(name)
            if col is None:
                if total is None:
                    continue  # no node offers it: no column, and none free anywhere
                col = cols[name] = np.zeros(len(self.present), dtype=np.int64)
            col[row] = (total or 0) - used.get(name, 0) - held.get(name, 0)

    def with_room(self, wanted: Iterable[tuple[str, int]]) -> np.ndarray[Any, np.dtype[np.intp]]:
        """Rows of the present nodes with at least ``wanted`` free of every resource, in row order."""
        count = len(self.by_row)
        mask = self.present[:count].copy()
        for name, amount in wanted:
            col = self.cols.get(name)
            if col is None:
                return np.empty(0, dtype=np.intp)
            mask &= col[:count] >= amount
        return np.flatnonzero(mask)

    def first_open_with_room(self, wanted: Sequence[tuple[str, int]]) -> NodeCapacity | None:
        """An uncordoned, untainted node with room for ``wanted`` (what an unconstrained pod needs):
        the last one found if it still has room, else the first, in one vectorized pass."""
        hint = self.hint
        if hint is not None and self.row.get(hint.name) is not None and self.by_row[self.row[hint.name]] is hint:
            alloc, used, held = hint.allocatable, hint.requested, hint.reserved
            if (
                not hint.unschedulable
                and not hint.taints
                and all(a <= alloc.get(n, 0) - used.get(n, 0) - held.get(n, 0) for n, a in wanted)
            ):
                return hint
        count = len(self.by_row)
        mask = self.open[:count].copy()
        for name, amount in wanted:
            col = self.cols.get(name)
            if col is None:
                return None
            mask &= col[:count] >= amount
        row = int(mask.argmax())
        self.hint = self.by_row[row] if mask[row] else None
        return self.hint

    def first_short(self, wanted: Sequence[tuple[str, int]], rows_open: bool) -> dict[str, int]:
        """Per resource, how many (open, when ``rows_open``) nodes it is the first one short of."""
        count = len(self.by_row)
        left = (self.open if rows_open else self.present)[:count].copy()
        short: dict[str, int] = {}
        for name, amount in wanted:
            col = self.cols.get(name)
            lacking = left.copy() if col is None else left & (col[:count] < amount)
            if (many := int(lacking.sum())) > 0:
                short[name] = many
            left &= ~lacking
        return short


class _Tally:
    """Per-peer aggregates over its present nodes, valid for one generation and node count.

    Also a log of the nodes that may have gained room (a pod or reservation gone, a node added or
    changed), so that "this pod fits no node here", once found by a full scan, is re-checked
    against just the nodes that loosened since, instead of every node again.
    """

    __slots__ = ("advertised", "alloc_sum", "columns", "free_sum", "generation", "label_keys", "labels", "loosened",
                 "loosened_start", "misfits", "node_count", "open", "restricted", "restricted_view", "top")

    def __init__(self, generation: int, node_count: int) -> None:
        self.columns = Columns()
        self.labels: dict[tuple[str, str], int] = {}
        """How many present nodes carry each label (a selector nobody matches is refused at once)."""
        self.label_keys: dict[str, int] = {}
        self.loosened: list[NodeCapacity] = []
        self.loosened_start = 0
        """Position of ``loosened[0]`` in the log since the tally was built."""
        self.misfits: dict[Hashable, tuple[int, str]] = {}
        """Pod shape -> (log position checked up to, why it fits nowhere)."""
        self.generation = generation
        self.node_count = node_count
        self.top = _Top()
        self.open = _Top()
        self.restricted: dict[str, NodeCapacity] = {}
        self.restricted_view: tuple[NodeCapacity, ...] | None = ()
        self.advertised: Resources = {}
        self.free_sum: Resources = {}
        self.alloc_sum: Resources = {}

    def account(self, node: NodeCapacity, names: Iterable[str], sign: int) -> None:
        """Add (sign 1) or take out (sign -1) one node's share for these resources."""
        alloc, used, held, delegated = node.allocatable, node.requested, node.reserved, node.delegated
        schedulable = not node.unschedulable
        is_open = schedulable and not node.taints
        top, open_top = self.top, self.open
        for name in names:
            total = alloc.get(name)
            if total is None:
                continue  # no room where the node offers none: nothing to count
            taken = used.get(name, 0)
            free = total - taken - held.get(name, 0)
            if free > 0:
                if sign > 0:
                    top.enter(name, free)
                    if is_open:
                        open_top.enter(name, free)
                else:
                    top.leave(name, free)
                    if is_open:
                        open_top.leave(name, free)
            if schedulable:
                self.alloc_sum[name] = self.alloc_sum.get(name, 0) + sign * total
                if free > 0:
                    self.free_sum[name] = self.free_sum.get(name, 0) + sign * free
                room = total - taken + delegated.get(name, 0)
                if room > 0:
                    self.advertised[name] = self.advertised.get(name, 0) + sign * room
        if sign > 0:
            self.columns.write(node, names)

    def loosen(self, node: NodeCapacity) -> None:
        if not self.misfits:
            return  # nothing to re-check later
        self.loosened.append(node)
        if len(self.loosened) > _LOOSENED_KEPT:
            drop = _LOOSENED_KEPT // 2
            del self.loosened[:drop]
            self.loosened_start += drop

    def add_node(self, node: NodeCapacity) -> None:
        self.columns.add(node)
        self.account(node, node.allocatable, 1)
        if not node.is_open:
            self.restricted[node.name] = node
            self.restricted_view = None
        self._count_labels(node, 1)
        self.node_count += 1

    def remove_node(self, node: NodeCapacity) -> None:
        self.account(node, node.allocatable, -1)
        self.columns.remove(node)
        if self.restricted.pop(node.name, None) is not None:
            self.restricted_view = None
        self._count_labels(node, -1)
        self.node_count -= 1

    def _count_labels(self, node: NodeCapacity, sign: int) -> None:
        labels, keys = self.labels, self.label_keys
        for label in node.labels.items():
            left = labels.get(label, 0) + sign
            if left:
                labels[label] = left
            else:
                del labels[label]
            left = keys.get(label[0], 0) + sign
            if left:
                keys[label[0]] = left
            else:
                del keys[label[0]]

    def refresh(self) -> None:
        """Recompute the tops left stale by the last node at the top losing room (vectorized)."""
        for top, mask in ((self.top, self.columns.present), (self.open, self.columns.open)):
            for name in top.stale:
                col = self.columns.cols.get(name)
                if col is None:
                    continue
                values = col[: len(self.columns.by_row)][mask[: len(self.columns.by_row)]]
                best = int(values.max()) if values.size else 0
                if best > 0:
                    top.top[name], top.count[name] = best, int((values == best).sum())
            top.stale.clear()


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
    _tally: _Tally | None = field(default=None, init=False, repr=False, compare=False)
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

    def _current(self) -> _Tally | None:
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
            node.requested = _shifted(node.requested, requests, sign)
            if delegate:
                node.delegated = _shifted(node.delegated, requests, sign)

        self._change(node, requests, change, loosens=sign < 0)

    def hold(self, node: NodeCapacity, requests: Mapping[str, int], sign: int) -> None:
        """Reserve (sign 1) or give back (-1) room on ``node`` for a pod being placed there."""

        def change() -> None:
            node.reserved = _shifted(node.reserved, requests, sign)

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

    def _tallied(self) -> _Tally:
        tally = self._current()
        if tally is None:
            tally = _Tally(self.generation, 0)
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
        if len(tally.misfits) >= _MISFITS_KEPT:
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
