"""Leader election on a coordination.k8s.io Lease, so two replicas never act twice.

The extender and webhook answer on every replica (they only read caches, and bind is made safe
by idempotent delegate names), and every replica keeps its watches; the controllers that write
on their own initiative (mirroring, deletion, failover, orphan sweeps, detaching peers) run as
one group under ``LeaderGate``, only on the leader.

A leader that stops (a rolling update, SIGTERM) hands the Lease back as client-go's
``ReleaseOnCancel`` does: no holder and a 1 s duration, so the next replica leads at its next
round instead of a full lease duration later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from extender.kube.api import LEASES, Api, PatchType
from extender.kube.events import EventSink
from extender.kube.lease import Lease, LeaseSpec, lease_body
from extender.kube.raw import ApiError
from extender.kube.times import parse_rfc3339, rfc3339, utc_now

log = logging.getLogger("spillover.leader")
LEASE_NAME = "spillover-controller"


class LeaderElector:
    def __init__(self, home: Api, namespace: str, enabled: bool, duration: int = 15, renew: float = 5.0) -> None:
        self.home = home
        self.namespace = namespace
        self.enabled = enabled
        self.duration = duration
        self.renew = renew
        self.identity = f"{os.environ.get('POD_NAME') or os.uname().nodename}_{uuid.uuid4().hex[:8]}"
        self.leading = not enabled
        self.changed = asyncio.Event()

    @property
    def path(self) -> str:
        return LEASES.item(LEASE_NAME, self.namespace)

    async def run(self) -> None:
        if not self.enabled:
            return
        try:
            while True:
                try:
                    leading = await self._try()
                except Exception as exc:
                    log.warning("leader election round failed: %s", exc)
                    leading = False
                if leading != self.leading:
                    self.leading = leading
                    log.info("leadership %s", "acquired" if leading else "lost", extra={"identity": self.identity})
                    self.changed.set()
                await asyncio.sleep(self.renew)
        finally:
            if self.leading:
                self.leading = False
                try:
                    await asyncio.wait_for(self._release(), 2)
                except Exception as exc:  # the Lease then simply expires
                    log.warning("could not hand back the leader Lease: %s", exc)

    async def _release(self) -> None:
        lease = msgspec.json.decode(await self.home.get(self.path), type=Lease)
        if lease.spec.holder_identity != self.identity:
            return
        spec = {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": rfc3339(utc_now(), micro=True)}
        patch = {"metadata": {"resourceVersion": lease.metadata.resource_version}, "spec": spec}
        await self.home.request("PATCH", self.path, patch, content_type=PatchType.MERGE)
        log.info("leader Lease handed back", extra={"identity": self.identity})

    async def _try(self) -> bool:
        now = utc_now()
        spec = LeaseSpec(
            holder_identity=self.identity, lease_duration_seconds=self.duration, renew_time=rfc3339(now, micro=True)
        )
        try:
            lease = msgspec.json.decode(await self.home.get(self.path), type=Lease)
        except ApiError as exc:
            if exc.status != 404:
                raise
            spec.acquire_time = spec.renew_time
            try:
                await self.home.request(
                    "POST", LEASES.collection(self.namespace), lease_body(LEASE_NAME, self.namespace, spec)
                )
                return True
            except ApiError as exc2:
                if exc2.status == 409:
                    return False
                raise
        holder = lease.spec.holder_identity
        renewed = parse_rfc3339(lease.spec.renew_time)
        duration = lease.spec.lease_duration_seconds or self.duration
        expired = renewed is None or (now - renewed).total_seconds() > duration
        if holder and holder != self.identity and not expired:  # "": released by a replica that stopped
            return False
        if holder != self.identity:
            spec.acquire_time = spec.renew_time
        # The resourceVersion makes the patch conditional: another replica's write in between
        # fails it with 409 (optimistic lock), as an update would.
        patch = {"metadata": {"resourceVersion": lease.metadata.resource_version}, "spec": spec}
        try:
            await self.home.request("PATCH", self.path, patch, content_type=PatchType.MERGE)
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True


class LeaderOnly(Protocol):
    """A controller that writes on its own initiative, so runs on one replica only."""

    async def lead(self) -> None:
        """Do this controller's work until cancelled. Called each time this replica takes the lead,
        so it starts by acting on everything its watches show: what they showed while another
        replica led was that replica's to act on, and it may have stopped before it did."""


class LeaderGate:
    """Runs the leader-only controllers as one group while this replica holds the Lease, as
    controller-runtime runs the runnables that NeedLeaderElection and admiralty's agent its
    controllers: all started when the lead is taken, all cancelled when it is lost. Without
    leader election the group starts at once. The controllers hold no leader checks of their own.
    """

    def __init__(self, elector: LeaderElector, controllers: Sequence[LeaderOnly]) -> None:
        self.elector = elector
        self.controllers = list(controllers)

    async def run(self) -> None:
        election = asyncio.create_task(self.elector.run(), name="leader-election")
        group: list[asyncio.Task[None]] = []
        try:
            while True:
                if self.elector.leading and not group:
                    log.info("leading: starting %d controllers", len(self.controllers))
                    group = [asyncio.create_task(c.lead(), name=f"lead-{type(c).__name__}") for c in self.controllers]
                elif not self.elector.leading and group:
                    log.info("not leading: stopping the controllers")
                    await _stop(group)
                    group = []
                await self.elector.changed.wait()
                self.elector.changed.clear()
        finally:
            await _stop([*group, election])

    def recorder(self, events: EventSink) -> EventSink:
        """``events``, recorded only while this replica leads: for what every replica sees (a
        peer lost, a PeerCluster deleted), so that one replica tells, not each."""
        return _WhileLeading(self.elector, events)


class _WhileLeading:
    def __init__(self, elector: LeaderElector, events: EventSink) -> None:
        self.elector = elector
        self.events = events

    def record(self, ref: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        if self.elector.leading:
            self.events.record(ref, reason, message, warning=warning)


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, Exception):
            log.error("leader-only task %s died: %r", task.get_name(), result)
