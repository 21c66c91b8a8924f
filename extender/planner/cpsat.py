"""CP-SAT: the exact model over pod counts per (group, node), with gangs, limits and spend caps.

Interchangeable classes are merged into groups first (``relaxation.merge``), which is the
symmetry that matters: 48 classes of 6 pod shapes become 6 integers per node instead of 48.
Every resource of every node is a constraint, a gang chooses one peer for all its members, each
capped namespace's pods cost at most what its cap has left (one linear constraint each), and
the objective is ``objective.integer_costs`` (pods, then tiers, then price, exactly). The search
starts from the best plan found so far (a hint), and the result is used only when it is better
under the rules, so a time-out never makes a plan worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from extender.planner.gangs import blocked, candidate_peers
from extender.planner.objective import PRICE_SCALE, integer_budgets, integer_costs, integer_prices
from extender.planner.problem import I64
from extender.planner.relaxation import group_slots, merge, representatives
from extender.planner.work import Work

MAX_VARIABLES = 40_000
"""Above this the model is not worth building inside a planning cycle."""


@dataclass(slots=True)
class CpResult:
    status: str
    """"optimal", "feasible" or "none" (nothing committed)."""
    bound: float
    """CP-SAT's best bound on the objective, in ``objective.weights`` units (scale 1)."""


def model_size(work: Work) -> int:
    """(group, node) integers the model would have."""
    problem = work.problem
    placement, _ = integer_costs(problem)
    classes = np.nonzero(work.left > 0)[0]
    groups = merge(problem, work, classes, placement.astype(np.float64)) if classes.size else []
    rep, left = representatives(work, groups)
    return int(np.count_nonzero(group_slots(problem.req[rep], work.free, left, problem.usable()[rep])))


def solve_cpsat(
    work: Work, time_limit: float, hint: I64 | None = None, workers: int = 2, floor: float | None = None
) -> CpResult:
    """Place every class with pods left in ``work``; commits the answer unless it finds none.

    ``floor`` is a proven lower bound on the objective (the LP's): given to CP-SAT, it stops as
    soon as it reaches it instead of searching for a proof it already has.
    """
    problem = work.problem
    placement, unplaced = integer_costs(problem)
    gang_classes = {c for members in problem.gangs.values() for c in members}
    free_classes = np.asarray([c for c in range(problem.n_classes) if c not in gang_classes], dtype=np.int64)
    free_classes = free_classes[work.left[free_classes] > 0]
    groups = merge(problem, work, free_classes, placement.astype(np.float64)) if free_classes.size else []
    gangs = [(gang, members) for gang, members in problem.gangs.items() if blocked(work, gang, members) is None]
    groups += [[c] for _, members in gangs for c in members if work.left[c] > 0]
    if not groups:
        return CpResult("optimal", 0.0)
    rep, left = representatives(work, groups)
    slots = group_slots(problem.req[rep], work.free, left, problem.usable()[rep])
    gi, ni = np.nonzero(slots)
    peer_of = problem.node_peer[ni]

    model = cp_model.CpModel()
    xs = [model.new_int_var(0, int(cap), "") for cap in slots[gi, ni].tolist()]
    by_group: dict[int, list[int]] = {}
    by_node: dict[int, list[int]] = {}
    for i, (g, n) in enumerate(zip(gi.tolist(), ni.tolist(), strict=True)):
        by_group.setdefault(g, []).append(i)
        by_node.setdefault(n, []).append(i)
    unplaced_vars = []
    for g in range(len(groups)):
        idx = by_group.get(g, [])
        u = model.new_int_var(0, int(left[g]), "")
        unplaced_vars.append(u)
        model.add(sum(xs[i] for i in idx) + u == int(left[g]))
    req = problem.req[rep]
    for n, idx in by_node.items():
        for r in range(len(problem.dims)):
            need = req[gi[idx], r]
            if int((need * slots[gi[idx], n]).sum()) <= work.free[n, r]:
                continue  # cannot bind: even every group at its maximum fits
            model.add(cp_model.LinearExpr.weighted_sum([xs[i] for i in idx], need.tolist()) <= int(work.free[n, r]))
    group_of = {members[0]: g for g, members in enumerate(groups) if len(members) == 1}
    for gang, members in gangs:
        gs = [group_of[c] for c in members if c in group_of]
        if not gs:
            continue
        choices = []
        allowed = set(candidate_peers(problem, gang, members))
        for p in range(len(problem.peers)):
            if p not in allowed:  # not every member's, or not the peer its members run on
                for g in gs:
                    for i in by_group.get(g, []):
                        if peer_of[i] == p:
                            model.add(xs[i] == 0)
                continue
            chosen = model.new_bool_var("")
            choices.append(chosen)
            for g in gs:
                on_peer = [xs[i] for i in by_group.get(g, []) if peer_of[i] == p]
                model.add(sum(on_peer) == int(left[g]) * chosen)
        model.add(sum(choices) <= 1)
    for li, limit in enumerate(problem.limits):
        covered = {g for g, members in enumerate(groups) if members[0] in limit.classes}
        idx = [i for g in covered for i in by_group.get(g, []) if peer_of[i] == limit.peer]
        if idx:
            model.add(sum(xs[i] for i in idx) <= int(work.limit_left[li]))
    prices = integer_prices(problem)
    budget_of = problem.class_budget[rep[gi]]
    for b, cap in enumerate(integer_budgets(work.budget_left)):
        mine = np.flatnonzero(budget_of == b)
        if mine.size:
            terms = prices[rep[gi[mine]], peer_of[mine]].tolist()
            model.add(cp_model.LinearExpr.weighted_sum([xs[i] for i in mine.tolist()], terms) <= cap)
    costs = placement[rep[gi], peer_of]
    objective = cp_model.LinearExpr.weighted_sum(xs, costs.tolist()) + cp_model.LinearExpr.weighted_sum(
        unplaced_vars, [unplaced] * len(unplaced_vars)
    )
    if floor is not None:
        # Integer prices are rounded: leave one unit per pod of slack under the LP's bound.
        model.add(objective >= math.floor(floor * PRICE_SCALE) - int(left.sum()))
    model.minimize(objective)
    if hint is not None:
        for i, (g, n) in enumerate(zip(gi.tolist(), ni.tolist(), strict=True)):
            model.add_hint(xs[i], int(hint[groups[g], n].sum()))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(time_limit, 0.01)
    solver.parameters.num_workers = workers
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return CpResult("none", float("-inf"))
    values = np.fromiter((solver.value(v) for v in xs), dtype=np.int64, count=len(xs))
    x = np.zeros_like(work.x)
    for g, members in enumerate(groups):
        mine = (gi == g) & (values > 0)
        nodes = np.repeat(ni[mine], values[mine])
        owners = np.repeat(np.asarray(members, dtype=np.int64), work.left[members])[: nodes.size]
        np.add.at(x, (owners, nodes), 1)
    work.commit_matrix(x)
    bound = solver.best_objective_bound / PRICE_SCALE
    return CpResult("optimal" if status == cp_model.OPTIMAL else "feasible", bound)
