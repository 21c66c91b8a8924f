"""The planner in the running server: a background loop over the live spill backlog.

The backlog is every pod `filter` saw with no home node left (noted in O(1) on the request
path) and not bound yet. Every couple of seconds, or soon after a new candidate, the peers are
copied in the event loop (so the solver thread never reads objects the watches are changing),
the solve runs in a worker thread, and the resulting PlanScores answers `plan_score` in O(1).
Scale-up advice from the last solve is published as a metric and on the status page.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from extender.capacity.model import PeerState
from extender.hints import HintError, parse_hints
from extender.kube.reflector import Handler
from extender.planner import PlanInput, PlanResult, PlanScores, Solver, plan
from extender.planner.types import GangMembersScheduled, PendingPod
from extender.wire.core import Pod

log = logging.getLogger("spillover.planner")
INTERVAL = 2.0
SOLVE_LIMIT = 1.0
GATHER = 0.2
"""After a wake-up, wait this long so a burst of candidates goes into one solve."""
MIN_GAP = 1.0
"""Seconds between solves, at least: during a burst every filter call adds a candidate."""
COMMITTED_GANG_SECONDS = 120.0
"""How long a gang's peer is kept at most for members still to bind after its first ones did
(members bind within seconds of each other; a member deleted meanwhile must not pin a re-run)."""
REST_FACTOR = 4.0
"""After a solve of T seconds, rest at least REST_FACTOR x T: the solver then takes at most a
fifth of a core from the apiservers and schedulers that make the burst's pods run."""


def _advice_row(advice: Any) -> dict[str, Any]:
    return {
        "cluster": advice.cluster,
        "shape": advice.shape,
        "nodes": advice.nodes,
        "pods": advice.pods,
        "costPerHour": round(advice.cost_per_hour, 4),
    }


def _snapshot(peer: PeerState) -> PeerState:
    clone = copy.copy(peer)
    clone.nodes = {name: copy.copy(node) for name, node in peer.nodes.items()}
    for node in clone.nodes.values():
        node.requested = dict(node.requested)
        node.reserved = dict(node.reserved)
        node.delegated = dict(node.delegated)
    return clone


_DONE = ("Succeeded", "Failed")
HOME_PODS_QUERY = (("fieldSelector", "status.phase!=Succeeded,status.phase!=Failed"),)
"""What the planner's home pod watch asks for: live pods only (a pod that finishes leaves the
watch as DELETED)."""
LEFT_SECONDS = 300.0
"""How long a pod that left the backlog (scheduled, finished, deleted) is remembered: longer than
a candidate lives, so a late candidate note cannot bring it back."""


@dataclass(slots=True)
class _GangMember:
    key: tuple[str, str]
    node: str


