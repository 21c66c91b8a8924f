"""Which solvers run, in what order, and which answer wins.

Every solver path ends the same way: candidates are compared by the rules themselves
(``objective.score``: pods, then tiers, then price) and the best is kept, so no solver, even one
cut short by its deadline, returns less than the greedy answer it was compared with.

- ``lp``: gangs first (whole, on the cheapest peer that packs them), then the LP relaxation over
  pod groups x nodes (``relaxation``), made whole a node at a time by the master LP over node
  fills (``patterns``), two more LP rounds on what that left, and a greedy pass over the last
  pods, the most restricted classes first. The LP's optimum is a proven bound: when the plan
  reaches it (no gang in play), it is optimal and says so.
- ``cpsat``: the exact model (``cpsat``), started from the best plan so far.
- ``auto``: ``lp``; then, when the bound says more pods could be placed, neighbourhoods repacked
  exactly to pull them in (``repack``, for up to ``AUTO_REPAIR_SECONDS``); then CP-SAT when the
  model is small enough to be worth it.
- ``greedy``: per pod in arrival order, cheapest peer with a node it fits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from extender.planner.cpsat import MAX_VARIABLES, model_size, solve_cpsat
from extender.planner.gangs import blocked, place_gangs
from extender.planner.greedy import solve_greedy
from extender.planner.objective import Score, Weights, score, weights
from extender.planner.patterns import improve
from extender.planner.problem import I64, Problem
from extender.planner.relaxation import relax, round_plan
from extender.planner.repack import place_more
from extender.planner.types import Solver
from extender.planner.work import Work

LP_ROUNDS = 3
AUTO_POLISH_VARIABLES = 1_000
"""AUTO runs CP-SAT after the LP only on models up to this many (group, node) integers: a 2,000-pod
backlog on 400 nodes (about 1,800) would spend more than its 300 ms budget there, for a plan the
LP already has within 1 % of the best bound (measured by the bench)."""
AUTO_POLISH_SECONDS = 1.0
"""...and for at most this long (it stops sooner when it reaches the LP's bound): a tight packing
(CPU-heavy with memory-heavy pods) takes CP-SAT a few hundred ms to pair up."""
AUTO_POLISH_GAP = 0.005
"""...and only when the plan may be more than this far (tiers and price) from the bound."""
AUTO_REPAIR_SECONDS = 0.25
"""...and before that, when the LP's bound allows more pods than the plan places, repacks pulling
them in for at most this long (each repack of 16 nodes takes CP-SAT tens of ms)."""
_RELATIVE = 1e-9


@dataclass(slots=True)
class Outcome:
    work: Work
    label: str
    score: Score
    status: str = "feasible"
    bound: float | None = None
    """Lower bound on the objective (``objective.weights`` units) of any plan, when known."""


def objective_value(problem: Problem, w: Weights, x: I64) -> float:
    per_peer = np.zeros((problem.n_classes, len(problem.peers)), dtype=np.int64)
    np.add.at(per_peer.T, problem.node_peer, x.T)
    unplaced = int(problem.count.sum() - per_peer.sum())
    return float((per_peer * w.placement(problem)).sum()) + unplaced * w.unplaced


def _scarcity_order(problem: Problem, work: Work) -> I64:
    """Pods left, one entry per pod, the classes with the fewest usable nodes first."""
    classes = np.nonzero(work.left > 0)[0]
    if classes.size == 0 or problem.n_nodes == 0:
        return classes
    room = problem.slots(work.free, work.left)[classes].sum(axis=1)
    size = (problem.req[classes] / np.maximum(problem.alloc.max(axis=0), 1)).max(axis=1)
    ordered = classes[np.lexsort((-size, room - work.left[classes]))]
    order: I64 = np.repeat(ordered, work.left[ordered])
    return order


def _greedy(problem: Problem) -> Work:
    work = Work(problem)
    place_gangs(work)
    solve_greedy(work)
    return work


def _lp(problem: Problem, w: Weights, deadline: float) -> tuple[Work, float | None]:
    """The LP path; also returns the LP bound when it bounds the whole problem."""
    work = Work(problem)
    place_gangs(work)
    gang_classes = [c for members in problem.gangs.values() for c in members]
    free = np.setdiff1d(np.arange(problem.n_classes), np.asarray(gang_classes, dtype=np.int64))
    bound = None
    for round_ in range(LP_ROUNDS):
        relaxation = relax(problem, work, free, w, deadline)
        if relaxation is None:
            if round_ == 0:
                bound = 0.0 if not work.x.any() else None
            break
        before = int(work.left.sum())
        if round_ == 0:
            bound = relaxation.bound
            improve(problem, work, relaxation, w, deadline)
        else:
            round_plan(problem, work, relaxation)
        if int(work.left.sum()) == before or time.perf_counter() > deadline:
            break
    solve_greedy(work, _scarcity_order(problem, work))
    # The LP saw only what the gang stage left: it bounds the whole only when no gang could spill.
    if any(blocked(work, gang, members) is None for gang, members in problem.gangs.items()):
        bound = None
    return work, bound


def search(problem: Problem, solver: Solver, started: float, time_limit: float, workers: int) -> Outcome:
    deadline = started + time_limit
    w = weights(problem)
    greedy = _greedy(problem)
    best = Outcome(greedy, "greedy", score(problem, greedy.x))
    if solver is Solver.GREEDY:
        return best
    lp_work, bound = _lp(problem, w, deadline)
    lp = Outcome(lp_work, "lp", score(problem, lp_work.x), bound=bound)
    if lp.score <= best.score:
        best = lp
    best.bound = bound
    if _reaches(problem, w, best, bound):
        best.status = "optimal"
        return best
    if solver is Solver.AUTO and bound is not None and best.score.unplaced > _unplaced_floor(w, bound):
        repaired = place_more(best.work, min(deadline, time.perf_counter() + AUTO_REPAIR_SECONDS), workers=1)
        if (repaired_score := score(problem, repaired.x)) < best.score:
            best = Outcome(repaired, f"{best.label}+repack", repaired_score, bound=bound)
            if _reaches(problem, w, best, bound):
                best.status = "optimal"
                return best
    remaining = deadline - time.perf_counter()
    polish = solver is Solver.CPSAT or (
        solver is Solver.AUTO
        and remaining > 0.05
        and _worth_polishing(problem, w, best, bound)
        and model_size(Work(problem)) <= AUTO_POLISH_VARIABLES
    )
    if not polish or (solver is Solver.CPSAT and model_size(Work(problem)) > MAX_VARIABLES):
        return best
    limit = remaining if solver is Solver.CPSAT else min(remaining, AUTO_POLISH_SECONDS)
    exact = Work(problem)
    result = solve_cpsat(exact, limit, hint=best.work.x, workers=workers, floor=bound)
    if result.status == "none":
        return best
    cp_bound = max(result.bound, bound) if bound is not None else result.bound
    candidate = Outcome(exact, f"{best.label}+cpsat", score(problem, exact.x), bound=cp_bound)
    if candidate.score < best.score:
        best = candidate
    best.bound = cp_bound
    if (result.status == "optimal" and best.score <= candidate.score) or _reaches(problem, w, best, cp_bound):
        best.status = "optimal"
    return best


def _worth_polishing(problem: Problem, w: Weights, outcome: Outcome, bound: float | None) -> bool:
    """Whether the bound leaves room for a gain worth a CP-SAT run: a pod more, or more than
    ``AUTO_POLISH_GAP`` of the tiers and price."""
    if bound is None or outcome.score.unplaced > _unplaced_floor(w, bound):
        return True
    rest = objective_value(problem, w, outcome.work.x) - outcome.score.unplaced * w.unplaced
    return rest > 0 and (rest - (bound - outcome.score.unplaced * w.unplaced)) / rest > AUTO_POLISH_GAP


def _unplaced_floor(w: Weights, bound: float) -> int:
    """Pods the bound says every plan leaves unplaced."""
    return int(np.floor(bound / w.unplaced + 1e-9))


def _reaches(problem: Problem, w: Weights, outcome: Outcome, bound: float | None) -> bool:
    if bound is None:
        return False
    value = objective_value(problem, w, outcome.work.x)
    return value <= bound + _RELATIVE * max(abs(bound), 1.0) + 1e-6
