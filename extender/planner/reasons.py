"""Why a pod fits nowhere, in words a user can act on.

Checked from the outside in: no healthy peer, hints or rules that exclude every peer, a spend cap
that pays for no peer with room, no node a selector/affinity/taint admits, a pod bigger than every
admitted node, limits, and finally peers that are simply full, each summarised per peer the way
``find_node`` does ("990 too little cpu").
"""

from __future__ import annotations

import numpy as np

from extender.planner.pricing import money
from extender.planner.problem import I64, Problem
from extender.planner.work import SLACK, Work
from extender.resources import PODS, format_resources


def _count_summary(counts: dict[str, int]) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{n} {reason}" for reason, n in ranked)


def _shortfall(name: str) -> str:
    return "too many pods" if name == PODS else f"too little {name}"


def _over_budget(work: Work, c: int, allowed: I64) -> str | None:
    """Why the pod's namespace cannot pay for it: no allowed peer, or no allowed peer with room
    for it now, is cheap enough for what its spend cap has left (None: the cap is not why)."""
    problem = work.problem
    b = int(problem.class_budget[c])
    if b < 0:
        return None
    left = float(work.budget_left[b])
    usable = problem.usable()[c]
    need = problem.req[c]

    def peers_where(room: I64) -> list[int]:
        return [
            int(p)
            for p in allowed
            if np.any(np.all(room[problem.peer_nodes[p][usable[problem.peer_nodes[p]]]] >= need, axis=1))
        ]

    big_enough = peers_where(problem.alloc)
    roomy = peers_where(work.free)
    for peers, where in ((big_enough, "the cheapest peer it may use"), (roomy, "the cheapest peer with room")):
        if not peers:
            continue
        p = min(peers, key=lambda q: float(problem.cost[c, q]))
        price = float(problem.cost[c, p])
        if price > left + SLACK:
            return (
                f"namespace {problem.budget_names[b]}'s spend cap (spillover.io/max-spend-per-hour) leaves "
                f"{money(max(left, 0.0))}/h for the pods waiting to spill; this pod costs {money(price)}/h on {where}, "
                f"{problem.peers[p].name}"
            )
    return None


def unplaced_reason(work: Work, c: int) -> str:
    problem: Problem = work.problem
    example = problem.classes[c].example
    if not problem.peers:
        if problem.unhealthy:
            return "no healthy peer: " + "; ".join(problem.unhealthy.values())
        return "no peers"
    allowed = np.flatnonzero(problem.allowed[c])
    if allowed.size == 0:
        denied = "; ".join(problem.deny[(c, p)] for p in range(len(problem.peers)))
        unhealthy = "; ".join(problem.unhealthy.values())
        return "no peer allowed: " + denied + (f"; {unhealthy}" if unhealthy else "")
    if (over := _over_budget(work, c, allowed)) is not None:
        return over
    parts = []
    bigger_than_all = True
    for p in allowed:
        peer = problem.peers[p]
        nodes = problem.peer_nodes[p]
        if nodes.size == 0:
            parts.append(f"{peer.name}: no nodes")
            continue
        eligible = problem.eligible[c, nodes]
        counts: dict[str, int] = {}
        for kind, n in zip(*np.unique(problem.node_kind[nodes[~eligible]], return_counts=True), strict=True):
            reason = problem.kind_reason[c].get(int(kind), "not eligible")
            counts[reason] = counts.get(reason, 0) + int(n)
        ok = nodes[eligible]
        if ok.size:
            need = problem.req[c]
            if np.any(np.all(problem.alloc[ok] >= need, axis=1)):
                bigger_than_all = False
            short = work.free[ok] < need
            has_short = short.any(axis=1)
            first = short.argmax(axis=1)[has_short]
            for r, n in zip(*np.unique(first, return_counts=True), strict=True):
                counts[_shortfall(problem.dims[int(r)])] = int(n)
            if (~has_short).any() and work.peer_room(c, int(p)) <= 0:
                counts["per-peer limit reached"] = 1
                parts.append(f"{peer.name}: per-peer limit for workload {example.workload} reached")
                continue
        parts.append(f"{peer.name}: {_count_summary(counts)}")
    requests = format_resources(example.requests)
    if bigger_than_all and any(problem.eligible[c, problem.peer_nodes[p]].any() for p in allowed):
        return f"needs {requests}, more than any admitting node's allocatable: " + "; ".join(parts)
    return f"no node fits {requests}: " + "; ".join(parts)
