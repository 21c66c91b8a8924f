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

import time
from dataclasses import dataclass

import numpy as np

from extender.planner.lp import LinearProgram, Solution, SparseColumns
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
    duals: F64
    """[group]: what one more pod of the group would cost the LP (its demand row's dual)."""


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
            problem.class_budget[c : c + 1].tobytes(),
        )
        keyed.setdefault(key, []).append(c)
    return list(keyed.values())


def representatives(work: Work, groups: list[list[int]]) -> tuple[I64, I64]:
    """[group]: the first class of each group (what it requests, where it may go), and the pods
    the group has left."""
    rep = np.asarray([g[0] for g in groups], dtype=np.int64)
    left = np.asarray([int(work.left[g].sum()) for g in groups], dtype=np.int64)
    return rep, left


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
    rep, left = representatives(work, groups)
    req = problem.req[rep]
    slots = group_slots(req, work.free, left, problem.usable()[rep])
    cost = placement[rep][:, problem.node_peer]
    model = _NodeLp(problem, work, groups, req, left, slots, cost, weights)
    start = np.zeros_like(slots, dtype=np.bool_)
    for g in range(len(groups)):
        nodes = np.nonzero(slots[g])[0]
        if nodes.size == 0:
            continue
        nodes = nodes[np.argsort(cost[g, nodes], kind="stable")]
        covered = np.cumsum(slots[g, nodes])
        upto = int(np.searchsorted(covered, INITIAL_COVER * left[g])) + 1
        start[g, nodes[:upto]] = True
    model.add(*np.nonzero(start))
    return model.optimise(deadline)


