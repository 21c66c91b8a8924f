"""Whole-node fills ("patterns") chosen by an LP over node types: the rounding that keeps pairs.

The per-node LP (``relaxation``) says how many pods of each group go on each node, fractionally;
rounding each count alone loses what only a combination fits (3 CPU-heavy and 3 memory-heavy pods
fill a node that 4 of either strand) and scatters scraps of room over many nodes. Here the
unknowns are whole fills instead: for every node type (nodes with the same peer, kind and free
room are interchangeable) a few integer patterns that fit it, and a master LP choosing how many
nodes of each type take each pattern. A basic solution of that LP has at most as many fractional
choices as it has group and limit rows, and a short dive (fix what is whole, then the largest
fraction, solve again warm) makes those whole too, so rounding loses a few pods, not a fraction
of every node. Patterns come from the per-node LP's answer and from a knapsack on every type
priced by the duals (column generation, a few rounds within the deadline). Pods no pattern takes
may overflow, at the cheapest price they have there, to the nodes the LP left unused: the next LP
round places them for real.

The node types are built in ``pattern_setting``, the candidate patterns in ``pattern_candidates``
and the master LP in ``pattern_master``; here: the pricing rounds, the dive and the commit.
"""

from __future__ import annotations

import time

import numpy as np

from extender.planner.lp import Solution
from extender.planner.objective import Weights
from extender.planner.pattern_candidates import generate
from extender.planner.pattern_master import PatternMaster
from extender.planner.pattern_setting import TOLERANCE, PatternSetting, pattern_setting
from extender.planner.problem import F64, I64, Problem
from extender.planner.relaxation import Relaxation
from extender.planner.work import SLACK, Work

ROUNDS = 2
"""Solves of the master LP while pricing new patterns (the second rarely gains much more)."""
DIVES = 40
"""Fixes of the dive; what is still fractional after them is left to the LP rounds."""
TRIES = 2
"""Fractional choices tried per fix before the dive stops."""


def improve(problem: Problem, work: Work, relaxation: Relaxation, weights: Weights, deadline: float) -> int:
    """Commit a whole-node rounding of ``relaxation``; returns pods placed."""
    whole = np.rint(relaxation.value)
    if np.all(np.abs(relaxation.value - whole) <= TOLERANCE):
        # Already whole (a backlog much smaller than the room often is): nothing to round.
        placed = 0
        for g, members in enumerate(relaxation.groups):
            mine = np.nonzero((relaxation.group == g) & (whole > 0))[0]
            placed += work.commit_group(members, relaxation.node[mine], whole[mine].astype(np.int64))
        return placed
    setting = pattern_setting(problem, work, relaxation, weights)
    if setting is None:
        return 0
    dense = np.zeros((len(relaxation.groups), problem.n_nodes))
    np.add.at(dense, (relaxation.group, relaxation.node), relaxation.value)
    average = _average(setting, dense)
    floor = np.minimum(np.floor(average + TOLERANCE).astype(np.int64), setting.cap)
    value = np.where(setting.cap > 0, relaxation.duals[None, :] - setting.cost, -1.0)
    master = PatternMaster.start(setting, work, weights.unplaced)
    master.add(generate(setting, value, (floor, average - floor)))
    solution = master.lp.solve()
    for _ in range(ROUNDS - 1):
        if solution is None or time.perf_counter() > deadline:
            break
        value, mu = master.values(solution)
        fresh = generate(setting, value)
        gain = (fresh * np.maximum(value, 0)[:, None, :]).sum(axis=2) + mu[:, None]
        fresh[gain <= TOLERANCE * max(1.0, weights.tier)] = 0
        if master.add(fresh) == 0:
            break
        solution = master.lp.solve()
    if solution is None:
        return 0
    return _commit(problem, work, setting, _dive(master, work, solution, deadline))


def _average(setting: PatternSetting, dense: F64) -> F64:
    """[type, group]: the LP's pods per node of each type."""
    per_type = np.zeros((setting.count.size, dense.shape[0]))
    np.add.at(per_type, setting.type_of, dense[:, setting.nodes].T)
    out: F64 = per_type / setting.count[:, None]
    return out


