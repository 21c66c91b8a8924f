"""Large-neighbourhood repair: repack a few nodes exactly (CP-SAT), pulling in pods from dearer
places or from the unplaced and pushing out pods that have room elsewhere, and keep the result
only when the rules say it is better.

Rounding leaves slivers: a node with 3 CPUs and no memory free next to one with memory and no
CPU, a hint-limited pod unplaced because pods that could run anywhere took its only peer. Solving
the whole plan exactly is too slow for a planning cycle, but a few dozen nodes at a time is small
enough for CP-SAT to finish in milliseconds. In the neighbourhood every group may pull in pods
from where they cost most now (unplaced first, then the dearest peers), and push pods out to the
cheapest room left outside (as many as that room holds of the group alone); pushed pods are then
placed there for real, and the repacked plan is kept only if it beats the one before.
"""

from __future__ import annotations

import time

import numpy as np
from ortools.sat.python import cp_model

from extender.planner.greedy import solve_greedy
from extender.planner.objective import integer_budgets, integer_costs, integer_prices, score
from extender.planner.problem import I64
from extender.planner.relaxation import group_slots, merge, representatives
from extender.planner.work import Work


def repack(work: Work, nodes: I64, time_limit: float, workers: int = 1, count_only: bool = False) -> Work | None:
    """A better plan than ``work`` that differs only by repacking ``nodes`` (and the pods pulled
    into or pushed out of them), or None."""
    problem = work.problem
    placement, unplaced_cost = integer_costs(problem)
    gang_classes = {c for members in problem.gangs.values() for c in members}
    classes = np.asarray([c for c in range(problem.n_classes) if c not in gang_classes], dtype=np.int64)
    if classes.size == 0 or nodes.size == 0:
        return None
    groups = merge(problem, work, classes, placement.astype(np.float64))
    members_of = [np.asarray(g, dtype=np.int64) for g in groups]
    rep, unplaced = representatives(work, groups)
    req = problem.req[rep]
    n_groups = len(groups)
    inside = np.zeros(problem.n_nodes, dtype=np.bool_)
    inside[nodes] = True
    outside_nodes = np.nonzero(~inside)[0]
    held = np.stack([work.x[m][:, nodes].sum(axis=0) for m in members_of])  # [group, node of S]
    room: I64 = (work.free[nodes] + held.T @ req).astype(np.int64)
    total_in = held.sum(axis=1)
    outside = np.stack([work.x[m][:, outside_nodes].sum(axis=0) for m in members_of])
    usable = problem.usable()[rep]
    # Room outside for pushed pods: how many of each group it holds alone, and the cheapest place.
    out_slots = group_slots(req, work.free[outside_nodes], total_in, usable[:, outside_nodes])
    out_cost = np.where(out_slots > 0, placement[rep][:, problem.node_peer[outside_nodes]], np.iinfo(np.int64).max)
    push_cap = np.minimum(out_slots.sum(axis=1), total_in)
    push_cost = out_cost.min(axis=1) if outside_nodes.size else np.zeros(n_groups, dtype=np.int64)

    slots = group_slots(req, room, total_in + unplaced + outside.sum(axis=1), usable[:, nodes])
    gi, si = np.nonzero(slots)
    if gi.size == 0:
        return None
    model = cp_model.CpModel()
    xs = [model.new_int_var(0, int(cap), "") for cap in slots[gi, si].tolist()]
    variables: list[cp_model.IntVar] = list(xs)
    terms = placement[rep[gi], problem.node_peer[nodes[si]]].tolist()
    by_group: dict[int, list[int]] = {}
    by_node: dict[int, list[int]] = {}
    for i, (g, s) in enumerate(zip(gi.tolist(), si.tolist(), strict=True)):
        by_group.setdefault(g, []).append(i)
        by_node.setdefault(s, []).append(i)
    for s, idx in by_node.items():
        for r in range(req.shape[1]):
            need = req[gi[idx], r]
            if int((need * slots[gi[idx], s]).sum()) > room[s, r]:
                model.add(cp_model.LinearExpr.weighted_sum([xs[i] for i in idx], need.tolist()) <= int(room[s, r]))
    pulls: list[tuple[int, int, cp_model.IntVar]] = []  # (group, peer or -1 for unplaced, count)
    pushes: dict[int, cp_model.IntVar] = {}
    for g in range(n_groups):
        idx = by_group.get(g, [])
        if not idx and not total_in[g]:
            continue
        levels: list[tuple[int, int, int]] = []  # (cost, count, peer)
        if unplaced[g]:
            levels.append((unplaced_cost, int(unplaced[g]), -1))
        per_peer = np.bincount(problem.node_peer[outside_nodes], weights=outside[g], minlength=len(problem.peers))
        levels += [(int(placement[rep[g], p]), int(per_peer[p]), p) for p in np.nonzero(per_peer)[0].tolist()]
        pulled = []
        for cost, count, peer in levels:
            y = model.new_int_var(0, count, "")
            pulls.append((g, peer, y))
            pulled.append(y)
            variables.append(y)
            terms.append(-cost)
        pushed = model.new_int_var(0, int(push_cap[g]), "")
        pushes[g] = pushed
        variables.append(pushed)
        terms.append(int(push_cost[g]) if push_cap[g] else 0)
        model.add(sum(xs[i] for i in idx) == int(total_in[g]) + sum(pulled) - pushed)
    for li, limit in enumerate(problem.limits):
        covered = [g for g in range(n_groups) if li in work.class_limits[groups[g][0]]]
        on = [xs[i] for g in covered for i in by_group.get(g, []) if problem.node_peer[nodes[si[i]]] == limit.peer]
        if on:
            held_on = int(
                sum(
                    int(held[g, s])
                    for g in covered
                    for s in range(nodes.size)
                    if problem.node_peer[nodes[s]] == limit.peer
                )
            )
            model.add(sum(on) <= held_on + max(int(work.limit_left[li]), 0))
    # Spend caps: what the neighbourhood's pods of a namespace cost, less what pulled pods cost
    # where they were, stays within its cap's headroom plus what its pods here cost now.
    prices = integer_prices(problem)
    for b, cap in enumerate(integer_budgets(work.budget_left)):
        covered = [g for g in range(n_groups) if int(problem.class_budget[rep[g]]) == b]
        if not covered:
            continue
        spend = [xs[i] for g in covered for i in by_group.get(g, [])]
        terms_b = [int(prices[rep[g], problem.node_peer[nodes[si[i]]]]) for g in covered for i in by_group.get(g, [])]
        for g, peer, y in pulls:
            if peer >= 0 and g in covered:
                spend.append(y)
                terms_b.append(-int(prices[rep[g], peer]))
        now = int((held[covered] * prices[rep[covered]][:, problem.node_peer[nodes]]).sum())
        if spend:
            model.add(cp_model.LinearExpr.weighted_sum(spend, terms_b) <= cap + now)
    if count_only:
        # Only how many pods get placed: a far smaller objective that CP-SAT settles fast.
        unplaced_pulls = {id(y) for g, peer, y in pulls if peer < 0}
        terms = [-1 if id(v) in unplaced_pulls else 0 for v in variables]
    model.minimize(cp_model.LinearExpr.weighted_sum(variables, terms))
    for i, (g, s) in enumerate(zip(gi.tolist(), si.tolist(), strict=True)):
        model.add_hint(xs[i], int(held[g, s]))
    before = (
        0
        if count_only
        else sum(int(held[g, s]) * int(c) for g, s, c in zip(gi.tolist(), si.tolist(), terms[: len(xs)], strict=True))
    )
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(time_limit, 0.005)
    solver.parameters.num_workers = workers
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE) or round(solver.objective_value) >= before:
        return None
    out = work.copy()
    # Take the neighbourhood's pods out, and the pulled ones from their places outside.
    for m in members_of:
        for c in m.tolist():
            row = out.x[c, nodes]
            hit = np.nonzero(row)[0]
            if hit.size:
                out.commit(c, nodes[hit], -row[hit])
    for g, peer, y in pulls:
        k = int(solver.value(y))
        if k <= 0 or peer < 0:
            continue
        for c in members_of[g].tolist():
            on_peer = outside_nodes[(problem.node_peer[outside_nodes] == peer) & (out.x[c, outside_nodes] > 0)]
            for n in on_peer.tolist():
                take = min(k, int(out.x[c, n]))
                out.commit(c, np.asarray([n]), np.asarray([-take]))
                k -= take
                if k == 0:
                    break
            if k == 0:
                break
    values = np.fromiter((solver.value(v) for v in xs), dtype=np.int64, count=len(xs))
    for g in range(n_groups):
        mine = (gi == g) & (values > 0)
        if mine.any():
            out.commit_group(groups[g], nodes[si[mine]], values[mine])
    # Pushed pods (and any the pulls left over) go to the cheapest room outside.
    if any(solver.value(v) for v in pushes.values()):
        blocked = out.free[nodes].copy()
        out.free[nodes] = -1  # the neighbourhood is full as repacked
        solve_greedy(out, np.repeat(classes, out.left[classes]))
        out.free[nodes] = blocked
    if np.any(out.budget_left < -1e-6 * max(int(problem.count.sum()), 1)):
        return None  # pushed pods placed beyond a cap (cannot happen: greedy checks caps) are no gain
    return out if score(problem, out.x) < score(problem, work.x) else None


