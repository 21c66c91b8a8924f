"""Min-cost flow over classes and nodes, in rounds, with a per-node packing check.

Network: source -> class (supply = pending pods) -> node (capacity = pods of that class the node
holds alone, cost = tier + price + fragmentation) -> sink; class -> sink at the unplaced cost so
the problem is always feasible; a workload with a per-peer limit goes through a hub node whose
capacity is what the limit leaves. A flow sees one number per node, so two classes can together
overcommit a node in some resource: ``repair`` trims such nodes (largest pods kept) and the next
round re-plans the rest on what is left. Rounds stop when the flow's answer needed no trimming
(it is then exactly what an unrelaxed solve would accept), nothing more fits, or the deadline.
Arcs are built in bulk from numpy arrays, which is what keeps a 10,000-node round well under
a second.
"""

from __future__ import annotations

import time

import numpy as np
from ortools.graph.python import min_cost_flow

from extender.planner.costs import arc_costs, base_costs, unplaced_cost
from extender.planner.packing import repair
from extender.planner.problem import F64, I64
from extender.planner.work import Work

MAX_ROUNDS = 8
_MANY = 1 << 40


def _trim_limits(work: Work, x: I64) -> bool:
    """Cut ``x`` so no per-peer limit is exceeded across the classes it covers; True if it cut."""
    problem = work.problem
    cut = False
    for i, limit in enumerate(problem.limits):
        nodes = problem.peer_nodes[limit.peer]
        over = int(x[np.ix_(np.asarray(limit.classes, dtype=np.int64), nodes)].sum()) - int(work.limit_left[i])
        for c in limit.classes:
            if over <= 0:
                break
            row = x[c]
            for n in nodes[np.flatnonzero(row[nodes])][::-1]:
                take = min(int(row[n]), over)
                row[n] -= take
                over -= take
                cut = True
                if over <= 0:
                    break
    return cut


def _regret(work: Work) -> F64:
    """[class, peer]: how much dearer the class's next-best allowed peer is than this one."""
    problem = work.problem
    eff = np.where(problem.allowed, problem.eff + problem.tier_rank[None, :] * 1e6, np.inf)
    if eff.shape[1] < 2:
        return np.ones_like(problem.eff)
    two = np.partition(eff, 1, axis=1)[:, :2]
    best, second = two[:, 0:1], two[:, 1:2]
    other = np.where(eff == best, second, best)
    with np.errstate(invalid="ignore"):
        regret: F64 = np.where(np.isfinite(other) & np.isfinite(eff), other - eff, 1e9)
    return regret


def solve_round(work: Work, active: I64) -> I64 | None:
    """One min-cost flow over the active classes; the [class, node] flow, or None if it failed."""
    problem = work.problem
    usable = problem.usable()
    usable[~np.isin(np.arange(problem.n_classes), active)] = False
    # Unclipped first: a node's capacity in the network is what its most compact class could use.
    raw = problem.slots(work.free, np.full(problem.n_classes, _MANY, dtype=np.int64), usable)
    slots = np.minimum(raw, work.left[:, None])
    ci, ni = np.nonzero(slots)
    x = np.zeros_like(work.x)
    if ci.size == 0:
        return x
    caps = slots[ci, ni]
    sliver = problem.sliver(work.free, slots)[ci, ni]
    costs = arc_costs(base_costs(problem), ci, ni, problem.node_peer, sliver)

    n_classes = problem.n_classes
    used_nodes, node_id = np.unique(ni, return_inverse=True)
    first_node = n_classes
    hub_base = first_node + used_nodes.size
    # Hubs: one per (class, peer) that some per-peer limit covers.
    hub_of = np.full((n_classes, len(problem.peers)), -1, dtype=np.int64)
    hub_tails: list[int] = []
    hub_caps: list[int] = []
    for c in active:
        for p in {problem.limits[i].peer for i in work.class_limits[int(c)]}:
            hub_of[c, p] = hub_base + len(hub_tails)
            hub_tails.append(int(c))
            hub_caps.append(work.peer_room(int(c), p))
    sink = hub_base + len(hub_tails)

    tails = ci.copy()
    if hub_tails:
        hub = hub_of[ci, problem.node_peer[ni]]
        tails = np.where(hub >= 0, hub, tails)
    heads = first_node + node_id
    node_caps = raw[:, used_nodes].max(axis=0)

    flow = min_cost_flow.SimpleMinCostFlow()
    # The class->node arcs come first, so their flows are arcs 0..n_arcs-1.
    flow.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    n_arcs = ci.size
    flow.add_arcs_with_capacity_and_unit_cost(
        first_node + np.arange(used_nodes.size),
        np.full(used_nodes.size, sink),
        node_caps,
        np.zeros(used_nodes.size, dtype=np.int64),
    )
    if hub_tails:
        k = len(hub_tails)
        flow.add_arcs_with_capacity_and_unit_cost(
            np.asarray(hub_tails, dtype=np.int64),
            hub_base + np.arange(k),
            np.asarray(hub_caps, dtype=np.int64),
            np.zeros(k, dtype=np.int64),
        )
    supply = work.left[active]
    flow.add_arcs_with_capacity_and_unit_cost(
        active, np.full(active.size, sink), supply, np.full(active.size, unplaced_cost(problem))
    )
    supplies = np.zeros(sink + 1, dtype=np.int64)
    supplies[active] = supply
    supplies[sink] = -int(supply.sum())
    flow.set_nodes_supplies(np.arange(sink + 1), supplies)
    if flow.solve() != flow.OPTIMAL:
        return None
    flows = flow.flows(np.arange(n_arcs))
    hit = flows > 0
    np.add.at(x, (ci[hit], ni[hit]), flows[hit])
    return x


def solve_flow(work: Work, deadline: float) -> bool:
    """Place the non-gang classes; False when the deadline or a solver failure cut it short."""
    problem = work.problem
    gang_classes = [c for members in problem.gangs.values() for c in members]
    candidates = np.setdiff1d(np.arange(problem.n_classes), np.asarray(gang_classes, dtype=np.int64))
    for _ in range(MAX_ROUNDS):
        if time.perf_counter() > deadline:
            return False
        active = candidates[work.left[candidates] > 0]
        if active.size == 0:
            return True
        x = solve_round(work, active)
        if x is None:
            return False
        trimmed = repair(problem, x, work.free, _regret(work)).any()
        trimmed |= _trim_limits(work, x)
        if not x.any():
            return True
        work.commit_matrix(x)
        if not trimmed:
            return True
    return True
