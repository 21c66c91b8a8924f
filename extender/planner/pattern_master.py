"""The master LP of the pattern rounding: how many nodes of each type take each pattern."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from extender.planner.lp import LinearProgram, Solution, SparseColumns
from extender.planner.pattern_setting import PatternSetting
from extender.planner.problem import F64, I64
from extender.planner.work import Work


@dataclass(slots=True)
class PatternMaster:
    """min cost of the chosen patterns + overflow + unplaced pods. Rows: per type, at most its
    nodes; per group, patterns + overflow + unplaced = pods left; per limit, at most its headroom;
    per capped namespace, the real price of its pods at most what its cap has left. Columns: per
    group an unplaced slack and an overflow slack, then the patterns."""

    setting: PatternSetting
    lp: LinearProgram
    type_of: list[int] = field(default_factory=list)
    patterns: list[I64] = field(default_factory=list)
    known: set[tuple[int, bytes]] = field(default_factory=set)

    @classmethod
    def start(cls, setting: PatternSetting, work: Work, unplaced: float) -> PatternMaster:
        n_types, n_groups = setting.cap.shape
        n_limits, n_budgets = len(setting.limit_groups), len(setting.budget_groups)
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
        slack = SparseColumns.of(
            np.concatenate(slack_vals), np.concatenate(slack_rows), np.concatenate(slack_cols), 2 * n_groups
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
        matrix = SparseColumns.of(np.concatenate(vals), np.concatenate(rows), np.concatenate(cols), k)
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
