"""The orphan sweep, leader-only: what Spillover made in a peer that nothing will use any more.

A delegate whose proxy is gone (or bound elsewhere: a bind cut off after creating it, then
retried to another peer or home), and a copied ConfigMap or Secret no delegate lists, is
deleted. Each peer is swept every ``orphan_sweep_seconds``, and soon after its delegates go or
its watch re-lists. Only this home's objects are looked at: a peer may be shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from extender import labels
from extender.delegation import delegate_spec
from extender.delegation.view import DelegationView
from extender.delegation.writer import DelegationMetrics, ProxyWriter
from extender.kube.api import PODS, decode_list
from extender.kube.raw import ApiError
from extender.kube.tasks import TaskSet
from extender.kube.times import age_seconds
from extender.wire.core import ObjectMeta

log = logging.getLogger("spillover.delegator")
ORPHAN_MIN_AGE = 30.0
"""A delegate younger than this is never swept: its bind may still be in flight (its proxy only
becomes visible once bound to the virtual node)."""


def _younger_than(meta: ObjectMeta, seconds: float) -> bool:
    age = age_seconds(meta.creation_timestamp)
    return age is not None and age < seconds


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
        listed = decode_list(await client.get(PODS.collection(), query=[("labelSelector", self.delegates_selector)]))
        for item in listed:
            meta = item.metadata
            uid = (meta.labels or {}).get(labels.PROXY_UID, "")
            proxy = self.view.proxies.get(uid)
            # Its proxy is gone, or bound somewhere else (a bind cut off after creating this
            # delegate, then retried to another peer or home): nothing will ever use it.
            bound_elsewhere = proxy is not None and proxy.node_name not in (None, "", virtual_node)
            if everything:
                if not meta.deletion_timestamp:
                    await self.writer.delete_delegate(client, meta.namespace, meta.name, grace=None)
                removed += 1
                continue
            terminating = bool(meta.deletion_timestamp)  # its proxy's deletion deleted it: not an orphan
            if (proxy is None or bound_elsewhere) and not terminating:
                if _younger_than(meta, ORPHAN_MIN_AGE):
                    too_young = True
                else:
                    await self.writer.delete_delegate(client, meta.namespace, meta.name, grace=0)
                    removed += 1
                    orphans += 1
                    continue
            for kind, name in delegate_spec.needed_by(meta.annotations):
                needed.add((meta.namespace, kind, name))
        for kind, resource in delegate_spec.COPIED.items():
            copies = decode_list(
                await client.get(resource.collection(), query=[("labelSelector", self.copies_selector)])
            )
            for item in copies:
                meta = item.metadata
                if (meta.namespace, kind, meta.name) in needed:
                    continue
                if _younger_than(meta, ORPHAN_MIN_AGE) and not everything:
                    too_young = True
                    continue
                with contextlib.suppress(ApiError):
                    await client.request("DELETE", resource.item(meta.name, meta.namespace))
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
