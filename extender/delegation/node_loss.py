"""Spilled pods outlive a Spillover outage, leader-only: each proxy is made to tolerate node loss
for ever (``delegation.tolerations`` says why and how), right after its bind.

The proxy watch shows a pod bound by Spillover that lacks it; the patch is written DELAY later,
PARALLEL at a time: a burst's Bindings and first status writes go first (eviction is minutes
away, not seconds), and it is one home write per spilled pod, off the scheduling path.
"""

from __future__ import annotations

import logging

from extender.delegation.view import DelegationView, Proxy
from extender.kube.api import PODS, Api, PatchType
from extender.kube.raw import ApiError
from extender.kube.workqueue import WorkQueue

log = logging.getLogger("spillover.nodeloss")
DELAY = 2.0
"""Seconds after a proxy is seen bound before it is patched."""
PARALLEL = 4
RETRY = 30.0
"""Seconds before a patch that failed is tried again (its pod changing brings it back sooner)."""


class NodeLossTolerations:
    def __init__(self, home: Api, view: DelegationView, delay: float = DELAY) -> None:
        self.home = home
        self.view = view
        self.delay = delay
        self.queue: WorkQueue[str] = WorkQueue("node-loss-tolerations")
        self.patched = 0

    def changed(self, proxy: Proxy) -> None:
        """A proxy the watches show (while leading, one lacking the toleration is queued)."""
        if proxy.node_loss_patch and not proxy.deleting:
            self.queue.add_after(proxy.uid, self.delay)

    async def lead(self) -> None:
        lacking = [uid for uid, proxy in self.view.proxies.items() if proxy.node_loss_patch and not proxy.deleting]
        await self.queue.run(self.sync, PARALLEL, first=lacking)

    async def sync(self, uid: str) -> None:
        proxy = self.view.proxies.get(uid)
        if proxy is None or proxy.deleting or not proxy.node_loss_patch:
            return
        path = PODS.item(proxy.name, proxy.namespace)
        try:
            await self.home.request("PATCH", path, proxy.node_loss_patch, content_type=PatchType.JSON)
        except Exception as exc:
            if isinstance(exc, ApiError) and exc.status == 404:
                return
            # A test that failed (the pod changed: its watch event brings it back at once), or
            # the apiserver unavailable: tried again later, not in a loop.
            log.warning("%s/%s not made to tolerate node loss yet: %s", proxy.namespace, proxy.name, exc)
            self.queue.add_after(uid, RETRY)
            return
        self.patched += 1
