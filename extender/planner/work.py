"""A plan being built: the assignment so far and what it leaves (free room, pods, limit headroom).

Every solver stage (gangs, flow rounds, CP-SAT, greedy) reads and commits through this one object,
so stages can be chained (gangs first, then flow, then greedy for whatever is left) without any of
them double-booking a node or a limit.
"""

from __future__ import annotations

import numpy as np

from extender.planner.problem import I64, Problem


class Work:
    __slots__ = ("class_limits", "free", "left", "limit_left", "problem", "x")

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

    def copy(self) -> Work:
        """An independent copy (to try a change and keep it only if it is better)."""
        other = Work.__new__(Work)
        other.problem = self.problem
        other.free = self.free.copy()
        other.x = self.x.copy()
        other.left = self.left.copy()
        other.limit_left = self.limit_left.copy()
        other.class_limits = self.class_limits
        return other

    def peer_room(self, c: int, p: int) -> int:
        """How many more pods of class ``c`` the per-peer limits let onto peer ``p``."""
        room = int(self.left[c])
        for i in self.class_limits[c]:
            if self.problem.limits[i].peer == p:
                room = min(room, int(self.limit_left[i]))
        return max(room, 0)

    def commit(self, c: int, nodes: I64, counts: I64) -> None:
        if nodes.size == 0:
            return
        problem = self.problem
        self.x[c, nodes] += counts
        self.free[nodes] -= counts[:, None] * problem.req[c][None, :]
        self.left[c] -= int(counts.sum())
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
            mine = np.minimum(counts, np.maximum(budget - before, 0))
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
        if problem.limits:
            per_peer = np.zeros((problem.n_classes, len(problem.peers)), dtype=np.int64)
            np.add.at(per_peer.T, problem.node_peer, x.T)
            for i, limit in enumerate(problem.limits):
                self.limit_left[i] -= int(per_peer[limit.classes, limit.peer].sum())
