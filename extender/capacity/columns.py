"""Every present node's free room per resource as numpy columns: the filter's vectorized scan."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from extender.capacity.node import NodeCapacity


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
