"""The orphan sweep, leader-only: what Spillover made in a peer that nothing will use any more.

A delegate whose proxy is gone (or bound elsewhere: a bind cut off after creating it, then
retried to another peer or home), and a copied ConfigMap or Secret no delegate lists, is
deleted. Each peer is swept every ``orphan_sweep_seconds``, and soon after its delegates go or
its watch re-lists. Only this home's objects are looked at: a peer may be shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from typing import Any

import msgspec

from extender import labels
from extender.delegation import delegate_spec
from extender.delegation.view import DelegationView
from extender.delegation.writer import DelegationMetrics, ProxyWriter
from extender.kube.raw import ApiError
from extender.kube.tasks import TaskSet

log = logging.getLogger("spillover.delegator")
ORPHAN_MIN_AGE = 30.0
"""A delegate younger than this is never swept: its bind may still be in flight (its proxy only
becomes visible once bound to the virtual node)."""


def _younger_than(meta: dict[str, Any], seconds: float) -> bool:
    created = meta.get("creationTimestamp")
    if not created:
        return False
    try:
        when = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return False
    return (datetime.datetime.now(datetime.UTC) - when).total_seconds() < seconds


class OrphanSweeper:
    def __init__(
        self,
        view: DelegationView,
        writer: ProxyWriter,
        metrics: DelegationMetrics,
        home_cluster: str,
        every: float,
    ) -> None:
        self.view = view
        self.writer = writer
        self.metrics = metrics
        self.delegates_selector = delegate_spec.delegates_selector(home_cluster)
        self.copies_selector = delegate_spec.copies_selector(home_cluster)
        self.every = every
        self.reactions = TaskSet("orphan-sweep", accepting=False)
        """Sweeps soon after watch events; taken only while leading (``lead`` sweeps every peer)."""
        self._soon: set[str] = set()

    async def lead(self) -> None:
        async with self.reactions.open():
            for peer in list(self.view.peers):
                self.sweep_soon(peer)
            while True:
                await asyncio.sleep(self.every)
                for peer in list(self.view.peers):
                    try:
                        await self.sweep(peer)
                    except Exception as exc:
                        log.warning("orphan sweep of %s failed: %s", peer, exc)

    async def sweep(self, peer: str, everything: bool = False) -> int:
        """Delete delegates whose proxy is gone and copies no delegate needs; returns how many.

        ``everything`` (the peer is being detached): every delegate and copy goes, whatever its
        age or proxy, and the count includes those still terminating."""
        entry = self.view.peers.get(peer)
        if entry is None or not entry.synced() or not entry.runtime.state.reachable:
            return 0
        client = entry.runtime.raw
        virtual_node = entry.runtime.state.virtual_node
        removed = 0
        orphans = 0  # delegates whose home pod is gone or elsewhere: a missed event, an interrupted bind
        unused = 0  # copies no delegate uses any more: the normal end of a copy, not an orphan
        too_young = False
        needed: set[tuple[str, str, str]] = set()
        listed = msgspec.json.decode(
            await client.get(
                "/api/v1/pods",
                query=[("labelSelector", self.delegates_selector)],
            )
        )
        for item in listed.get("items", []):
            meta = item.get("metadata", {})
            uid = (meta.get("labels") or {}).get(labels.PROXY_UID, "")
            proxy = self.view.proxies.get(uid)
            # Its proxy is gone, or bound somewhere else (a bind cut off after creating this
            # delegate, then retried to another peer or home): nothing will ever use it.
            bound_elsewhere = proxy is not None and proxy.node_name not in (None, "", virtual_node)
            if everything:
                if not meta.get("deletionTimestamp"):
                    await self.writer.delete_delegate(
                        client, meta.get("namespace", ""), meta.get("name", ""), grace=None
                    )
                removed += 1
                continue
            terminating = bool(meta.get("deletionTimestamp"))  # its proxy's deletion deleted it: not an orphan
            if (proxy is None or bound_elsewhere) and not terminating:
                if _younger_than(meta, ORPHAN_MIN_AGE):
                    too_young = True
                else:
                    await self.writer.delete_delegate(client, meta.get("namespace", ""), meta.get("name", ""), grace=0)
                    removed += 1
                    orphans += 1
                    continue
            for kind, name in delegate_spec.copies_of(meta.get("annotations")):
                needed.add((meta.get("namespace", ""), kind, name))
        for kind, plural in delegate_spec.PLURALS.items():
            copies = msgspec.json.decode(
                await client.get(f"/api/v1/{plural}", query=[("labelSelector", self.copies_selector)])
            )
            for item in copies.get("items", []):
                meta = item.get("metadata", {})
                if (meta.get("namespace"), kind, meta.get("name")) in needed:
                    continue
                if _younger_than(meta, ORPHAN_MIN_AGE) and not everything:
                    too_young = True
                    continue
                with contextlib.suppress(ApiError):
                    await client.request(
                        "DELETE", f"/api/v1/namespaces/{meta.get('namespace')}/{plural}/{meta.get('name')}"
                    )
                    removed += 1
                    unused += 1
        if orphans and not everything:
            log.info("orphan sweep removed %d delegates whose home pod is gone from %s", orphans, peer)
            self.metrics.count_orphans(peer, orphans)
        if unused and not everything:
            log.info("removed %d copied ConfigMaps and Secrets no delegate uses any more from %s", unused, peer)
            self.metrics.count_unused_copies(peer, unused)
        if too_young:
            self.sweep_soon(peer, delay=ORPHAN_MIN_AGE)
        return removed

    def sweep_soon(self, peer: str, delay: float = 2.0) -> None:
        """Soon after delegates go, collect the copies only they needed (debounced per peer)."""
        if peer in self._soon:
            return

        async def later() -> None:
            try:
                await asyncio.sleep(delay)
            finally:
                self._soon.discard(peer)
            try:
                await self.sweep(peer)
            except Exception as exc:
                log.warning("orphan sweep of %s failed: %s", peer, exc)

        if self.reactions.spawn(later(), f"sweep-{peer}"):
            self._soon.add(peer)