class BacklogPods(Handler[Pod]):
    """The home pods the planner needs, kept by a watch (so the planning loop lists nothing):
    which pods left the spill backlog (scheduled, finished or deleted: their candidates are
    dropped), and every live gang member with the node it is scheduled on (members already
    scheduled count toward their gang's size). Other pods are read and forgotten."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        """UIDs of live pods with no node yet."""
        self.left: TTLCache[str, bool] = TTLCache(maxsize=200_000, ttl=LEFT_SECONDS, timer=time.monotonic)
        """UIDs of pods seen leaving the backlog."""
        self.members: dict[str, _GangMember] = {}
        """UID -> gang and node of each live member of a gang."""

    def replace(self, items: list[Pod]) -> None:
        before = self.pending | set(self.members)
        self.pending.clear()
        self.members.clear()
        for pod in items:
            self.upsert(pod)
        for uid in before - self.pending - set(self.members):
            self.left[uid] = True

    def upsert(self, item: Pod) -> None:
        uid = item.metadata.uid
        phase = item.status.phase if item.status is not None else ""
        if item.metadata.deletion_timestamp is not None or phase in _DONE:
            self.delete(item)
            return
        node = item.spec.node_name or ""
        if node:
            self.pending.discard(uid)
            self.left[uid] = True
        else:
            self.pending.add(uid)
        if (key := _gang_key(item)) is not None:
            self.members[uid] = _GangMember(key, node)

    def delete(self, item: Pod) -> None:
        uid = item.metadata.uid
        self.pending.discard(uid)
        self.members.pop(uid, None)
        self.left[uid] = True

    def scheduled(self, peer_of_node: Callable[[str], str | None]) -> dict[tuple[str, str], GangMembersScheduled]:
        """Per gang, its members already scheduled and the peer they run on (None: at home)."""
        out: dict[tuple[str, str], GangMembersScheduled] = {}
        for member in self.members.values():
            if not member.node:
                continue
            before = out.get(member.key)
            peer = peer_of_node(member.node)
            out[member.key] = GangMembersScheduled(
                before.count + 1 if before is not None else 1, (before.peer if before else None) or peer
            )
        return out


def _name(pod: Pod) -> str:
    meta = pod.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


def _gang_key(pod: Pod) -> tuple[str, str] | None:
    try:
        gang = parse_hints(pod.metadata.annotations).gang
    except HintError:
        return None
    return None if gang is None else (pod.metadata.namespace, gang)


class LivePlanner:
    def __init__(
        self,
        peers: Callable[[], list[PeerState]],
        veto: Callable[[Pod, PeerState], str | None] | None = None,
        metrics: Any = None,
        candidate_ttl: float = 60.0,
        in_flight: Callable[[str], bool] | None = None,
        backlog: BacklogPods | None = None,
        peer_of_node: Callable[[str], str | None] | None = None,
        on_gangs_placed: Callable[[set[str]], None] | None = None,
        budgets: Callable[[Iterable[str]], Mapping[str, float]] | None = None,
    ) -> None:
        self.peers = peers
        self.budgets = budgets
        """Namespaces -> what each capped one may still spend per hour in peers (its cap less
        its spend now): the plan keeps within it, as filter and bind do."""
        self.backlog = backlog
        """The home pods as a watch sees them: before each solve, candidates scheduled, finished
        or deleted meanwhile leave the backlog, and each gang's members already scheduled are
        counted."""
        self.peer_of_node = peer_of_node
        """Virtual node name -> peer name (None for a home node)."""
        self.veto = veto
        self.in_flight = in_flight
        """UID -> whether a bind holds room for the pod now: that room is already in the peers'
        capacity, so planning the pod again would count it twice and push others to pricier peers."""
        self.metrics = metrics
        self.candidates: TTLCache[str, Pod] = TTLCache(maxsize=100_000, ttl=candidate_ttl, timer=time.monotonic)
        self.current: PlanScores | None = None
        self.planned_peers: frozenset[str] = frozenset()
        """The peers that were healthy when ``current`` was solved."""
        self.planned_uids: set[str] = set()
        """The pods ``current`` was solved for."""
        self.committed_gangs: TTLCache[tuple[str, str], str] = TTLCache(
            maxsize=10_000, ttl=COMMITTED_GANG_SECONDS, timer=time.monotonic
        )
        """(namespace, gang) -> the peer its first members were bound to. A later solve sees the
        gang incomplete (some members are bound already) and would place it nowhere, leaving the
        rest waiting for members that will never be pending again: the peer stays theirs until the
        last noted member is bound (so a re-run of the same gang name is planned afresh)."""
        self._gang_waiting: dict[tuple[str, str], set[str]] = {}
        """(namespace, gang) -> UIDs of its members noted and not bound yet."""
        self.last: PlanResult | None = None
        self.last_solve_ms = 0.0
        self._wake = asyncio.Event()
        self.on_gangs_placed = on_gangs_placed
        """Called with the peers a new plan holds gang room on: waiting members must be retried."""

    def gang_members_waiting(self, namespace: str, gang: str) -> int:
        """How many of the gang's members were noted and are not bound yet."""
        return len(self._gang_waiting.get((namespace, gang), ()))

    def note_candidate(self, pod: Pod) -> None:
        uid = pod.metadata.uid
        if uid and uid not in self.candidates:
            self.candidates[uid] = pod
            if (key := _gang_key(pod)) is not None:
                self._gang_waiting.setdefault(key, set()).add(uid)
            self._wake.set()

    def bound(self, pod: Pod, peer: str) -> None:
        self.candidates.pop(pod.metadata.uid, None)
        if (key := _gang_key(pod)) is not None:
            waiting = self._gang_waiting.get(key, set())
            waiting.discard(pod.metadata.uid)
            if waiting:
                self.committed_gangs[key] = peer
            else:  # the last member: nothing left to hold the peer for
                self._gang_waiting.pop(key, None)
                self.committed_gangs.pop(key, None)
        if self.current is not None and pod.metadata.uid in self.planned_uids:
            self.current.consume(pod, peer)  # only pods the plan counted use up its room

    def score(self, pod: Pod, peer: PeerState) -> int | None:
        current = self.current
        if current is None:
            return None
        if self._stale():
            self._wake.set()
            return None
        return current.score(pod, peer.name)

    def _stale(self) -> bool:
        """A plan solved while a peer was down steers pods away from it after it is back (and one
        solved while it was up, towards it after it is gone): such a plan has nothing to say."""
        return frozenset(p.name for p in self.peers() if p.healthy) != self.planned_peers

    def gang_peer(self, pod: Pod, gang: str) -> str | None:
        current = self.current
        return current.gang_peer(pod.metadata.namespace, gang) if current is not None else None

    def gang_reason(self, pod: Pod, gang: str) -> str | None:
        """Why the last plan placed no member of the pod's gang ("2 of 5 members pending")."""
        last = self.last
        return last.gang_reasons.get((pod.metadata.namespace, gang)) if last is not None else None

    def advice_for(self, cluster: str) -> list[dict[str, Any]]:
        """Scale-up rows of the last solve for one cluster (published in PeerCluster status)."""
        if self.last is None:
            return []
        return [_advice_row(a) for a in self.last.advice if a.cluster == cluster]

    def summary(self) -> dict[str, Any]:
        """The last plan, for /plan.json and `spillover plan`."""
        last = self.last
        if last is None:
            return {"pending": len(self.candidates), "solved": False, "advice": []}
        placed: dict[str, int] = {}
        for placement in last.placements:
            placed[placement.cluster] = placed.get(placement.cluster, 0) + 1
        # Only pods still waiting: one bound or deleted since the solve is no longer unplaced.
        waiting = {_name(pod) for pod in list(self.candidates.values())}
        unplaced = [u for u in last.unplaced if u.pod in waiting]
        return {
            "pending": len(self.candidates),
            "solved": True,
            "solve_ms": round(self.last_solve_ms, 1),
            "placed": placed,
            "unplaced": [{"pod": u.pod, "reason": u.reason} for u in unplaced[:100]],
            "advice": [_advice_row(a) for a in last.advice],
        }

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), INTERVAL)
            self._wake.clear()
            await asyncio.sleep(GATHER)
            if not self.candidates:
                self.last = None  # nothing waits: an old plan's unplaced pods are not news
                continue
            try:
                await self.solve()
            except Exception as exc:  # a failed solve leaves the previous plan in place
                log.warning("planning failed: %s", exc)
            await asyncio.sleep(max(MIN_GAP - GATHER, self.last_solve_ms / 1000 * REST_FACTOR))

    def _reconcile(self) -> dict[tuple[str, str], GangMembersScheduled]:
        """Drop candidates that left the backlog; count each gang's scheduled members."""
        backlog = self.backlog
        if backlog is None:
            return {}
        for uid in [uid for uid in list(self.candidates) if uid in backlog.left]:
            self.candidates.pop(uid, None)
        return backlog.scheduled(self.peer_of_node or (lambda node: None))

    async def solve(self) -> PlanResult:
        scheduled = self._reconcile()
        pods = []
        uids = set()
        for pod in list(self.candidates.values()):
            if self.in_flight is not None and self.in_flight(pod.metadata.uid):
                continue
            try:
                pods.append(PendingPod.from_pod(pod))
            except HintError:
                continue
            uids.add(pod.metadata.uid)
        peers = [_snapshot(p) for p in self.peers() if p.healthy]
        planned_peers = frozenset(p.name for p in peers)
        started = time.perf_counter()
        result = await asyncio.to_thread(
            plan,
            PlanInput(
                peers=peers,
                pods=pods,
                veto=self.veto,
                scheduled=scheduled,
                budgets=self.budgets({p.pod.metadata.namespace for p in pods}) if self.budgets else {},
            ),
            Solver.AUTO,
            time_limit=SOLVE_LIMIT,
        )
        self.last_solve_ms = (time.perf_counter() - started) * 1000
        self.last = result
        previous = self.current
        self.current = PlanScores(result)
        for key, peer in self.committed_gangs.items():
            self.current.gang_peers.setdefault(key, peer)
        self.planned_peers = planned_peers
        self.planned_uids = uids
        if self.on_gangs_placed is not None:
            before = set(previous.gang_peers.values()) if previous is not None else set()
            fresh = {
                peer
                for key, peer in self.current.gang_peers.items()
                if previous is None or previous.gang_peers.get(key) != peer
            } - before
            if fresh:
                self.on_gangs_placed(fresh)
        if self.metrics is not None:
            self.metrics.publish_advice([(a.cluster, a.shape, a.nodes) for a in result.advice])
        log.info(
            "planned the spill backlog",
            extra={
                "pods": len(pods),
                "placed": len(result.placements),
                "unplaced": len(result.unplaced),
                "solve_ms": round(self.last_solve_ms, 1),
                "advice": [f"{a.cluster}: +{a.nodes} x {a.shape} for {a.pods} pods" for a in result.advice],
            },
        )
        return result