class _NodeLp:
    """The per-node LP, grown column by column.

    Rows: one per group (its pods placed + unplaced = pods left), one per per-peer limit, one per
    capped namespace (the real price of its pods placed at most what its cap has left), and one
    per (node, resource) that can bind, added when the first column on the node arrives.
    Columns: one unplaced slack per group, then (group, node) pod counts up to the node's slots.
    """

    def __init__(
        self,
        problem: Problem,
        work: Work,
        groups: list[list[int]],
        req: I64,
        left: I64,
        slots: I64,
        cost: F64,
        weights: Weights,
    ) -> None:
        self.problem, self.slots, self.cost, self.weights = problem, slots, cost, weights
        self.groups, self.left = groups, left
        self.included = np.zeros_like(slots, dtype=np.bool_)
        n_groups = len(groups)
        # A (node, resource) binds only if every candidate column at its maximum exceeds the room.
        free = np.maximum(work.free, 0)
        self.binds = np.einsum("gn,gr->nr", slots, req) > free
        # Rows in units of the largest request (bytes of memory next to single pods would leave
        # the simplex with coefficients ten orders of magnitude apart).
        scale = np.maximum(req.max(axis=0), 1).astype(np.float64)
        self.req = req / scale
        self.free = free / scale
        self.limits: list[tuple[int, I64]] = []
        limit_rhs = []
        for i, limit in enumerate(problem.limits):
            members = np.asarray([g for g in range(n_groups) if i in work.class_limits[groups[g][0]]], dtype=np.int64)
            if members.size:
                self.limits.append((limit.peer, members))
                limit_rhs.append(max(int(work.limit_left[i]), 0))
        # Spend caps: one row per capped namespace with groups here, at real prices per pod.
        rep = np.asarray([g[0] for g in groups], dtype=np.int64)
        self.budgets: list[tuple[int, I64]] = []
        budget_rhs = []
        for b in range(len(problem.budget_names)):
            members = np.flatnonzero(problem.class_budget[rep] == b)
            if members.size:
                self.budgets.append((b, members))
                budget_rhs.append(max(float(work.budget_left[b]), 0.0))
        self.price: F64 = problem.cost[rep][:, problem.node_peer] if self.budgets else np.zeros((0, 0))
        self.node_row = np.full(self.binds.shape, -1, dtype=np.int64)
        self.col_group: list[int] = []
        self.col_node: list[int] = []
        extra = len(self.limits) + len(self.budgets)
        lower = np.concatenate([left, np.full(extra, -np.inf)]).astype(np.float64)
        upper = np.concatenate([left, limit_rhs, budget_rhs]).astype(np.float64)
        slack = SparseColumns.of(np.ones(n_groups), np.arange(n_groups), np.arange(n_groups), n_groups)
        self.lp = LinearProgram(
            np.full(n_groups, weights.unplaced), slack, lower, upper, np.zeros(n_groups), np.full(n_groups, np.inf)
        )

    def optimise(self, deadline: float) -> Relaxation | None:
        """Solve, adding every column with a negative reduced cost, until none is left (proven)
        or the deadline passes (then the bound is Lagrangian)."""
        tolerance = -_TOLERANCE * max(1.0, self.weights.tier)
        proven = False
        solution = None
        reduced = self.cost
        for _ in range(MAX_ROUNDS):
            solution = self.lp.solve()
            if solution is None:
                return None
            reduced = self.reduced_costs(solution)
            candidates = (self.slots > 0) & ~self.included & (reduced < tolerance)
            if not candidates.any():
                proven = True
                break
            if time.perf_counter() > deadline:
                break
            self.add(*np.nonzero(candidates))
        assert solution is not None
        n_groups = len(self.groups)
        value = solution.x[n_groups:]
        bound = solution.objective
        if not proven:
            # Lagrangian bound: no group can gain more than its pods times its best reduced cost.
            best = np.where(self.slots > 0, reduced, 0.0).min(axis=1)
            bound = solution.objective + float((self.left * np.minimum(best, 0.0)).sum())
        return Relaxation(
            self.groups,
            np.asarray(self.col_group, dtype=np.int64),
            np.asarray(self.col_node, dtype=np.int64),
            value,
            solution.objective,
            bound,
            float(value.sum()),
            proven,
            solution.row_duals[:n_groups].copy(),
        )

    def add(self, gi: I64, ni: I64) -> None:
        if gi.size == 0:
            return
        self.included[gi, ni] = True
        new_rows = np.unique(ni)
        fresh = self.binds[new_rows] & (self.node_row[new_rows] < 0)
        nodes, resources = np.nonzero(fresh)
        if nodes.size:
            self.node_row[new_rows[nodes], resources] = self.lp.rows + np.arange(nodes.size)
            self.lp.add_rows(np.full(nodes.size, -np.inf), self.free[new_rows[nodes], resources])
        k = np.arange(gi.size)
        rows = [gi]
        cols = [k]
        vals = [np.ones(gi.size)]
        for r in range(self.req.shape[1]):
            row = self.node_row[ni, r]
            need = self.req[gi, r]
            pick = (row >= 0) & (need > 0)
            rows.append(row[pick])
            cols.append(k[pick])
            vals.append(need[pick])
        base = len(self.slots)
        for j, (peer, members) in enumerate(self.limits):
            pick = np.isin(gi, members) & (self.problem.node_peer[ni] == peer)
            rows.append(np.full(int(pick.sum()), base + j))
            cols.append(k[pick])
            vals.append(np.ones(int(pick.sum())))
        for j, (_, members) in enumerate(self.budgets):
            pick = np.isin(gi, members)
            rows.append(np.full(int(pick.sum()), base + len(self.limits) + j))
            cols.append(k[pick])
            vals.append(self.price[gi[pick], ni[pick]])
        matrix = SparseColumns.of(np.concatenate(vals), np.concatenate(rows), np.concatenate(cols), gi.size)
        self.lp.add_columns(self.cost[gi, ni], matrix, np.zeros(gi.size), self.slots[gi, ni].astype(np.float64))
        self.col_group.extend(gi.tolist())
        self.col_node.extend(ni.tolist())

    def reduced_costs(self, solution: Solution) -> F64:
        """[group, node]: each column's reduced cost under the solution's duals."""
        duals = solution.row_duals
        n_groups = len(self.slots)
        node_duals = np.where(self.node_row >= 0, duals[np.maximum(self.node_row, 0)], 0.0)
        reduced: F64 = self.cost - duals[:n_groups, None] - self.req @ node_duals.T
        for j, (peer, members) in enumerate(self.limits):
            on_peer = self.problem.node_peer == peer
            reduced[np.ix_(members, np.nonzero(on_peer)[0])] -= duals[n_groups + j]
        for j, (_, members) in enumerate(self.budgets):
            reduced[members] -= duals[n_groups + len(self.limits) + j] * self.price[members]
        return reduced


def round_plan(problem: Problem, work: Work, relaxation: Relaxation) -> int:
    """Commit the LP's answer made integral; returns how many pods it placed.

    Each column is rounded down, then, largest fractional part first, up where the node still has
    room and the group still has pods. Used for what is left after the whole-node rounding
    (``patterns``): a few pods, so the simple rule loses little.
    """
    whole = np.floor(relaxation.value + _TOLERANCE).astype(np.int64)
    placed = 0
    for g, members in enumerate(relaxation.groups):
        mine = np.nonzero((relaxation.group == g) & (whole > 0))[0]
        placed += work.commit_group(members, relaxation.node[mine], whole[mine])
    fraction = relaxation.value - whole
    order = np.argsort(-fraction, kind="stable")
    for i in order[fraction[order] > _TOLERANCE].tolist():
        g, n = int(relaxation.group[i]), int(relaxation.node[i])
        members = relaxation.groups[g]
        if work.left[members].sum() > 0 and np.all(work.free[n] >= problem.req[members[0]]):
            placed += work.commit_group(members, relaxation.node[i : i + 1], _ONE)
    return placed


_ONE = np.ones(1, dtype=np.int64)
