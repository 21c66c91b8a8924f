"""Every write about a proxy and its delegate that more than one controller makes.

The proxy's status has one writer per proxy (the mirror and the failures alike, under the
proxy's lock), so the last word is the latest: a Running read before a failure is never
written after it. A failed proxy tells the truth (Failed, with why) and, when a controller owns
it, is deleted so that controller recreates it elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Protocol

from extender.delegation.view import DelegationView, Proxy
from extender.kube.api import PODS, Api, PatchType, delete_options
from extender.kube.events import EventSink
from extender.kube.raw import ApiError

log = logging.getLogger("spillover.delegator")


class DelegationMetrics(Protocol):
    def count_lost(self, peer: str, reason: str) -> None:
        """A spilled pod failed (or recreated elsewhere) by Spillover, by the reason on its Event."""

    def count_orphans(self, peer: str, removed: int) -> None:
        """Delegates the orphan sweep deleted in a peer because their home pod was gone."""

    def count_unused_copies(self, peer: str, removed: int) -> None:
        """Copied ConfigMaps and Secrets deleted in a peer because no delegate used them any more."""


class ProxyWriter:
    def __init__(self, home: Api, view: DelegationView, events: EventSink, metrics: DelegationMetrics) -> None:
        self.home = home
        self.view = view
        self.events = events
        self.metrics = metrics

    async def mirror(self, proxy: Proxy, status: dict[str, Any]) -> bool:
        """Write the delegate's status onto the proxy, unless the proxy was failed meanwhile."""
        notes = self.view.notes(proxy.uid)
        async with notes.lock:
            if notes.lost:  # failed meanwhile: a status read before that must not undo it
                return False
            await self._write_status(proxy, status)
            notes.mirrored = status
        return True

    async def _write_status(self, proxy: Proxy, status: dict[str, Any]) -> None:
        """Under the proxy's lock: the mirror and the failures share this one writer."""
        path = PODS.item(proxy.name, proxy.namespace, "status")
        await self.home.request("PATCH", path, {"status": status}, content_type=PatchType.MERGE)

    async def delegate_lost(self, proxy: Proxy, reason: str, message: str, mirror: bool = True) -> None:
        """The proxy tells the truth (Failed, with why); a controller-owned one is recreated."""
        self.metrics.count_lost(proxy.peer, reason)
        if mirror:
            status = {"phase": "Failed", "reason": reason, "message": message}
            notes = self.view.notes(proxy.uid)
            notes.lost = True  # before the lock: a mirror write not yet started stays out
            async with notes.lock:
                with contextlib.suppress(ApiError):
                    await self._write_status(proxy, status)
            self.events.record(proxy.ref(), reason, message, warning=True)
        if proxy.controlled:
            await self.force_delete_proxy(proxy, reason)

    async def force_delete_proxy(self, proxy: Proxy, why: str) -> None:
        body = delete_options(grace=0, uid=proxy.uid)
        try:
            await self.home.request("DELETE", PODS.item(proxy.name, proxy.namespace), body)
            log.info("proxy deleted", extra={"pod": f"{proxy.namespace}/{proxy.name}", "uid": proxy.uid, "why": why})
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("could not delete proxy %s/%s: %s", proxy.namespace, proxy.name, exc)

    async def delete_delegate(self, client: Api, namespace: str, name: str, grace: int | None) -> bool:
        """Delete a delegate in its peer (``grace`` None: the pod's own); False if it was gone."""
        try:
            await client.request("DELETE", PODS.item(name, namespace), delete_options(grace=grace))
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def remove_delegate_of(self, proxy: Proxy, grace: int | None) -> None:
        entry = self.view.peers.get(proxy.peer)
        delegate = entry.by_proxy.get(proxy.uid) if entry else None
        if entry is None or delegate is None:
            return
        with contextlib.suppress(Exception):
            await self.delete_delegate(entry.runtime.raw, delegate.namespace, delegate.name, grace)
