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
from extender.planner.cpsat import MAX_VARIABLES, model_size, solve_cpsat
from extender.planner.flow import solve_flow
from extender.planner.gangs import incomplete_reason, place_gangs
from extender.planner.greedy import solve_greedy
from extender.planner.pricing import GPU
from extender.planner.problem import I64, Problem, build
from extender.planner.reasons import unplaced_reason
from extender.planner.types import Advice, Placement, PlanInput, Solver, Unplaced, Utilisation
from extender.planner.work import Work
from extender.resources import CPU, MEMORY

AUTO_CPSAT_PODS = 300
"""AUTO uses CP-SAT up to this many pending pods (and MAX_VARIABLES), min-cost flow beyond."""
_SHOWN = (CPU, MEMORY, GPU)


@dataclass(slots=True)
class PlanResult:
    placements: list[Placement]
    unplaced: list[Unplaced]
    cost_per_hour: float
    solver: str
    """The solver that produced the plan, e.g. ``flow``, ``cpsat`` or ``flow+greedy``."""
    solve_ms: float
    """Wall time to build the problem and solve it (advice not included)."""
    problem: Problem
    assignment: I64
    """[class, node] pods placed, in the problem's indices."""
    status: str = ""
    utilisation: list[Utilisation] = field(default_factory=list)
    advice: list[Advice] = field(default_factory=list)
    advice_ms: float = 0.0

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
            "classes": self.problem.n_classes,
            "utilisation": [{"cluster": u.cluster, "before": u.before, "after": u.after} for u in self.utilisation],
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
    problem: Problem, work: Work, gang_failures: dict[tuple[str, str], str]
) -> tuple[list[Placement], list[Unplaced], float]:
    placements: list[Placement] = []
    unplaced: list[Unplaced] = []
    total = 0.0
    reasons: dict[int, str] = {}
    for gang, members in problem.gangs.items():
        reason = gang_failures.get(gang) or incomplete_reason(work, gang, members)
        for c in members:
            if reason is not None:
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
            if c not in reasons and cls.gang is not None:
                reasons[c] = f"gang {cls.gang[1]}: no single peer has room for all members"
            reason = reasons.get(c) or unplaced_reason(work, c)
            unplaced.extend(Unplaced(name, reason) for name in rest)
    return placements, unplaced, total


def plan(
    plan_input: PlanInput,
    solver: Solver = Solver.AUTO,
    *,
    time_limit: float = 1.0,
    advice: bool = True,
    workers: int = 2,
) -> PlanResult:
    """Place the backlog. ``time_limit`` bounds the solve; past it the rest is placed greedily."""
    started = time.perf_counter()
    problem = build(plan_input)
    work = Work(problem)
    chosen = solver
    if chosen is Solver.AUTO:
        small = int(problem.count.sum()) <= AUTO_CPSAT_PODS and model_size(work) <= MAX_VARIABLES
        chosen = Solver.CPSAT if small else Solver.FLOW
    label, status = chosen.value, ""
    gang_failures: dict[tuple[str, str], str] = {}
    if chosen is Solver.CPSAT:
        start = Work(problem)
        place_gangs(start)
        solve_greedy(start)
        remaining = time_limit - (time.perf_counter() - started)
        status = solve_cpsat(work, remaining, hint=start.x, workers=workers)
        if status == "none":
            work, label = start, "cpsat+greedy"
            status = "no CP-SAT solution within the time limit; greedy answer used"
    else:
        gang_failures = place_gangs(work)
        if chosen is Solver.FLOW:
            finished = solve_flow(work, started + time_limit)
            status = "optimal" if finished else "deadline reached; the rest placed greedily"
        before = int(work.x.sum())
        solve_greedy(work)
        if chosen is Solver.FLOW and int(work.x.sum()) > before:
            label = "flow+greedy"
    solve_ms = (time.perf_counter() - started) * 1000
    placements, unplaced, total = _expand(problem, work, gang_failures)
    result = PlanResult(placements, unplaced, total, label, solve_ms, problem, work.x, status)
    result.utilisation = _utilisation(plan_input, problem, work.x)
    if advice and unplaced:
        advice_started = time.perf_counter()
        result.advice = scale_up_advice(plan_input, problem, work)
        result.advice_ms = (time.perf_counter() - advice_started) * 1000
    return result


def scale_up_advice(plan_input: PlanInput, problem: Problem, work: Work) -> list[Advice]:
    counts = [int(k) for k in work.left]
    # Incomplete gangs wait for members, not for nodes.
    for gang, members in problem.gangs.items():
        if incomplete_reason(work, gang, members) is not None:
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
