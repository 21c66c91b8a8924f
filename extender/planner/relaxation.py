"""The LP relaxation over pod groups x nodes, solved by column generation, and its rounding.

Every resource of every node is a constraint (the multi-resource packing a one-number-per-node
flow cannot see), the objective is ``objective.weights`` (pods first, then tiers, then price),
and the answer is both a near-integral placement and a proven bound on what any plan can do.

Two reductions keep it small. Classes that differ only in what the LP does not look at (their
workload with no per-peer limit on it, their pod names) are merged into one group: a 48-class
backlog of 6 pod shapes is 6 groups. And columns are generated: each group starts with the
cheapest nodes that could hold it twice over; a node-column is added only when its reduced cost
under the current duals is negative, so the LP over 10,000 nodes mostly sees the few hundred that
matter, and stops with the same optimum the full LP has (or, at the deadline, with a Lagrangian
bound on it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from extender.planner.objective import Weights
from extender.planner.problem import F64, I64, Bool, Problem
from extender.planner.work import Work

INITIAL_COVER = 2.0
"""Start each group with the cheapest nodes that hold this many times its pods."""
MAX_ROUNDS = 30
_TOLERANCE = 1e-7
_MANY = 1 << 40


@dataclass(slots=True)
class Relaxation:
    groups: list[list[int]]
    """Class indices merged into each group (members share requests, nodes, prices, limits)."""
    group: I64
    node: I64
    value: F64
    """The LP's columns (group, node) and their fractional pod counts."""
    objective: float
    """The LP optimum (or, if ``proven`` is False, the restricted LP's value)."""
    bound: float
    """A lower bound on the objective of any integral placement of these groups."""
    placed: float
    proven: bool
    """Column generation finished: ``bound`` is the full LP's optimum."""


def merge(problem: Problem, work: Work, classes: I64, cost: F64) -> list[list[int]]:
    """Groups of interchangeable classes, in order of their first class."""
    usable = problem.usable()
    keyed: dict[tuple[bytes, ...], list[int]] = {}
    for c in classes.tolist():
        key = (
            problem.req[c].tobytes(),
            np.packbits(usable[c]).tobytes(),
            cost[c].tobytes(),
            np.asarray(work.class_limits[c], dtype=np.int64).tobytes(),
        )
        keyed.setdefault(key, []).append(c)
    return list(keyed.values())


