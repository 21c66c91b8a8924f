"""Per-node packing: the check that turns a class-level answer into one no node is overcommitted by.

The flow network sees one number per node (pods of a class it could hold alone), so two classes
routed to the same node can together exceed it in some resource. ``repair`` keeps, on each such
node, the largest pods that still fit and hands the rest back for another round; ``violations``
is the independent audit used by the tests and the benchmark.
"""

from __future__ import annotations

import numpy as np

from extender.planner.problem import F64, I64, Problem


def used_by(problem: Problem, x: I64) -> I64:
    """[node, resource]: what the assignment ``x`` [class, node] requests on each node."""
    used: I64 = x.T @ problem.req
    return used


def repair(problem: Problem, x: I64, free: I64, regret: F64 | None = None) -> I64:
    """Trim ``x`` in place so it fits ``free`` on every node; returns the trimmed-off counts.

    On an overfull node the pods kept first are those that lose most by going elsewhere per unit
    of the node they use (``regret`` [class, peer]); without regrets, the largest (small pods
    find another home more easily).
    """
    rejected = np.zeros_like(x)
    over = np.nonzero(np.any(used_by(problem, x) > free, axis=1))[0]
    for n in over:
        column = x[:, n]
        present = np.nonzero(column)[0]
        alloc = np.maximum(problem.alloc[n], 1)
        share = (problem.req[present] / alloc).max(axis=1)
        key = share if regret is None else regret[present, problem.node_peer[n]] / np.maximum(share, 1e-9)
        room = free[n].copy()
        for c in present[np.argsort(-key, kind="stable")]:
            need = problem.req[c]
            positive = need > 0
            fit = int(np.min(np.maximum(room[positive], 0) // need[positive])) if positive.any() else int(column[c])
            keep = min(int(column[c]), fit)
            rejected[c, n] = column[c] - keep
            column[c] = keep
            room -= need * keep
    return rejected


def fill(problem: Problem, c: int, k: int, nodes: I64, free: I64) -> tuple[I64, I64]:
    """First-fit up to ``k`` pods of class ``c`` over ``nodes`` in order (``free`` is not changed).

    Returns the nodes used and how many pods each took.
    """
    need = problem.req[c]
    positive = np.nonzero(need > 0)[0]
    room = np.maximum(free[np.ix_(nodes, positive)], 0) // need[positive]
    cap = room.min(axis=1) if positive.size else np.full(nodes.size, k, dtype=np.int64)
    cap[~problem.eligible[c, nodes]] = 0
    cumulative = np.cumsum(cap)
    take = np.minimum(cap, np.maximum(k - (cumulative - cap), 0))
    hit = np.nonzero(take)[0]
    return nodes[hit], take[hit]


def violations(problem: Problem, x: I64) -> list[str]:
    """Every way ``x`` breaks the rules: overcommitted nodes (any resource), ineligible nodes,
    disallowed peers, more pods than pending, split or partial gangs, exceeded limits and spend caps."""
    out: list[str] = []
    if np.any(x < 0):
        out.append("negative assignment")
    used = used_by(problem, x)
    for n in np.nonzero(np.any(used > problem.free, axis=1))[0]:
        for r, name in enumerate(problem.dims):
            if used[n, r] > problem.free[n, r]:
                out.append(
                    f"node {problem.node_names[n]} overcommitted in {name}: {used[n, r]} > free {problem.free[n, r]}"
                )
    bad = (x > 0) & ~problem.usable()
    for c, n in zip(*np.nonzero(bad), strict=True):
        out.append(f"class {c} placed on ineligible or disallowed node {problem.node_names[n]}")
    placed = x.sum(axis=1)
    for c in np.nonzero(placed > problem.count)[0]:
        out.append(f"class {c}: {placed[c]} placed, only {problem.count[c]} pending")
    per_peer = np.zeros((problem.n_classes, len(problem.peers)), dtype=np.int64)
    np.add.at(per_peer.T, problem.node_peer, x.T)
    for gang, members in problem.gangs.items():
        total = int(problem.count[members].sum())
        got = per_peer[members].sum(axis=0)
        scheduled = problem.input.scheduled.get(gang)
        running = scheduled.count if scheduled is not None else 0
        declared = {h for c in members if (h := problem.classes[c].example.hints.gang_size) is not None}
        size = max(declared) if declared else total + running
        spilled = int(got.sum())
        if spilled not in (0, total) or np.count_nonzero(got) > 1 or (spilled and total + running < size):
            out.append(f"gang {gang[0]}/{gang[1]} split or partial: {got.tolist()} of {total} (size {size})")
        if spilled and len(declared) > 1:
            out.append(f"gang {gang[0]}/{gang[1]} spilled although its members disagree on its size")
        if spilled and scheduled is not None and scheduled.peer is not None:
            peer = problem.peers[int(np.argmax(got))].name
            if peer != scheduled.peer:
                out.append(f"gang {gang[0]}/{gang[1]} sent to {peer}, its members run on {scheduled.peer}")
    for limit in problem.limits:
        on_peer = int(per_peer[limit.classes, limit.peer].sum())
        if on_peer > limit.cap:
            out.append(f"limit of {limit.cap} for {limit.workload} on {problem.peers[limit.peer].name}: {on_peer}")
    slack = 1e-6 * max(int(x.sum()), 1)  # CP-SAT's prices are rounded to millionths
    for b, spent in enumerate(problem.spend(x).tolist()):
        if spent > problem.budget[b] + slack:
            cap = float(problem.budget[b])
            out.append(f"namespace {problem.budget_names[b]} spends {spent:.6f}/h, over its cap's {cap:.6f}")
    return out
