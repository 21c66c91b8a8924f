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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csc_matrix

from extender.planner.lp import LinearProgram, Solution
from extender.planner.objective import Weights
from extender.planner.problem import F64, I64, Problem
from extender.planner.relaxation import Relaxation, group_slots, representatives
from extender.planner.work import SLACK, Work

TOP = 3
"""Groups per type whose pairs are enumerated: the most valuable there (a node of them)..."""
TOP_EACH = 2
"""...and the most valuable per pod."""
STEPS = 16
"""At most this many counts of the first group of a pair are tried (evenly spaced, ends included)."""
ROUNDS = 2
"""Solves of the master LP while pricing new patterns (the second rarely gains much more)."""
ROUND_UP = 2
"""Fractional counts per type whose every rounding (up or down) is a starting pattern."""
DIVES = 40
"""Fixes of the dive; what is still fractional after them is left to the LP rounds."""
TRIES = 2
"""Fractional choices tried per fix before the dive stops."""
_TOLERANCE = 1e-7
_EPSILON = 1e-6
_MANY = np.iinfo(np.int64).max // 4


@dataclass(slots=True)
class _Setting:
    """The master's view: groups, node types and what each type offers each group."""

    groups: list[list[int]]
    req: I64
    """[group, resource]"""
    left: I64
    """[group] pods left"""
    nodes: I64
    """Nodes in play (those the LP used, and the rest of their types)."""
    type_of: I64
    """[node in play]: its type."""
    count: I64
    """[type]: nodes."""
    rep: I64
    """[type]: one of its nodes."""
    peer: I64
    """[type]: its peer."""
    room: I64
    """[type, resource]: free room of each of its nodes."""
    cost: F64
    """[type, group]: placement cost of one pod (tiers and price, ``objective.weights``)."""
    cap: I64
    """[type, group]: at most this many pods of the group on one node (0: not usable)."""
    limit_groups: list[I64]
    """Per limit: groups it counts (empty when none is in play)."""
    limit_peer: I64
    """Per limit: its peer."""
    overflow_cap: I64
    """[group]: pods of the group the nodes not in play hold (each group alone)..."""
    overflow_cost: F64
    """[group]: ...and the cheapest of them: where pods the patterns leave out would go."""
    price: F64
    """[type, group]: real price per hour of one pod (what spend caps count)."""
    overflow_price: F64
    """[group]: real price of a pod overflowing (the cheapest peer it has room on outside)."""
    budget_groups: list[I64]
    """Per capped namespace: its groups (empty when none is in play)."""


def _setting(problem: Problem, work: Work, relaxation: Relaxation, weights: Weights) -> _Setting | None:
    """The nodes with room for some group, grouped into types; the types the LP used are in play,
    the rest is overflow."""
    groups = relaxation.groups
    rep_class, left = representatives(work, groups)
    req = problem.req[rep_class]
    usable = problem.usable()[rep_class]
    slots = group_slots(req, work.free, left, usable)
    candidates = np.nonzero(slots.any(axis=0))[0]
    if candidates.size == 0:
        return None
    key = np.column_stack([problem.node_peer[candidates], problem.node_kind[candidates], work.free[candidates]])
    _, type_of = np.unique(key, axis=0, return_inverse=True)
    type_of = type_of.reshape(-1)
    used = np.zeros(problem.n_nodes, dtype=np.bool_)
    used[relaxation.node[relaxation.value > _TOLERANCE]] = True
    keep = np.isin(type_of, np.unique(type_of[used[candidates]]))
    nodes = candidates[keep]
    if nodes.size == 0:
        return None
    _, first, type_of, count = np.unique(key[keep], axis=0, return_index=True, return_inverse=True, return_counts=True)
    rep = nodes[first]
    placement = weights.placement(problem)[rep_class]
    cap = np.where(usable[:, rep].T, slots[:, rep].T, 0)
    others = candidates[~keep]
    overflow_cap = slots[:, others].sum(axis=1)
    overflow_cost = np.where(slots[:, others] > 0, placement[:, problem.node_peer[others]], np.inf).min(
        axis=1, initial=np.inf
    )
    limit_groups = [
        np.asarray([g for g in range(len(groups)) if i in work.class_limits[groups[g][0]]], dtype=np.int64)
        for i in range(len(problem.limits))
    ]
    real = problem.cost[rep_class]
    overflow_price = np.where(slots[:, others] > 0, real[:, problem.node_peer[others]], np.inf).min(
        axis=1, initial=np.inf
    )
    budget_groups = [np.flatnonzero(problem.class_budget[rep_class] == b) for b in range(len(problem.budget_names))]
    return _Setting(
        groups,
        req,
        left,
        nodes,
        type_of.reshape(-1).astype(np.int64),
        count.astype(np.int64),
        rep,
        problem.node_peer[rep],
        work.free[rep],
        placement[:, problem.node_peer[rep]].T,
        cap,
        limit_groups,
        np.asarray([limit.peer for limit in problem.limits], dtype=np.int64),
        overflow_cap,
        np.where(np.isfinite(overflow_cost), overflow_cost, 0.0),
        real[:, problem.node_peer[rep]].T,
        np.where(np.isfinite(overflow_price), overflow_price, 0.0),
        budget_groups,
    )


