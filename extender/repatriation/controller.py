"""The repatriation controller (leader-only): spilled pods come home once home has had room.

Every second it looks at the pods running in peers, the dearest first (their price per hour in
their peer), and asks the home capacity cache what ``filter`` would: is there a home node that
fits the pod by every rule, counting the pods already on their way home and the dearer pods
looked at before it? A pod (a gang: all its spilled members at once) that has had room for its
delay, is at least that old, whose hints allow it, whose workload is not held back for
ping-pong and has no more than its limit of pods moving, is evicted through the Eviction API
(policy/v1), so the workload's PodDisruptionBudget decides: a 429 is the budget saying no. Its
controller then makes a new pod, which kube-scheduler places at home like any other (local-first:
home has room, so home it is); a bare pod that asked to come home is created again by Spillover
once the old one is gone. The delegate in the peer goes with the proxy, as for any deleted proxy
(``delegation.lifecycle``).

Nothing moves or stays without saying why: Events ``Repatriating`` (on the pod leaving the peer),
``Repatriated`` (on the pod that came home) and ``RepatriationBlocked`` (PDB, NoRoom, Gang, Hint,
PingPong, at most once per pod and reason every ten minutes); metrics; and ``rows()`` for the
status page and ``spillover status``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from extender.capacity.model import PeerState
from extender.home_capacity import HomeCapacity
from extender.kube.api import PODS, Api
from extender.kube.events import EventSink
from extender.kube.raw import ApiError
from extender.kube.reflector import Handler
from extender.kube.tasks import every
from extender.peers.directory import PeerDirectory
from extender.planner.pricing import cost_per_hour, money
from extender.planner.types import workload_of
from extender.repatriation.assess import BLOCKED, Assessor, Block
from extender.repatriation.evictions import evict, read_bare_pod
from extender.repatriation.moves import Move, made_after, recreated_pod, seconds_text
from extender.repatriation.pingpong import PingPong
from extender.repatriation.pingpong_store import PingPongStore
from extender.repatriation.policy import DEFAULT_AFTER, owner_text, terms
from extender.repatriation.units import Unit, gather
from extender.resources import Resources
from extender.spend import FINISHED
from extender.wire.core import Pod

log = logging.getLogger("spillover.repatriation")
PASS_EVERY = 1.0
PDB_RETRY = 5.0
"""Seconds before a workload whose PodDisruptionBudget said no is asked again: a budget usually
says no only until the last pod that came home is counted Ready (the disruption controller's
next sync), so soon, but not at every pass."""
TELL_EVERY = 600.0
"""The same RepatriationBlocked reason is told on a pod at most this often."""
MOVE_TIMEOUT = 180.0
"""A move whose new pod is not bound at home by then is given up (its held room goes)."""


class RepatriationMetrics(Protocol):
    def count_repatriated(self, peer: str, saved_per_hour: float) -> None:
        """A pod came home from ``peer``; it cost ``saved_per_hour`` there."""

    def count_repatriation_blocked(self, reason: str) -> None:
        """A RepatriationBlocked Event was recorded, by its reason."""

    def count_ping_pong(self, peer: str) -> None:
        """A pod spilled to ``peer`` soon after its workload's pod came home: held back."""


