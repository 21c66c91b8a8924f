"""The planner's entry point: build the problem, run a solver (with the greedy safety net), and
report placements, reasons, cost, utilisation and scale-up advice.

Pure and synchronous: the server calls it from a background loop (in a thread), never from a
scheduler verb, so a slow solve delays the next plan, not a pod.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from extender.capacity.model import PeerState
from extender.planner.advice import advise_cluster
from extender.planner.classes import ClassKey
from extender.planner.gangs import blocked, why_not_placed
from extender.planner.objective import weights
from extender.planner.pricing import GPU
from extender.planner.problem import I64, Problem, build
from extender.planner.reasons import unplaced_reason
from extender.planner.search import Outcome, objective_value, search
from extender.planner.types import Advice, Placement, PlanInput, Solver, Unplaced, Utilisation
from extender.planner.work import SLACK, Work
from extender.resources import CPU, MEMORY

_SHOWN = (CPU, MEMORY, GPU)


@dataclass(slots=True)
class PlanResult:
    placements: list[Placement]
    unplaced: list[Unplaced]
    cost_per_hour: float
    solver: str
    """The solver whose answer won: ``lp``, ``greedy``, or ``lp+cpsat`` (CP-SAT from the LP's)."""
    solve_ms: float
    """Wall time to build the problem and solve it (advice not included)."""
    problem: Problem
    assignment: I64
    """[class, node] pods placed, in the problem's indices."""
    status: str = ""
    """``optimal`` only when proven (the plan reaches a bound); otherwise ``feasible``."""
    gap_pods: int | None = None
    """How many more pods the best known bound allows (None: no bound known)."""
    gap: float | None = None
    """Relative gap of tiers and price to that bound, when the pod count reaches it."""
    utilisation: list[Utilisation] = field(default_factory=list)
    advice: list[Advice] = field(default_factory=list)
    advice_ms: float = 0.0
    gang_reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    """(namespace, gang) -> why its pending members were not placed (what filter tells them)."""
    budgets: list[dict[str, Any]] = field(default_factory=list)
    """Per capped namespace: what its cap left for the backlog and what the plan spends of it."""

    def quotas(self) -> dict[ClassKey, dict[str, int]]:
        """Class -> pods planned per peer: the plan the scheduler verbs consume."""
        problem = self.problem
        per_peer = np.zeros((problem.n_classes, len(problem.peers)), dtype=np.int64)
        np.add.at(per_peer.T, problem.node_peer, self.assignment.T)
        out: dict[ClassKey, dict[str, int]] = {}
        for c, cls in enumerate(problem.classes):
            row = {problem.peers[p].name: int(per_peer[c, p]) for p in np.flatnonzero(per_peer[c])}
            out[cls.key] = row
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "placements": [{"pod": p.pod, "cluster": p.cluster, "node": p.node} for p in self.placements],
            "unplaced": [{"pod": u.pod, "reason": u.reason} for u in self.unplaced],
            "cost_per_hour": round(self.cost_per_hour, 6),
            "solver": self.solver,
            "solve_ms": round(self.solve_ms, 3),
            "status": self.status,
            "gap_pods": self.gap_pods,
            "gap": None if self.gap is None else round(self.gap, 6),
            "classes": self.problem.n_classes,
            "utilisation": [{"cluster": u.cluster, "before": u.before, "after": u.after} for u in self.utilisation],
            "budgets": self.budgets,
            "advice": [
                {
                    "cluster": a.cluster,
                    "shape": a.shape,
                    "nodes": a.nodes,
                    "pods": a.pods,
                    "cost_per_hour": round(a.cost_per_hour, 6),
                }
                for a in self.advice
            ],
        }


def _utilisation(plan_input: PlanInput, problem: Problem, x: I64) -> list[Utilisation]:
    placed: dict[str, dict[str, int]] = {}
    per_node = x.T @ problem.req
    for p, peer in enumerate(problem.peers):
        nodes = problem.peer_nodes[p]
        total = per_node[nodes].sum(axis=0) if nodes.size else np.zeros(len(problem.dims), dtype=np.int64)
        placed[peer.name] = {name: int(total[r]) for r, name in enumerate(problem.dims)}
    clusters: list[PeerState] = ([plan_input.home] if plan_input.home else []) + list(plan_input.peers)
    out = []
    for cluster in clusters:
        row = Utilisation(cluster.name)
        extra = placed.get(cluster.name, {})
        for name in _SHOWN:
            alloc = used = 0
            for node in cluster.nodes.values():
                if node.schedulable:
                    alloc += node.allocatable.get(name, 0)
                    used += node.requested.get(name, 0) + node.reserved.get(name, 0)
            if alloc:
                row.before[name] = round(used / alloc, 4)
                row.after[name] = round((used + extra.get(name, 0)) / alloc, 4)
        out.append(row)
    return out


