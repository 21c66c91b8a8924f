"""The status mirror: each delegate's phase, conditions, IPs and container statuses onto its proxy.

Leader-only. Watch events put (peer, proxy UID) on a work queue; a worker writes the delegate's
mirrored status when it differs from what was last written. A burst of spilled pods turns
Running together, so many workers write at once, but never two on one proxy.
"""

from __future__ import annotations

import time

from extender.delegation import delegate_spec
from extender.delegation.view import Delegate, DelegationView, Proxy
from extender.delegation.writer import ProxyWriter
from extender.kube.events import EventSink
from extender.kube.workqueue import WorkQueue

MIRROR_WORKERS = 64
"""Concurrent proxy status writes; a burst of spilled pods turns Running together."""
PENDING_MIRROR_DELAY = 2.0
"""A delegate usually runs within a second of being created; its passing Pending status is
mirrored only if it lasts this long: one home write less per spilled pod in a burst, when the
home apiserver is busiest (Running, Failed and a Pending that lasts are written at once)."""


class StatusMirror:
    def __init__(self, view: DelegationView, writer: ProxyWriter, events: EventSink) -> None:
        self.view = view
        self.writer = writer
        self.events = events
        self.queue: WorkQueue[tuple[str, str]] = WorkQueue("status-mirror")

    def changed(self, peer: str, uid: str) -> None:
        """The proxy or its delegate changed: mirror it (when leading)."""
        self.queue.add((peer, uid))

    async def lead(self) -> None:
        everything = [(proxy.peer, uid) for uid, proxy in self.view.proxies.items() if proxy.peer]
        await self.queue.run(self.sync, MIRROR_WORKERS, first=everything)

    async def sync(self, key: tuple[str, str]) -> None:
        peer, uid = key
        proxy = self.view.proxies.get(uid)
        entry = self.view.peers.get(peer)
        if proxy is None or entry is None or proxy.deleting or not proxy.node_name:
            return
        delegate = entry.by_proxy.get(uid)
        if delegate is None:
            return
        status = delegate_spec.mirrored_status(delegate.status)
        notes = self.view.notes(uid)
        if not status or notes.mirrored == status:
            return
        if status.get("phase") == "Pending" and notes.mirrored is None:
            waited = time.monotonic() - delegate.seen_at
            if waited < PENDING_MIRROR_DELAY:
                self.queue.add_after(key, PENDING_MIRROR_DELAY - waited)
                return
        before = (notes.mirrored or {}).get("phase")
        if not await self.writer.mirror(proxy, status):
            return
        phase = status.get("phase")
        if phase != before:
            self._phase_event(proxy, peer, delegate, phase)
        if phase == "Failed":
            await self.writer.delegate_lost(
                proxy,
                "DelegateFailed",
                f"the delegate failed in peer {peer}: {status.get('reason', '')} {status.get('message', '')}".strip(),
                mirror=False,
            )

    def _phase_event(self, proxy: Proxy, peer: str, delegate: Delegate, phase: str | None) -> None:
        where = f"{delegate.namespace}/{delegate.name} in peer {peer}"
        if phase == "Running":
            self.events.record(proxy.ref(), "DelegateRunning", f"Delegate {where} is running")
        elif phase == "Failed":
            reason = delegate.status.get("reason", "")
            self.events.record(
                proxy.ref(),
                "DelegateEvicted" if reason == "Evicted" else "DelegateFailed",
                f"Delegate {where} failed: {reason} {delegate.status.get('message', '')}".strip(),
                warning=True,
            )
        elif phase == "Succeeded":
            self.events.record(proxy.ref(), "DelegateSucceeded", f"Delegate {where} completed")