class Repatriation:
    def __init__(
        self,
        home: Api,
        capacity: HomeCapacity,
        directory: PeerDirectory,
        events: EventSink,
        metrics: RepatriationMetrics,
        default_after: float = DEFAULT_AFTER,
        interval: float = PASS_EVERY,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        store: PingPongStore | None = None,
    ) -> None:
        self.home = home
        self.store = store
        """Where the ping-pong memory outlives a leader (None: in this process only)."""
        self.capacity = capacity
        self.directory = directory
        self.events = events
        self.metrics = metrics
        self.default_after = default_after
        self.interval = interval
        self.clock = clock
        self.wall = wall
        self.pods: Handler[Pod] = _Pods(self)
        """For home's pod watch (every replica): the spilled pods, and the new pods that end moves."""
        self.spilled: dict[str, Pod] = {}
        self.listed = False
        self.assessor = Assessor()
        self.moves: dict[str, Move] = {}
        """Evicted pod UID -> its move home (on the leader only)."""
        self.ping_pong = PingPong()
        self.pdb_until: dict[str, float] = {}
        """Unit -> when its PodDisruptionBudget may be asked again."""
        self.told: dict[tuple[str, Block], float] = {}
        self.status: list[dict[str, Any]] = []
        """The last pass, one row per spilled pod (for the status page and `spillover status`)."""

    # ---- the leader's loop ----------------------------------------------------------------------
    async def lead(self) -> None:
        """Room timers start afresh with each lead (a pod waits its delay again after a failover:
        the conservative side), and moves are forgotten when the lead is lost."""
        self.assessor = Assessor()
        if self.store is not None:
            await self.store.load(self.ping_pong, self.clock(), self.wall())
        try:
            await every(self.interval, self.step, "repatriation pass failed")
        finally:
            for move in self.moves.values():
                self.capacity.release(move.uid)
            self.moves.clear()
            self.status = []

    async def step(self) -> None:
        now = self.clock()
        self._expire(now)
        await self._recreate_bare_pods()
        ripe: list[Unit] = []
        self.status = []
        if self.spilled:
            units = gather(self.spilled.values(), self.directory, self.default_after)
            scratch = self.capacity.snapshot()
            found = self.assessor.assess(units, scratch, self.moves, self.ping_pong, self.pdb_until, now, self.wall())
            for unit, block, message in found.tell:
                self._tell_all(unit, block, message)
            ripe, self.status = found.ripe, found.rows
        for unit in ripe:
            await self._move(unit)
        for row in self.status:  # what this pass's evictions met
            if self.pdb_until.get(row["workload"], 0.0) > now and row["state"] in ("moving now", "waiting its turn"):
                row["state"], row["reason"] = "blocked", BLOCKED
        if self.store is not None:  # trips home and strikes of this pass, for the next leader
            await self.store.save(self.ping_pong, self.clock(), self.wall())

    # ---- moving ---------------------------------------------------------------------------------
    async def _move(self, unit: Unit) -> None:
        if len(unit.members) > 1:  # a gang: every member's budget first, so none moves alone
            for pod in unit.members:
                refused = await evict(self.home, pod, dry_run=True)
                if refused is not None:
                    self._blocked_by_pdb(unit, refused)
                    return
        for pod, peer, requests in zip(unit.members, unit.peers, unit.requests, strict=True):
            raw = None
            if not any(ref.controller for ref in pod.metadata.owner_references or ()):
                raw = await read_bare_pod(self.home, pod)
                if raw is None:
                    continue
            refused = await evict(self.home, pod)
            if refused == "":
                continue  # gone or replaced meanwhile
            if refused is not None:
                self._blocked_by_pdb(unit, refused)
                return
            self._started(unit, pod, peer, requests, raw)

    def _started(self, unit: Unit, pod: Pod, peer: PeerState, requests: Resources, raw: dict[str, Any] | None) -> None:
        meta = pod.metadata
        node = unit.nodes.get(meta.uid, "")
        price = cost_per_hour(requests, peer)
        workload = workload_of(pod)
        self.moves[meta.uid] = Move(
            uid=meta.uid,
            namespace=meta.namespace,
            name=meta.name,
            workload=workload,
            unit=unit.key,
            peer=peer.name,
            price=price,
            node=node,
            requests=requests,
            started=self.clock(),
            started_wall=self.wall(),
            recreate=raw,
        )
        if node:
            self.capacity.hold(meta.uid, node, requests)
        self.ping_pong.sent_home(workload, self.clock())
        self.assessor.forget(meta.uid)
        who = owner_text(pod)
        self.events.record(
            _ref(pod),
            "Repatriating",
            f"home has had room for it for {seconds_text(unit.terms.after)} or more (node {node} fits it): evicted "
            f"from peer {peer.name}, where it cost {money(price)}/h; {who} creates it again, at home",
        )
        log.info("repatriating", extra={"pod": f"{meta.namespace}/{meta.name}", "peer": peer.name, "home_node": node})

    def _blocked_by_pdb(self, unit: Unit, refused: str) -> None:
        self.pdb_until[unit.key] = self.clock() + PDB_RETRY
        self._tell_all(unit, Block.PDB, f"the PodDisruptionBudget allows no disruption now: {refused}")

    async def _recreate_bare_pods(self) -> None:
        for move in list(self.moves.values()):
            if move.recreate is None or not move.gone or move.recreated:
                continue
            try:
                await self.home.request("POST", PODS.collection(move.namespace), recreated_pod(move.recreate))
                move.recreated = True
            except ApiError as exc:
                if exc.status == 409:
                    continue  # the old one is still being removed: next pass
                log.warning("could not create %s/%s again at home: %s", move.namespace, move.name, exc)
                self.events.record(
                    {"namespace": move.namespace, "name": move.name, "uid": move.uid},
                    "RepatriationBlocked",
                    f"evicted from peer {move.peer} to come home, but creating it again at home failed: {exc.message}",
                    warning=True,
                )
                move.recreated = True  # told; the move times out and its room goes

    def _expire(self, now: float) -> None:
        for uid, move in list(self.moves.items()):
            if move.done or now - move.started > MOVE_TIMEOUT:
                if not move.done:
                    log.warning(
                        "%s/%s left peer %s but no new pod of it was bound at home within %gs",
                        move.namespace,
                        move.name,
                        move.peer,
                        MOVE_TIMEOUT,
                    )
                self.capacity.release(uid)
                del self.moves[uid]
        self.pdb_until = {key: until for key, until in self.pdb_until.items() if until > now}
        self.told = {key: at for key, at in self.told.items() if now - at < TELL_EVERY}
        self.ping_pong.forget_old(now)

    # ---- what the watch shows -------------------------------------------------------------------
    def on_list(self, items: list[Pod]) -> None:
        self.spilled = {p.metadata.uid: p for p in items if self._live_spilled(p)}
        uids = {p.metadata.uid for p in items}
        for uid in list(self.assessor.room_since):
            if "/" not in uid and uid not in self.spilled:
                self.assessor.forget(uid)
        for move in self.moves.values():
            move.gone = move.gone or move.uid not in uids
        self.listed = True

    def on_pod(self, pod: Pod) -> None:
        uid = pod.metadata.uid
        if self.capacity.is_spilled(pod):
            if self._live_spilled(pod):
                if uid not in self.spilled and self.listed:
                    self._spilled_now(pod)
                self.spilled[uid] = pod
            else:
                self.spilled.pop(uid, None)
            return
        self.spilled.pop(uid, None)
        if pod.spec.node_name and self.moves:
            self._bound_home(pod)
            if (pod.status.phase if pod.status else "") == "Running":
                for move in self.moves.values():
                    if move.replacement == uid:
                        move.arrived = True

    def on_gone(self, pod: Pod) -> None:
        uid = pod.metadata.uid
        self.spilled.pop(uid, None)
        self.assessor.forget(uid)
        move = self.moves.get(uid)
        if move is not None:
            move.gone = True

    def _live_spilled(self, pod: Pod) -> bool:
        phase = pod.status.phase if pod.status else ""
        return self.capacity.is_spilled(pod) and pod.metadata.deletion_timestamp is None and phase not in FINISHED

    def _waiting_move(self, pod: Pod) -> Move | None:
        """The move this new pod of a workload ends, if any."""
        workload = workload_of(pod)
        for move in self.moves.values():
            fresh = move.workload == workload and not move.replacement and move.uid != pod.metadata.uid
            if fresh and made_after(pod, move):
                return move
        return None

    def _bound_home(self, pod: Pod) -> None:
        if any(m.replacement == pod.metadata.uid for m in self.moves.values()):
            return
        move = self._waiting_move(pod)
        if move is None:
            return
        move.replacement = pod.metadata.uid
        move.home_node = pod.spec.node_name
        self.capacity.release(move.uid)
        self.metrics.count_repatriated(move.peer, move.price)
        self.events.record(
            _ref(pod),
            "Repatriated",
            f"came home from peer {move.peer} to node {pod.spec.node_name}, in place of {move.namespace}/{move.name} "
            f"(evicted there): saves {money(move.price)}/h",
        )

    def _spilled_now(self, pod: Pod) -> None:
        """A pod was just bound to a virtual node: if its workload was sent home lately, ping-pong."""
        peer = self.directory.by_virtual_node.get(pod.spec.node_name)
        peer_name = peer.name if peer is not None else pod.spec.node_name
        move = self._waiting_move(pod)
        if move is not None:  # the very pod meant to run at home spilled
            move.replacement = pod.metadata.uid
            move.arrived = True
            self.capacity.release(move.uid)
        workload = workload_of(pod)
        pod_terms = terms(pod, self.directory.repatriate_after(peer_name), self.default_after)
        hold = self.ping_pong.spilled(workload, self.clock(), pod_terms.after)
        if hold is None:
            return
        self.metrics.count_ping_pong(peer_name)
        strikes = self.ping_pong.strikes(workload)
        self._tell(
            pod,
            Block.PING_PONG,
            f"a pod of {workload} was sent home within the last hour and this one spilled to {peer_name} again "
            f"(home's room did not last): the workload's repatriation is held back for {seconds_text(hold)} "
            f"(strike {strikes}; each doubles the wait)",
        )

    # ---- telling ----------------------------------------------------------------------------------
    def _tell_all(self, unit: Unit, block: Block, message: str) -> None:
        for pod in unit.members:
            self._tell(pod, block, message)

    def _tell(self, pod: Pod, block: Block, message: str) -> None:
        key = (pod.metadata.uid, block)
        now = self.clock()
        if key in self.told and now - self.told[key] < TELL_EVERY:
            return
        self.told[key] = now
        self.metrics.count_repatriation_blocked(block.value)
        warning = block in (Block.PDB, Block.PING_PONG)
        self.events.record(_ref(pod), "RepatriationBlocked", f"{block.value}: {message}", warning=warning)

    def rows(self) -> list[dict[str, Any]]:
        return list(self.status)


class _Pods(Handler[Pod]):
    def __init__(self, controller: Repatriation) -> None:
        self.c = controller

    def replace(self, items: list[Pod]) -> None:
        self.c.on_list(items)

    def upsert(self, item: Pod) -> None:
        self.c.on_pod(item)

    def delete(self, item: Pod) -> None:
        self.c.on_gone(item)


def _ref(pod: Pod) -> dict[str, str]:
    return {"namespace": pod.metadata.namespace, "name": pod.metadata.name, "uid": pod.metadata.uid}
