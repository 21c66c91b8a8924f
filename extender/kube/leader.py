"""Leader election on a coordination.k8s.io Lease, so two replicas never act twice.

The extender and webhook answer on every replica (they only read caches, and bind is made safe
by idempotent delegate names), and every replica keeps its watches; the controllers that write
on their own initiative (mirroring, deletion, failover, orphan sweeps, detaching peers) run as
one group under ``LeaderGate``, only on the leader.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from extender.kube.events import EventSink
from extender.kube.lease import lease_body, leases_path
from extender.kube.raw import ApiError, RawClient

log = logging.getLogger("spillover.leader")
LEASE_NAME = "spillover-controller"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _fmt(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, home: RawClient, namespace: str, enabled: bool, duration: int = 15, renew: float = 5.0) -> None:
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
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{LEASE_NAME}"

    async def run(self) -> None:
        if not self.enabled:
            return
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

    async def _try(self) -> bool:
        now = _now()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration,
            "renewTime": _fmt(now),
        }
        try:
            lease = msgspec.json.decode(await self.home.get(self.path))
        except ApiError as exc:
            if exc.status != 404:
                raise
            body = lease_body(LEASE_NAME, self.namespace, {**spec, "acquireTime": _fmt(now)})
            try:
                await self.home.request("POST", leases_path(self.namespace), body)
                return True
            except ApiError as exc2:
                if exc2.status == 409:
                    return False
                raise
        holder = lease.get("spec", {}).get("holderIdentity")
        renewed = lease.get("spec", {}).get("renewTime")
        expired = True
        if renewed:
            try:
                when = datetime.datetime.strptime(renewed, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
                expired = (now - when).total_seconds() > lease["spec"].get("leaseDurationSeconds", self.duration)
            except ValueError:
                expired = True
        if holder != self.identity and not expired:
            return False
        lease["spec"].update(spec)
        if holder != self.identity:
            lease["spec"]["acquireTime"] = _fmt(now)
        try:
            await self.home.request("PUT", self.path, lease)  # resourceVersion in body: optimistic lock
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
