"""Per-peer aggregates kept change by change, so the scheduling path reads a peer without a walk.

What the filter asks of a peer as a whole (the most free on one node, per resource; the free and
advertised totals; how many nodes carry a label; which pod shapes fitted nowhere) would otherwise
be a walk over thousands of nodes per call. ``PeerState`` feeds every change through ``Tally``
(one node's share out before, back in after), which keeps these figures exact.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from extender.capacity.columns import Columns
from extender.capacity.node import NodeCapacity
from extender.resources import Resources


class Top:
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


LOOSENED_KEPT = 8192
"""Loosened nodes logged before the older half is dropped (misfits older than that are re-scanned)."""
MISFITS_KEPT = 4096
"""Pod shapes remembered as fitting nowhere before starting over."""


class Tally:
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
        self.top = Top()
        self.open = Top()
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
        if len(self.loosened) > LOOSENED_KEPT:
            drop = LOOSENED_KEPT // 2
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
