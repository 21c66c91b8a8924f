"""Greedy first-fit: each pod in arrival order to the cheapest allowed peer with a node it fits
(and, for a namespace with a spend cap, a price its cap still pays for).

This is what per-pod scheduling without a planner does (and the benchmark's baseline); it is also
the safety net every other solver is compared with, and the last pass that places whatever the
LP rounds left, so it runs on every solve: the per-pod loop works on plain Python lists (a numpy
call per pod costs more than the test it does) and commits the whole assignment once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import ge

import numpy as np

from extender.planner.problem import I64, Bool, Problem
from extender.planner.work import SLACK, Work

_SCAN = 8
"""Nodes tested in Python past a (class, peer) pointer before numpy scans the rest..."""
_WINDOW = 128
"""...in windows growing fourfold: a full peer is skipped in a few calls, a near hit costs one."""


def solve_greedy(work: Work, order: I64 | None = None) -> None:
    """Place pods one by one, in ``order`` (class index per pod; default arrival order).

    Gang classes are left to the gang stage. Free room only shrinks, so for each (class, peer)
    the nodes before the last node the class fitted on never fit it again: a pointer skips them.
    """
    problem = work.problem
    if order is None:
        order = problem.arrival
    if order.size == 0 or problem.n_nodes == 0:
        return
    gang_classes = {c for members in problem.gangs.values() for c in members}
    usable = problem.usable()
    free_np = work.free.copy()
    width = free_np.shape[1]
    free = free_np.ravel().tolist()  # flat, node-major: ints only, which the GC does not track
    req = problem.req.tolist()
    dims = range(len(problem.dims))
    left = work.left.tolist()
    limit_left = work.limit_left.tolist()
    limit_peer = [limit.peer for limit in problem.limits]
    budget_of = problem.class_budget.tolist()
    budget_left = work.budget_left.tolist()
    price = problem.cost.tolist()
    # Per class, its peers in order; a lane whose nodes are exhausted or whose limit is used up
    # never opens again and is dropped.
    lanes: dict[int, list[_Lane]] = {}
    placed_c: list[int] = []
    placed_n: list[int] = []
    for c in order.tolist():
        if left[c] <= 0:
            continue
        mine = lanes.get(c)
        if mine is None:
            mine = lanes[c] = [] if c in gang_classes else _lanes(problem, usable, c)
        need = req[c]
        limits = work.class_limits[c]
        while mine:
            lane = mine[0]
            p = lane.peer
            if limits and any(limit_peer[i] == p and limit_left[i] <= 0 for i in limits):
                mine.pop(0)
                continue
            b = budget_of[c]
            if b >= 0 and price[c][p] > budget_left[b] + SLACK:
                mine.pop(0)  # what a cap has left only shrinks: this peer stays too dear for the class
                continue
            found = _first_fit(free, width, free_np, need, lane)
            if found >= len(lane.nodes):
                mine.pop(0)
                continue
            lane.pointer = found
            n = lane.nodes[found]
            base = n * width
            for r in dims:
                free[base + r] -= need[r]
            free_np[n] = free[base : base + width]
            left[c] -= 1
            if b >= 0:
                budget_left[b] -= price[c][p]
            for i in limits:
                if limit_peer[i] == p:
                    limit_left[i] -= 1
            placed_c.append(c)
            placed_n.append(n)
            break
    if placed_c:
        x = np.zeros_like(work.x)
        np.add.at(x, (np.asarray(placed_c), np.asarray(placed_n)), 1)
        work.commit_matrix(x)


@dataclass(slots=True)
class _Lane:
    """One peer a class may use: its usable nodes, and how far first fit has moved through them."""

    peer: int
    nodes: list[int]
    array: I64
    pointer: int = 0


def _lanes(problem: Problem, usable: Bool, c: int) -> list[_Lane]:
    """The peers class ``c`` may use, lowest tier and price first, each with its usable nodes."""
    allowed = np.flatnonzero(problem.allowed[c])
    peers = sorted((int(p) for p in allowed), key=lambda p: (int(problem.tier_rank[p]), float(problem.eff[c, p]), p))
    out = []
    for p in peers:
        nodes = problem.peer_nodes[p]
        nodes = nodes[usable[c, nodes]]
        if nodes.size:
            out.append(_Lane(p, nodes.tolist(), nodes))
    return out


def _first_fit(free: list[int], width: int, free_np: I64, need: list[int], lane: _Lane) -> int:
    """Position in the lane's nodes of the first from its pointer with room for ``need`` (its
    length: none)."""
    listed, array = lane.nodes, lane.array
    end = min(lane.pointer + _SCAN, len(listed))
    for pos in range(lane.pointer, end):
        base = listed[pos] * width
        if all(map(ge, free[base : base + width], need)):
            return pos
    wanted = np.asarray(need, dtype=np.int64)
    window = _WINDOW
    while end < len(listed):
        stop = min(end + window, len(listed))
        hit = np.flatnonzero((free_np[array[end:stop]] >= wanted).all(axis=1))
        if hit.size:
            return end + int(hit[0])
        end, window = stop, window * 4
    return len(listed)
