"""The plan as the scheduler verbs use it: per class, pods planned per peer, scored in O(1).

``prioritize`` asks ``score(pod, peer)`` for every virtual node; the answer is two dict lookups
after the pod's class key (cached by UID). Binding a pod ``consume``s one unit of its class's quota
on that peer, so once the planned room on the cheapest peer is used up the next pods score the
next peer highest. A plan is only as good as the capacity it was computed from, so it expires.
"""

from __future__ import annotations

import time

import numpy as np

from extender.planner.classes import ClassKey, class_key_of_pod
from extender.planner.solve import PlanResult
from extender.wire.core import Pod

DEFAULT_TTL = 30.0
PLANNED_TOP, PLANNED_FLOOR = 10, 6
"""Peers the plan put pods of the class on: 10 for the first in cost order, down to 6."""
UNPLANNED_TOP, UNPLANNED_FLOOR = 5, 1
"""Allowed peers the plan did not use (or whose quota is used up): 5 down to 1."""


class PlanScores:
    def __init__(self, result: PlanResult, *, ttl: float = DEFAULT_TTL, now: float | None = None) -> None:
        self.created = time.monotonic() if now is None else now
        self.ttl = ttl
        self.quota: dict[ClassKey, dict[str, int]] = result.quotas()
        self._planned: dict[ClassKey, dict[str, int]] = {}
        self._fallback: dict[ClassKey, dict[str, int]] = {}
        self.gang_peers: dict[tuple[str, str], str] = {}
        problem = result.problem
        for c, cls in enumerate(problem.classes):
            allowed = [int(p) for p in np.flatnonzero(problem.allowed[c])]
            allowed.sort(key=lambda p: (int(problem.tier_rank[p]), float(problem.eff[c, p]), p))
            quota = self.quota[cls.key]
            planned, fallback = {}, {}
            rank_planned = 0
            for rank, p in enumerate(allowed):
                name = problem.peers[p].name
                fallback[name] = max(UNPLANNED_FLOOR, UNPLANNED_TOP - rank)
                if quota.get(name, 0) > 0:
                    planned[name] = max(PLANNED_FLOOR, PLANNED_TOP - rank_planned)
                    rank_planned += 1
            self._planned[cls.key] = planned
            self._fallback[cls.key] = fallback
            if cls.gang is not None and quota:
                self.gang_peers[cls.gang] = next(iter(quota))

    def expired(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) - self.created > self.ttl

    def score(self, pod: Pod, peer: str, now: float | None = None) -> int | None:
        """0-10 for this pod on that peer; None when the plan has nothing to say (expired, or the
        pod's class was not in the backlog it was computed from)."""
        if self.expired(now):
            return None
        key = class_key_of_pod(pod)
        if key is None or (fallback := self._fallback.get(key)) is None:
            return None
        if self.quota[key].get(peer, 0) > 0:
            return self._planned[key][peer]
        return fallback.get(peer, 0)

    def consume(self, pod: Pod, peer: str) -> None:
        """One pod of the class was bound to the peer: one unit of planned room is used."""
        key = class_key_of_pod(pod)
        if key is None:
            return
        quota = self.quota.get(key)
        if quota is not None and quota.get(peer, 0) > 0:
            quota[peer] -= 1

    def gang_peer(self, namespace: str, gang: str) -> str | None:
        """The one peer the plan holds room on for the whole gang, or None (its members wait)."""
        return self.gang_peers.get((namespace, gang))
