"""Greedy first-fit: each pod in arrival order to the cheapest allowed peer with a node it fits.

This is what per-pod scheduling without a planner does (and the benchmark's baseline); it is also
the fallback whenever a solver misses its deadline, because it always finishes quickly and never
overcommits a node.
"""

from __future__ import annotations

import numpy as np

from extender.planner.problem import I64
from extender.planner.work import Work

_WINDOW = 64


def _first_fit(work: Work, c: int, nodes: I64, start: int) -> int:
    """Index into ``nodes`` of the first node from ``start`` the class fits on, or -1."""
    problem = work.problem
    need = problem.req[c]
    eligible = problem.eligible[c]
    pos = start
    while pos < nodes.size:
        window = nodes[pos : pos + _WINDOW]
        ok = eligible[window] & np.all(work.free[window] >= need, axis=1)
        hit = np.flatnonzero(ok)
        if hit.size:
            return pos + int(hit[0])
        pos += window.size
        # Double the window: a full peer is scanned in a few numpy calls, not many.
        if pos - start > 4 * _WINDOW:
            window = nodes[pos:]
            ok = eligible[window] & np.all(work.free[window] >= need, axis=1)
            hit = np.flatnonzero(ok)
            return pos + int(hit[0]) if hit.size else -1
    return -1


def solve_greedy(work: Work, order: I64 | None = None, *, by_price: bool = True) -> None:
    """Place pods one by one (gang classes are left to the gang stage).

    ``by_price`` False is plain first-fit (peers by tier, then in input order): price-blind, the
    behaviour the planner exists to beat, kept as the benchmark's second baseline.
    """
    problem = work.problem
    if order is None:
        order = problem.arrival
    gang_classes = {c for members in problem.gangs.values() for c in members}
    peer_order: dict[int, list[int]] = {}
    pointer: dict[tuple[int, int], int] = {}
    dead: set[int] = set(gang_classes)
    one = np.ones(1, dtype=np.int64)
    for c in (int(c) for c in order):
        if c in dead or work.left[c] <= 0:
            continue
        peers = peer_order.get(c)
        if peers is None:
            allowed = np.flatnonzero(problem.allowed[c])
            peers = peer_order[c] = sorted(
                (int(p) for p in allowed),
                key=lambda p: (int(problem.tier_rank[p]), float(problem.eff[c, p]) if by_price else 0.0, p),
            )
        for p in peers:
            if work.peer_room(c, p) <= 0:
                continue
            nodes = problem.peer_nodes[p]
            # Free room only shrinks, so nodes before the pointer never fit this class again.
            found = _first_fit(work, c, nodes, pointer.get((c, p), 0))
            if found < 0:
                pointer[(c, p)] = nodes.size
                continue
            pointer[(c, p)] = found
            work.commit(c, nodes[found : found + 1], one)
            break
        else:
            dead.add(c)