def group_slots(req: I64, free: I64, cap: I64, usable: Bool) -> I64:
    """[group, node]: pods of the group each node holds alone, at most ``cap`` [group]."""
    out = np.full((req.shape[0], free.shape[0]), _MANY, dtype=np.int64)
    room = np.maximum(free, 0)
    for r in range(req.shape[1]):
        rows = np.nonzero(req[:, r] > 0)[0]
        if rows.size:
            out[rows] = np.minimum(out[rows], room[None, :, r] // req[rows, r, None])
    out = np.minimum(out, cap[:, None])
    out[~usable] = 0
    return out


def relax(problem: Problem, work: Work, classes: I64, weights: Weights, deadline: float) -> Relaxation | None:
    """Solve the LP for ``classes`` on what ``work`` leaves; None if there is nothing to place."""
    placement = weights.placement(problem)
    classes = classes[work.left[classes] > 0]
    if classes.size == 0:
        return None
    groups = merge(problem, work, classes, placement)
    rep = np.asarray([g[0] for g in groups], dtype=np.int64)
    left = np.asarray([int(work.left[g].sum()) for g in groups], dtype=np.int64)
    req = problem.req[rep]
    slots = group_slots(req, work.free, left, problem.usable()[rep])
    cost = placement[rep][:, problem.node_peer]
    n_groups, n_nodes = slots.shape
    group_limits = [work.class_limits[g[0]] for g in groups]

    included = np.zeros_like(slots, dtype=np.bool_)
    for g in range(n_groups):
        nodes = np.nonzero(slots[g])[0]
        if nodes.size == 0:
            continue
        nodes = nodes[np.argsort(cost[g, nodes], kind="stable")]
        covered = np.cumsum(slots[g, nodes])
        upto = int(np.searchsorted(covered, INITIAL_COVER * left[g])) + 1
        included[g, nodes[:upto]] = True

    proven = False
    res = None
    for _ in range(MAX_ROUNDS):
        gi, ni = np.nonzero(included)
        res, rows = _solve(problem, work, req, left, slots, cost, gi, ni, group_limits, weights.unplaced)
        if res is None:
            return None
        duals_node = np.zeros((n_nodes, req.shape[1]))
        node_rows, r_rows, limit_rows = rows
        ineq = res.ineqlin.marginals if node_rows.size + len(limit_rows) else np.zeros(0)
        duals_node[node_rows, r_rows] = ineq[: node_rows.size]
        reduced = cost - res.eqlin.marginals[:, None] - req @ duals_node.T
        for k, (i, peer) in enumerate(limit_rows):
            on_peer = problem.node_peer == peer
            for g in range(n_groups):
                if i in group_limits[g]:
                    reduced[g, on_peer] -= ineq[node_rows.size + k]
        candidates = (slots > 0) & ~included & (reduced < -_TOLERANCE * max(1.0, weights.tier))
        if not candidates.any():
            proven = True
            break
        if time.perf_counter() > deadline:
            break
        included |= candidates
    assert res is not None
    gi, ni = np.nonzero(included)
    value = np.asarray(res.x[: gi.size])
    objective = float(res.fun)
    bound = objective
    if not proven:
        # Lagrangian bound: no group can gain more than its pods times its best reduced cost.
        best = np.where(slots > 0, reduced, 0.0).min(axis=1)
        bound = objective + float((left * np.minimum(best, 0.0)).sum())
    return Relaxation(groups, gi, ni, value, objective, bound, float(value.sum()), proven)


def _solve(
    problem: Problem,
    work: Work,
    req: I64,
    left: I64,
    slots: I64,
    cost: F64,
    gi: I64,
    ni: I64,
    group_limits: list[list[int]],
    unplaced: float,
) -> tuple[Any, tuple[I64, I64, list[tuple[int, int]]]]:
    n_groups = left.size
    n_vars = gi.size
    # Columns x (gi, ni), then one unplaced slack per group.
    objective = np.concatenate([cost[gi, ni], np.full(n_groups, unplaced)])
    eq = coo_matrix(
        (np.ones(n_vars + n_groups), (np.concatenate([gi, np.arange(n_groups)]), np.arange(n_vars + n_groups))),
        shape=(n_groups, n_vars + n_groups),
    ).tocsr()
    rows_i: list[I64] = []
    cols_i: list[I64] = []
    vals: list[F64] = []
    rhs: list[F64] = []
    node_rows: list[I64] = []
    r_rows: list[I64] = []
    count = 0
    upper = slots[gi, ni]
    for r in range(req.shape[1]):
        need = req[gi, r]
        load = np.bincount(ni, weights=need * upper, minlength=slots.shape[1])
        binding = load > np.maximum(work.free[:, r], 0)
        if not binding.any():
            continue
        row_of = np.full(slots.shape[1], -1, dtype=np.int64)
        bound_nodes = np.nonzero(binding)[0]
        row_of[bound_nodes] = count + np.arange(bound_nodes.size)
        pick = binding[ni] & (need > 0)
        rows_i.append(row_of[ni[pick]])
        cols_i.append(np.nonzero(pick)[0])
        vals.append(need[pick].astype(np.float64))
        rhs.append(np.maximum(work.free[bound_nodes, r], 0).astype(np.float64))
        node_rows.append(bound_nodes)
        r_rows.append(np.full(bound_nodes.size, r, dtype=np.int64))
        count += bound_nodes.size
    limit_rows: list[tuple[int, int]] = []
    for i, limit in enumerate(problem.limits):
        members = [g for g in range(n_groups) if i in group_limits[g]]
        if not members:
            continue
        pick = np.isin(gi, members) & (problem.node_peer[ni] == limit.peer)
        rows_i.append(np.full(int(pick.sum()), count, dtype=np.int64))
        cols_i.append(np.nonzero(pick)[0])
        vals.append(np.ones(int(pick.sum())))
        rhs.append(np.asarray([max(int(work.limit_left[i]), 0)], dtype=np.float64))
        limit_rows.append((i, limit.peer))
        count += 1
    bounds = np.zeros((n_vars + n_groups, 2))
    bounds[:n_vars, 1] = upper
    bounds[n_vars:, 1] = np.inf
    a_ub = b_ub = None
    if count:
        a_ub = coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows_i), np.concatenate(cols_i))), shape=(count, n_vars + n_groups)
        ).tocsr()
        b_ub = np.concatenate(rhs)
    res = linprog(
        objective, A_ub=a_ub, b_ub=b_ub, A_eq=eq, b_eq=left.astype(np.float64), bounds=bounds, method="highs-ds"
    )
    if res.status != 0:
        return None, (np.zeros(0, np.int64), np.zeros(0, np.int64), [])
    empty = np.zeros(0, dtype=np.int64)
    return res, (
        np.concatenate(node_rows) if node_rows else empty,
        np.concatenate(r_rows) if r_rows else empty,
        limit_rows,
    )


def round_plan(problem: Problem, work: Work, relaxation: Relaxation) -> int:
    """Commit the LP's answer made integral; returns how many pods it placed.

    Each column is rounded down, then, largest fractional part first, up where the node still has
    room and the group still has pods: a node the LP filled with 3.4 CPU-heavy and 2.7
    memory-heavy pods usually holds 3 and 3, which rounding down alone would give away.
    """
    whole = np.floor(relaxation.value + _TOLERANCE).astype(np.int64)
    placed = _commit(problem, work, relaxation, relaxation.group, relaxation.node, whole)
    fraction = relaxation.value - whole
    order = np.argsort(-fraction, kind="stable")
    order = order[fraction[order] > _TOLERANCE]
    for i in order.tolist():
        g, n = int(relaxation.group[i]), int(relaxation.node[i])
        members = relaxation.groups[g]
        need = problem.req[members[0]]
        if work.left[members].sum() > 0 and np.all(work.free[n] >= need):
            placed += _commit(problem, work, relaxation, relaxation.group[i : i + 1], relaxation.node[i : i + 1], _ONE)
    return placed


_ONE = np.ones(1, dtype=np.int64)


def _commit(problem: Problem, work: Work, relaxation: Relaxation, group: I64, node: I64, count: I64) -> int:
    """Commit ``count`` pods of each ``group`` on each ``node``, spread over the group's classes."""
    placed = 0
    x = np.zeros_like(work.x)
    for g, members in enumerate(relaxation.groups):
        mine = (group == g) & (count > 0)
        if not mine.any():
            continue
        nodes = np.repeat(node[mine], count[mine])
        owners = np.repeat(np.asarray(members, dtype=np.int64), work.left[members])[: nodes.size]
        np.add.at(x, (owners, nodes[: owners.size]), 1)
        placed += int(owners.size)
    work.commit_matrix(x)
    return placed


def unplaced_bound(relaxation: Relaxation, pods: int) -> int:
    """At least this many of ``pods`` stay unplaced in any integral plan."""
    return max(0, math.ceil(pods - relaxation.placed - 1e-6))