def _expand(
    problem: Problem, work: Work
) -> tuple[list[Placement], list[Unplaced], float, dict[tuple[str, str], str]]:
    placements: list[Placement] = []
    unplaced: list[Unplaced] = []
    total = 0.0
    reasons: dict[int, str] = {}
    gang_reasons: dict[tuple[str, str], str] = {}
    for gang, members in problem.gangs.items():
        if work.left[members].sum() == 0:
            continue
        reason = gang_reasons[gang] = blocked(work, gang, members) or why_not_placed(work, gang, members)
        for c in members:
            reasons[c] = reason
    for c, cls in enumerate(problem.classes):
        row = work.x[c]
        names = iter(cls.members)
        for n in np.flatnonzero(row):
            p = int(problem.node_peer[n])
            peer, node = problem.peers[p].name, problem.node_names[n]
            price = float(problem.cost[c, p])
            for _ in range(int(row[n])):
                placements.append(Placement(next(names), peer, node, price))
            total += price * int(row[n])
        rest = list(names)
        if rest:
            reason = reasons.get(c) or unplaced_reason(work, c)
            unplaced.extend(Unplaced(name, reason) for name in rest)
    return placements, unplaced, total, gang_reasons


def _gap(problem: Problem, outcome: Outcome) -> tuple[int | None, float | None]:
    """Pods the best bound says might still be placed, and the relative price-and-tier gap."""
    if outcome.bound is None:
        return None, None
    w = weights(problem)
    value = objective_value(problem, w, outcome.work.x)
    unplaced = int(outcome.work.left.sum())
    bound_unplaced = max(0, min(unplaced, int(np.floor(outcome.bound / w.unplaced + 1e-9))))
    rest = value - unplaced * w.unplaced
    bound_rest = outcome.bound - bound_unplaced * w.unplaced
    gap = 0.0 if rest <= 0 else max(0.0, (rest - bound_rest) / rest) if bound_unplaced == unplaced else None
    return unplaced - bound_unplaced, gap


def plan(
    plan_input: PlanInput,
    solver: Solver = Solver.AUTO,
    *,
    time_limit: float = 1.0,
    advice: bool = True,
    workers: int = 2,
) -> PlanResult:
    """Place the backlog. ``time_limit`` bounds the solve (build included); the best plan found by
    then is returned, never one worse than greedy."""
    started = time.perf_counter()
    problem = build(plan_input)
    outcome = search(problem, solver, started, time_limit, workers)
    work = outcome.work
    solve_ms = (time.perf_counter() - started) * 1000
    placements, unplaced, total, gang_reasons = _expand(problem, work)
    result = PlanResult(placements, unplaced, total, outcome.label, solve_ms, problem, work.x, outcome.status)
    result.gang_reasons = gang_reasons
    spent = problem.spend(work.x)
    result.budgets = [
        {
            "namespace": name,
            "left_per_hour": round(float(problem.budget[b]), 6),
            "planned_per_hour": round(float(spent[b]), 6),
        }
        for b, name in enumerate(problem.budget_names)
    ]
    result.gap_pods, result.gap = _gap(problem, outcome)
    result.utilisation = _utilisation(plan_input, problem, work.x)
    if advice and unplaced:
        advice_started = time.perf_counter()
        result.advice = scale_up_advice(plan_input, problem, work)
        result.advice_ms = (time.perf_counter() - advice_started) * 1000
    return result


def scale_up_advice(plan_input: PlanInput, problem: Problem, work: Work) -> list[Advice]:
    counts = [int(k) for k in work.left]
    # Pods a spend cap keeps home wait for money, not nodes: advise only for what it still pays.
    for c in np.flatnonzero(problem.class_budget >= 0).tolist():
        allowed = np.flatnonzero(problem.allowed[c])
        cheapest = float(problem.cost[c, allowed].min()) if allowed.size else 0.0
        if cheapest > 0:
            counts[c] = min(counts[c], int((work.budget_left[problem.class_budget[c]] + SLACK) // cheapest))
    # Gangs that may not spill wait for members or a fix, not for nodes.
    for gang, members in problem.gangs.items():
        if blocked(work, gang, members) is not None:
            for c in members:
                counts[c] = 0
    rows: list[Advice] = []
    seen: set[Hashable] = set()
    if plan_input.home is not None:
        rows.extend(advise_cluster(plan_input.home, problem.classes, counts, home=True))
        seen.add(plan_input.home.name)
    for peer in plan_input.peers:
        if peer.name not in seen:
            rows.extend(advise_cluster(peer, problem.classes, counts, home=False))
    return rows