def _dive(master: PatternMaster, work: Work, solution: Solution, deadline: float) -> list[tuple[int, I64]]:
    """Whole patterns for nodes, as (type, pattern): fix every whole choice, then the largest
    fractional one, and solve again (warm) on what is left, until nothing is fractional. A
    pattern taken when its group has fewer pods left, or its limit less headroom, is cut to fit."""
    setting = master.setting
    n_types, n_groups = setting.cap.shape
    nodes_left = setting.count.copy()
    demand = setting.left.copy()
    limit_left = np.maximum(work.limit_left.copy(), 0)
    budget_left = np.maximum(work.budget_left.copy(), 0.0)
    chosen: list[tuple[int, I64]] = []
    weights = master.weights(solution)
    peers = setting.peer

    def take(col: int, times: int) -> None:
        t = master.type_of[col]
        for _ in range(min(times, int(nodes_left[t]))):
            pattern = np.minimum(master.patterns[col], np.maximum(demand, 0))
            for i, members in enumerate(setting.limit_groups):
                if members.size == 0 or setting.limit_peer[i] != peers[t]:
                    continue
                over = int(pattern[members].sum()) - int(limit_left[i])
                for g in members.tolist():
                    cut = min(max(over, 0), int(pattern[g]))
                    pattern[g] -= cut
                    over -= cut
                limit_left[i] -= int(pattern[members].sum())
            for b, members in enumerate(setting.budget_groups):
                if members.size == 0:
                    continue
                price = setting.price[t]
                # Dearest pods out first, until the namespace's cap pays for the rest.
                for g in members[np.argsort(-price[members], kind="stable")].tolist():
                    over = float((pattern[members] * price[members]).sum()) - budget_left[b]
                    if over <= SLACK or price[g] <= 0:
                        break
                    pattern[g] -= min(int(pattern[g]), int(np.ceil((over - SLACK) / price[g])))
                budget_left[b] -= float((pattern[members] * price[members]).sum())
            nodes_left[t] -= 1
            demand[:] -= pattern
            if pattern.any():
                chosen.append((t, pattern))

    extra = len(setting.limit_groups) + len(setting.budget_groups)
    rows = np.arange(n_types + n_groups + extra)
    unplaced = float(solution.x[:n_groups].sum())

    def resolve() -> Solution | None:
        upper = np.concatenate([nodes_left, np.maximum(demand, 0), limit_left, np.maximum(budget_left, 0.0)])
        lower = np.concatenate([np.full(n_types, -np.inf), np.maximum(demand, 0), np.full(extra, -np.inf)])
        master.lp.set_row_bounds(rows, lower, upper)
        return master.lp.solve()

    for _ in range(DIVES):
        whole = np.floor(weights + TOLERANCE).astype(np.int64)
        for col in np.nonzero(whole)[0].tolist():
            take(col, int(whole[col]))
        fraction = weights - whole
        if fraction.max(initial=0.0) <= TOLERANCE or not nodes_left.any() or time.perf_counter() > deadline:
            break
        # The largest fraction first; a fix after which the LP can no longer place every pod it
        # could is undone and the next one tried. None left: stop, the LP rounds place the rest.
        for col in np.argsort(-fraction, kind="stable")[:TRIES].tolist():
            if fraction[col] <= TOLERANCE:
                break
            saved = (nodes_left.copy(), demand.copy(), limit_left.copy(), budget_left.copy(), len(chosen))
            take(col, 1)
            again = resolve()
            if again is not None and float(again.x[:n_groups].sum()) <= unplaced + 0.5:
                weights = master.weights(again)
                break
            nodes_left[:], demand[:], limit_left[:], budget_left[:] = saved[0], saved[1], saved[2], saved[3]
            del chosen[saved[4] :]
        else:
            return chosen
    return chosen


def _commit(problem: Problem, work: Work, setting: PatternSetting, chosen: list[tuple[int, I64]]) -> int:
    """The chosen patterns onto real nodes of their types; returns pods placed."""
    spare: dict[int, list[int]] = {}
    for t, n in zip(setting.type_of.tolist(), setting.nodes.tolist(), strict=True):
        spare.setdefault(t, []).append(n)
    x = np.zeros((len(setting.groups), problem.n_nodes), dtype=np.int64)
    for t, pattern in chosen:
        x[:, spare[t].pop()] += pattern
    placed = 0
    for g, members in enumerate(setting.groups):
        nodes = np.nonzero(x[g])[0]
        placed += work.commit_group(members, nodes, x[g, nodes])
    return placed
