"""CP-SAT: the exact model, for small backlogs and for gangs.

One integer per (class, node) that could hold the class, every resource of every node as a hard
constraint, a one-peer choice per gang, per-peer limits, and the same integer objective as the
flow. It is started from the greedy answer (a hint), so even when the time limit ends the search
early the result is never worse than greedy; if CP-SAT finds nothing in time the caller falls back
to greedy.
"""

from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

from extender.planner.costs import arc_costs, base_costs, unplaced_cost
from extender.planner.gangs import gang_size
from extender.planner.problem import I64
from extender.planner.work import Work

MAX_VARIABLES = 40_000
"""Above this the model is not worth building inside a planning cycle; AUTO picks flow."""


def model_size(work: Work) -> int:
    return int(np.count_nonzero(work.problem.slots(work.free, work.left)))


def solve_cpsat(work: Work, time_limit: float, hint: I64 | None = None, workers: int = 2) -> str:
    """Place every class with pods left; returns "optimal", "feasible" or "none" (nothing committed)."""
    problem = work.problem
    slots = problem.slots(work.free, work.left)
    # Incomplete gangs never spill: drop their variables.
    for members in problem.gangs.values():
        if (
            int(problem.count[members].sum()) < gang_size(work, members)
            or work.left[members].sum() < problem.count[members].sum()
        ):
            slots[members] = 0
    ci, ni = np.nonzero(slots)
    if ci.size == 0:
        return "optimal"
    costs = arc_costs(base_costs(problem), ci, ni, problem.node_peer, problem.sliver(work.free, slots)[ci, ni])
    unplaced = unplaced_cost(problem)

    model = cp_model.CpModel()
    xs = [model.new_int_var(0, int(cap), f"x{c}_{n}") for c, n, cap in zip(ci, ni, slots[ci, ni], strict=True)]
    by_class: dict[int, list[int]] = {}
    by_node: dict[int, list[int]] = {}
    for i, (c, n) in enumerate(zip(ci.tolist(), ni.tolist(), strict=True)):
        by_class.setdefault(c, []).append(i)
        by_node.setdefault(n, []).append(i)
    gang_classes = {c for members in problem.gangs.values() for c in members}
    for c, idx in by_class.items():
        if c not in gang_classes:
            model.add(sum(xs[i] for i in idx) <= int(work.left[c]))
    for n, idx in by_node.items():
        for r in range(len(problem.dims)):
            need = problem.req[ci[idx], r]
            if int((need * slots[ci[idx], n]).sum()) <= work.free[n, r]:
                continue  # cannot bind: even every class at its maximum fits
            model.add(cp_model.LinearExpr.weighted_sum([xs[i] for i in idx], need.tolist()) <= int(work.free[n, r]))
    peer_of = problem.node_peer[ni]
    for members in problem.gangs.values():
        member_idx = [i for c in members for i in by_class.get(c, [])]
        if not member_idx:
            continue
        choices = []
        for p in range(len(problem.peers)):
            if not problem.allowed[members, p].all():
                continue
            chosen = model.new_bool_var(f"gang{members[0]}_{p}")
            choices.append(chosen)
            for c in members:
                on_peer = [xs[i] for i in by_class.get(c, []) if peer_of[i] == p]
                model.add(sum(on_peer) == int(work.left[c]) * chosen)
        model.add(sum(choices) <= 1)
        # Members on peers no choice covers are impossible: pin them to zero.
        for i in member_idx:
            if not problem.allowed[members, peer_of[i]].all():
                model.add(xs[i] == 0)
    for li, limit in enumerate(problem.limits):
        idx = [i for c in limit.classes for i in by_class.get(c, []) if peer_of[i] == limit.peer]
        if idx:
            model.add(sum(xs[i] for i in idx) <= int(work.limit_left[li]))
    # Minimise placements' cost minus the unplaced cost each placement saves.
    model.minimize(cp_model.LinearExpr.weighted_sum(xs, (costs - unplaced).tolist()))
    if hint is not None:
        for i, (c, n) in enumerate(zip(ci.tolist(), ni.tolist(), strict=True)):
            model.add_hint(xs[i], int(hint[c, n]))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(time_limit, 0.01)
    solver.parameters.num_workers = workers
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return "none"
    x = np.zeros_like(work.x)
    values = np.fromiter((solver.value(v) for v in xs), dtype=np.int64, count=len(xs))
    x[ci, ni] = values
    work.commit_matrix(x)
    return "optimal" if status == cp_model.OPTIMAL else "feasible"