NEIGHBOURHOOD = 16
"""Nodes repacked at once: CP-SAT settles a count-only repack of this many in tens of ms."""
STEP_SECONDS = 0.1


def place_more(work: Work, deadline: float, workers: int = 1) -> Work:
    """Repack neighbourhoods of the nodes that pods still unplaced could use, pulling them in,
    until none gains or the deadline passes. Returns the best plan found (``work`` if none)."""
    problem = work.problem
    usable = problem.usable()
    gang_classes = {c for members in problem.gangs.values() for c in members}
    alloc = np.maximum(problem.alloc, 1)
    # Nodes whose whole allocatable could hold a pod of the class: where room can be made.
    could = problem.slots(problem.alloc, np.ones(problem.n_classes, dtype=np.int64)) > 0
    stuck: set[int] = set()
    rng = np.random.default_rng(0)
    while time.perf_counter() < deadline:
        wanted = [
            c
            for c in np.nonzero(work.left > 0)[0].tolist()
            if c not in gang_classes and c not in stuck and could[c].any()
        ]
        if not wanted:
            break
        c = max(wanted, key=lambda k: int(work.left[k]))
        candidates = np.nonzero(could[c] & usable[c])[0]
        share = (np.maximum(work.free[candidates], 0) / alloc[candidates]).sum(axis=1)
        size = min(NEIGHBOURHOOD, candidates.size)
        roomy = candidates[np.argsort(-share, kind="stable")[: size // 2]]
        others = np.setdiff1d(candidates, roomy)
        picked = rng.choice(others, size=min(size - roomy.size, others.size), replace=False)
        nodes = np.concatenate([roomy, picked])
        step = min(STEP_SECONDS, deadline - time.perf_counter())
        better = repack(work, nodes, step, workers, count_only=True) if step > 0 else None
        if better is None:
            stuck.add(c)
            continue
        work = better
        stuck.clear()
    return work