def _fill(room: I64, req: I64, cap: I64) -> I64:
    """[row, group]: how many of each group fit ``room`` [row, resource] alone, at most ``cap``."""
    out = cap.copy()
    for r in range(req.shape[1]):
        need = req[:, r]
        pos = need > 0
        if pos.any():
            out[:, pos] = np.minimum(out[:, pos], np.maximum(room[:, r, None], 0) // need[None, pos])
    return out


def _complete(patterns: I64, room: I64, req: I64, cap: I64, value: F64) -> None:
    """Greedy completion in place: add the group worth most per share of the room, repeatedly."""
    size = (req[None, :, :] / np.maximum(room[:, None, :], 1)).max(axis=2)
    density = value / np.maximum(size, 1e-12)
    left = room - patterns @ req
    rows = np.arange(patterns.shape[0])
    for _ in range(req.shape[0]):
        fits = _fill(left, req, cap - patterns)
        score = np.where((fits > 0) & (value > 0), density, -np.inf)
        best = np.argmax(score, axis=1)
        live = np.nonzero(np.isfinite(score[rows, best]))[0]
        if live.size == 0:
            return
        take = fits[live, best[live]]
        patterns[live, best[live]] += take
        left[live] -= take[:, None] * req[best[live]]


def _pairs(room: I64, req: I64, cap: I64, value: F64) -> list[I64]:
    """For each pair of a type's most valuable groups (``TOP`` by what a node of them alone is
    worth, ``TOP_EACH`` by what one pod is worth: two big pods can beat a node of small ones),
    the best mix of the two counting what the rest of the room would still hold, completed."""
    t, n_groups = value.shape
    alone = _fill(room, req, cap)
    worth = np.where(value > 0, value * alone, 0.0)
    each = np.where((value > 0) & (alone > 0), value, 0.0)
    ranked = np.concatenate([np.argsort(-worth, axis=1)[:, :TOP], np.argsort(-each, axis=1)[:, :TOP_EACH]], axis=1)
    # The room a pair leaves is valued as the group densest in value there would fill it alone.
    size = (req[None, :, :] / np.maximum(room[:, None, :], 1)).max(axis=2)
    densest = np.argmax(np.where(worth > 0, value / np.maximum(size, 1e-12), -np.inf), axis=1)
    out = []
    rows_all = np.arange(t)
    for i in range(ranked.shape[1]):
        for j in range(i + 1, ranked.shape[1]):
            gi, gj = ranked[:, i], ranked[:, j]
            rows = np.nonzero((gi != gj) & (worth[rows_all, gi] > 0) & (worth[rows_all, gj] > 0))[0]
            if rows.size == 0:
                continue
            gi, gj = gi[rows], gj[rows]
            most = alone[rows, gi]
            steps = np.rint(np.linspace(0.0, 1.0, STEPS)[None, :] * most[:, None]).astype(np.int64)
            rem = np.maximum(room[rows, None, :] - steps[:, :, None] * req[gi][:, None, :], 0)
            need = req[gj][:, None, :]
            quotient = np.where(need > 0, rem // np.maximum(need, 1), _MANY)
            a_j = np.minimum(quotient.min(axis=2), cap[rows, gj][:, None])
            total = steps * value[rows, gi][:, None] + a_j * value[rows, gj][:, None]
            left = rem - a_j[:, :, None] * need
            fill = densest[rows]
            filler = req[fill][:, None, :]
            fits = np.where(filler > 0, left // np.maximum(filler, 1), _MANY).min(axis=2)
            rest = np.minimum(fits, cap[rows, fill][:, None]) * np.maximum(value[rows, fill], 0.0)[:, None]
            pick = np.argmax(total + rest, axis=1)
            pattern = np.zeros((t, n_groups), dtype=np.int64)
            pattern[rows, gi] = steps[np.arange(rows.size), pick]
            pattern[rows, gj] = a_j[np.arange(rows.size), pick]
            _complete(pattern, room, req, cap, value)
            out.append(pattern)
    return out


def _generate(setting: _Setting, value: F64, seeds: tuple[I64, F64] | None = None) -> I64:
    """Candidate patterns [type, k, group]: the LP's fill rounded (given ``seeds``: its counts
    rounded down and their fractions), greedy, and the best pairs, each completed."""
    room, req, cap = setting.room, setting.req, setting.cap
    out = []
    if seeds is not None:
        # Every way of rounding the ROUND_UP largest fractional counts of each type up or down,
        # where it fits, completed with whatever fits (``eager``: a pod the LP values at zero
        # reduced cost costs nothing there).
        floor, fraction = seeds
        eager = np.where(value > -_TOLERANCE, np.maximum(value, 0) + _EPSILON, value)
        rows = np.arange(floor.shape[0])
        ranked = np.argsort(-fraction, axis=1)[:, :ROUND_UP]
        for mask in range(1 << ranked.shape[1]):
            pattern = floor.copy()
            for bit in range(ranked.shape[1]):
                if mask >> bit & 1:
                    pick = ranked[:, bit]
                    ok = fraction[rows, pick] > _TOLERANCE
                    pattern[rows[ok], pick[ok]] += 1
            fits = np.all(pattern @ req <= room, axis=1) & np.all(pattern <= cap, axis=1)
            if mask and not fits.any():
                continue
            pattern[~fits] = 0
            _complete(pattern, room, req, cap, eager)
            out.append(pattern)
        # The LP's counts rounded up, filled in order (largest pods first, then largest fraction
        # first) as far as the room goes: rounding a big pod up at the expense of small ones,
        # which have room elsewhere.
        target = np.minimum(floor + (fraction > _TOLERANCE), cap)
        size = (req[None, :, :] / np.maximum(room[:, None, :], 1)).max(axis=2)
        for order in (np.argsort(-size, axis=1), np.argsort(-fraction, axis=1)):
            pattern = np.zeros_like(floor)
            left = room.copy()
            for pick in order.T:
                fit = _fill(left, req, cap)[rows, pick]
                take = np.minimum(target[rows, pick], fit)
                pattern[rows, pick] += take
                left -= take[:, None] * req[pick]
            _complete(pattern, room, req, cap, eager)
            out.append(pattern)
    greedy = np.zeros_like(cap)
    _complete(greedy, room, req, cap, value)
    out.append(greedy)
    out += _pairs(room, req, cap, value)
    return np.stack(out, axis=1)


@dataclass(slots=True)
class _Master:
    """min cost of the chosen patterns + overflow + unplaced pods. Rows: per type, at most its
    nodes; per group, patterns + overflow + unplaced = pods left; per limit, at most its headroom;
    per capped namespace, the real price of its pods at most what its cap has left. Columns: per
    group an unplaced slack and an overflow slack, then the patterns."""

    setting: _Setting
    lp: LinearProgram
    type_of: list[int] = field(default_factory=list)
    patterns: list[I64] = field(default_factory=list)
    known: set[tuple[int, bytes]] = field(default_factory=set)

    @classmethod
    def start(cls, setting: _Setting, work: Work, unplaced: float) -> _Master:
        n_types, n_groups = setting.cap.shape
        n_limits, n_budgets = len(setting.limit_groups), len(setting.budget_groups)
        rows = n_types + n_groups + n_limits + n_budgets
        lower = np.concatenate(
            [np.full(n_types, -np.inf), setting.left, np.full(n_limits + n_budgets, -np.inf)]
        )
        upper = np.concatenate(
            [setting.count, setting.left, np.maximum(work.limit_left, 0), np.maximum(work.budget_left, 0.0)]
        )
        # Two slacks per group: unplaced, and overflow to the nodes not in play (which spends).
        slack_rows = [np.tile(n_types + np.arange(n_groups), 2)]
        slack_cols = [np.arange(2 * n_groups)]
        slack_vals = [np.ones(2 * n_groups)]
        for b, members in enumerate(setting.budget_groups):
            slack_rows.append(np.full(members.size, n_types + n_groups + n_limits + b))
            slack_cols.append(n_groups + members)
            slack_vals.append(setting.overflow_price[members])
        slack = csc_matrix(
            (np.concatenate(slack_vals), (np.concatenate(slack_rows), np.concatenate(slack_cols))),
            shape=(rows, 2 * n_groups),
        )
        lp = LinearProgram(
            np.concatenate([np.full(n_groups, unplaced), setting.overflow_cost]),
            slack,
            lower.astype(np.float64),
            upper.astype(np.float64),
            np.zeros(2 * n_groups),
            np.concatenate([np.full(n_groups, np.inf), setting.overflow_cap]).astype(np.float64),
        )
        return cls(setting, lp)

    def add(self, candidates: I64) -> int:
        """Add the new patterns of ``candidates`` [type, k, group]; returns how many were new."""
        setting = self.setting
        n_types, n_groups = setting.cap.shape
        t_idx, k_idx = np.nonzero(candidates.any(axis=2))
        fresh_types: list[int] = []
        fresh: list[I64] = []
        for t, pattern in zip(t_idx.tolist(), candidates[t_idx, k_idx], strict=True):
            key = (t, pattern.tobytes())
            if key not in self.known:
                self.known.add(key)
                fresh_types.append(t)
                fresh.append(pattern)
        if not fresh:
            return 0
        a = np.stack(fresh, axis=1)  # [group, column]
        types = np.asarray(fresh_types, dtype=np.int64)
        k = len(fresh)
        gi, ci = np.nonzero(a)
        rows = [types, n_types + gi]
        cols = [np.arange(k), ci]
        vals = [np.ones(k), a[gi, ci].astype(np.float64)]
        for i, members in enumerate(setting.limit_groups):
            if members.size == 0:
                continue
            on_peer = a[members].sum(axis=0) * (setting.limit_peer[i] == setting.peer[types])
            pick = np.nonzero(on_peer)[0]
            rows.append(np.full(pick.size, n_types + n_groups + i))
            cols.append(pick)
            vals.append(on_peer[pick].astype(np.float64))
        n_limits = len(setting.limit_groups)
        for b, members in enumerate(setting.budget_groups):
            if members.size == 0:
                continue
            spend = (a[members] * setting.price[types][:, members].T).sum(axis=0)
            pick = np.nonzero(spend)[0]
            rows.append(np.full(pick.size, n_types + n_groups + n_limits + b))
            cols.append(pick)
            vals.append(spend[pick])
        matrix = csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(self.lp.rows, k)
        )
        cost = (a * setting.cost[types].T).sum(axis=0)
        self.lp.add_columns(cost, matrix, np.zeros(k), np.full(k, np.inf))
        self.type_of.extend(fresh_types)
        self.patterns.extend(fresh)
        return k

    def values(self, solution: Solution) -> tuple[F64, F64]:
        """[type, group] what one more pod is worth on a node of the type under the duals, and
        [type] the duals of the type rows (a pattern pays if its worth exceeds minus that)."""
        setting = self.setting
        n_types, n_groups = setting.cap.shape
        duals = solution.row_duals
        value = duals[None, n_types : n_types + n_groups] - setting.cost
        peers = setting.peer
        for i, members in enumerate(setting.limit_groups):
            if members.size:
                value[np.ix_(peers == setting.limit_peer[i], members)] += duals[n_types + n_groups + i]
        base = n_types + n_groups + len(setting.limit_groups)
        for b, members in enumerate(setting.budget_groups):
            if members.size:
                value[:, members] += duals[base + b] * setting.price[:, members]
        return np.where(setting.cap > 0, value, -1.0), duals[:n_types]

    def weights(self, solution: Solution) -> F64:
        x: F64 = solution.x[2 * self.setting.cap.shape[1] :]
        return x


def improve(problem: Problem, work: Work, relaxation: Relaxation, weights: Weights, deadline: float) -> int:
    """Commit a whole-node rounding of ``relaxation``; returns pods placed."""
    whole = np.rint(relaxation.value)
    if np.all(np.abs(relaxation.value - whole) <= _TOLERANCE):
        # Already whole (a backlog much smaller than the room often is): nothing to round.
        placed = 0
        for g, members in enumerate(relaxation.groups):
            mine = np.nonzero((relaxation.group == g) & (whole > 0))[0]
            placed += work.commit_group(members, relaxation.node[mine], whole[mine].astype(np.int64))
        return placed
    setting = _setting(problem, work, relaxation, weights)
    if setting is None:
        return 0
    dense = np.zeros((len(relaxation.groups), problem.n_nodes))
    np.add.at(dense, (relaxation.group, relaxation.node), relaxation.value)
    average = _average(setting, dense)
    floor = np.minimum(np.floor(average + _TOLERANCE).astype(np.int64), setting.cap)
    value = np.where(setting.cap > 0, relaxation.duals[None, :] - setting.cost, -1.0)
    master = _Master.start(setting, work, weights.unplaced)
    master.add(_generate(setting, value, (floor, average - floor)))
    solution = master.lp.solve()
    for _ in range(ROUNDS - 1):
        if solution is None or time.perf_counter() > deadline:
            break
        value, mu = master.values(solution)
        fresh = _generate(setting, value)
        gain = (fresh * np.maximum(value, 0)[:, None, :]).sum(axis=2) + mu[:, None]
        fresh[gain <= _TOLERANCE * max(1.0, weights.tier)] = 0
        if master.add(fresh) == 0:
            break
        solution = master.lp.solve()
    if solution is None:
        return 0
    return _commit(problem, work, setting, _dive(master, work, solution, deadline))


def _average(setting: _Setting, dense: F64) -> F64:
    """[type, group]: the LP's pods per node of each type."""
    per_type = np.zeros((setting.count.size, dense.shape[0]))
    np.add.at(per_type, setting.type_of, dense[:, setting.nodes].T)
    out: F64 = per_type / setting.count[:, None]
    return out


def _dive(master: _Master, work: Work, solution: Solution, deadline: float) -> list[tuple[int, I64]]:
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
        whole = np.floor(weights + _TOLERANCE).astype(np.int64)
        for col in np.nonzero(whole)[0].tolist():
            take(col, int(whole[col]))
        fraction = weights - whole
        if fraction.max(initial=0.0) <= _TOLERANCE or not nodes_left.any() or time.perf_counter() > deadline:
            break
        # The largest fraction first; a fix after which the LP can no longer place every pod it
        # could is undone and the next one tried. None left: stop, the LP rounds place the rest.
        for col in np.argsort(-fraction, kind="stable")[:TRIES].tolist():
            if fraction[col] <= _TOLERANCE:
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


def _commit(problem: Problem, work: Work, setting: _Setting, chosen: list[tuple[int, I64]]) -> int:
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
