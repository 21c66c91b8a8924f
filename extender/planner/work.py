"""A plan being built: the assignment so far and what it leaves (free room, pods, limit headroom,
what each capped namespace may still spend).

Every solver stage (gangs, flow rounds, CP-SAT, greedy) reads and commits through this one object,
so stages can be chained (gangs first, then flow, then greedy for whatever is left) without any of
them double-booking a node, a limit or a namespace's spend cap. A group commit is cut to what its
namespace can still pay for (the cheapest nodes kept), so a rounding can never overspend a cap.
"""

from __future__ import annotations

import numpy as np

from extender.planner.problem import F64, I64, Problem

SLACK = 1e-9
"""Prices are floats: a pod that brings a namespace exactly to its cap is affordable."""


class Work:
    __slots__ = ("budget_left", "class_limits", "free", "left", "limit_left", "problem", "x")

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.free: I64 = problem.free.copy()
        self.x: I64 = np.zeros((problem.n_classes, problem.n_nodes), dtype=np.int64)
        self.left: I64 = problem.count.copy()
        self.limit_left: I64 = np.array([limit.cap for limit in problem.limits], dtype=np.int64)
        self.class_limits: list[list[int]] = [[] for _ in problem.classes]
        for i, limit in enumerate(problem.limits):
            for c in limit.classes:
                self.class_limits[c].append(i)
        self.budget_left: F64 = problem.budget.copy()

    def copy(self) -> Work:
        """An independent copy (to try a change and keep it only if it is better)."""
        other = Work.__new__(Work)
        other.problem = self.problem
        other.free = self.free.copy()
        other.x = self.x.copy()
        other.left = self.left.copy()
        other.limit_left = self.limit_left.copy()
        other.class_limits = self.class_limits
        other.budget_left = self.budget_left.copy()
        return other

    def peer_room(self, c: int, p: int) -> int:
        """How many more pods of class ``c`` the per-peer limits let onto peer ``p``."""
        room = int(self.left[c])
        for i in self.class_limits[c]:
            if self.problem.limits[i].peer == p:
                room = min(room, int(self.limit_left[i]))
        return max(room, 0)

    def affordable(self, c: int, p: int) -> int:
        """How many more pods of class ``c`` its namespace's spend cap pays for on peer ``p``."""
        b = int(self.problem.class_budget[c])
        price = float(self.problem.cost[c, p])
        if b < 0 or price <= 0:
            return int(self.left[c])
        return max(int((self.budget_left[b] + SLACK) // price), 0)

    def within_budget(self, c: int, nodes: I64, counts: I64) -> I64:
        """``counts`` cut to what class ``c``'s namespace can still pay for, the cheapest nodes
        kept first (all of them when it has no cap)."""
        problem = self.problem
        b = int(problem.class_budget[c])
        if b < 0 or nodes.size == 0:
            return counts
        prices = problem.cost[c, problem.node_peer[nodes]]
        if float((counts * prices).sum()) <= self.budget_left[b] + SLACK:
            return counts
        out = np.zeros_like(counts)
        left = float(self.budget_left[b]) + SLACK
        for i in np.argsort(prices, kind="stable").tolist():
            price = float(prices[i])
            take = int(counts[i]) if price <= 0 else min(int(counts[i]), max(int(left // price), 0))
            out[i] = take
            left -= take * price
        return out

    def commit(self, c: int, nodes: I64, counts: I64) -> None:
        if nodes.size == 0:
            return
        problem = self.problem
        self.x[c, nodes] += counts
        self.free[nodes] -= counts[:, None] * problem.req[c][None, :]
        self.left[c] -= int(counts.sum())
        if (b := int(problem.class_budget[c])) >= 0:
            self.budget_left[b] -= float((counts * problem.cost[c, problem.node_peer[nodes]]).sum())
        if self.class_limits[c]:
            per_peer = np.bincount(problem.node_peer[nodes], weights=counts, minlength=len(problem.peers))
            for i in self.class_limits[c]:
                self.limit_left[i] -= int(per_peer[problem.limits[i].peer])

    def commit_group(self, members: list[int], nodes: I64, counts: I64) -> int:
        """Commit ``counts`` pods on ``nodes`` for a group of interchangeable classes, filling the
        classes in order with the pods each has left; returns how many were committed."""
        counts = counts.copy()
        placed = 0
        for c in members:
            budget = int(self.left[c])
            if budget <= 0 or not counts.any():
                continue
            before = np.cumsum(counts) - counts
            mine = self.within_budget(c, nodes, np.minimum(counts, np.maximum(budget - before, 0)))
            hit = np.nonzero(mine)[0]
            self.commit(c, nodes[hit], mine[hit])
            counts -= mine
            placed += int(mine.sum())
        return placed

    def commit_matrix(self, x: I64) -> None:
        """Commit a whole [class, node] assignment (already checked to fit)."""
        problem = self.problem
        self.x += x
        self.free -= x.T @ problem.req
        self.left -= x.sum(axis=1)
        if self.budget_left.size:
            self.budget_left -= problem.spend(x)
        if problem.limits:
            per_peer = np.zeros((problem.n_classes, len(problem.peers)), dtype=np.int64)
            np.add.at(per_peer.T, problem.node_peer, x.T)
            for i, limit in enumerate(problem.limits):
                self.limit_left[i] -= int(per_peer[limit.classes, limit.peer].sum())
