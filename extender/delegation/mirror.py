"""The status mirror: each delegate's phase, conditions, IPs and container statuses onto its proxy.

Leader-only. Watch events put (peer, proxy UID) on a work queue; a worker writes the delegate's
mirrored status when it differs from what was last written. A burst of spilled pods turns
Running together, so many workers write at once, but never two on one proxy.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from extender.capacity.model import PeerState
from extender.delegation import delegate_spec
from extender.delegation.view import Delegate, DelegationView, Proxy
from extender.delegation.writer import ProxyWriter
from extender.kube.events import EventSink
from extender.kube.tasks import every
from extender.kube.workqueue import WorkQueue
from extender.peers.virtual_node import node_ready

MIRROR_WORKERS = 64
"""Concurrent proxy status writes; a burst of spilled pods turns Running together."""
PENDING_MIRROR_DELAY = 2.0
"""A delegate usually runs within a second of being created; its passing Pending status is
mirrored only if it lasts this long: one home write less per spilled pod in a burst, when the
home apiserver is busiest (Running, Failed and a Pending that lasts are written at once)."""
RESTORE_DELAY = 5.0
"""Seconds after a virtual node is Ready again before its proxies' Ready conditions are restored."""
RESTORE_EVERY = 10.0
"""At most one restoring write per proxy this often (see StatusMirror._readiness_lost)."""


class StatusMirror:
    def __init__(self, view: DelegationView, writer: ProxyWriter, events: EventSink) -> None:
        self.view = view
        self.writer = writer
        self.events = events
        self.queue: WorkQueue[tuple[str, str]] = WorkQueue("status-mirror")
        self._node_ready: dict[str, bool] = {}
        """Each peer's virtual node Ready as last checked (back to Ready restores its pods')."""

    def changed(self, peer: str, uid: str) -> None:
        """The proxy or its delegate changed: mirror it (when leading)."""
        self.queue.add((peer, uid))

    async def lead(self) -> None:
        everything = [(proxy.peer, uid) for uid, proxy in self.view.proxies.items() if proxy.peer]
        self._node_ready.clear()
        await asyncio.gather(
            self.queue.run(self.sync, MIRROR_WORKERS, first=everything),
            every(1.0, self._nodes_ready_again, "virtual nodes' readiness not checked"),
        )

    async def _nodes_ready_again(self) -> None:
        """A peer's virtual node Ready again: look at its proxies' readiness RESTORE_DELAY later
        (by then the node-lifecycle controller has seen the node Ready, and leaves them be)."""
        for peer, entry in self.view.peers.items():
            ready = node_ready(entry.runtime.state)
            if ready and not self._node_ready.get(peer, False):
                for proxy in self.view.proxies_on(peer):
                    self.queue.add_after((peer, proxy.uid), RESTORE_DELAY)
            self._node_ready[peer] = ready

    def _readiness_lost(self, proxy: Proxy, status: dict[str, Any], state: PeerState) -> bool:
        """The proxy shows Ready False while its delegate is ready: the node-lifecycle controller
        marked it so (pkg/controller/nodelifecycle monitorNodeHealth, MarkPodsNotReady) when the
        virtual node went Unknown, its Lease not renewed while Spillover could not reach home,
        or when that controller restarted (or a pod was bound) while the node was not Ready.
        Written back only once the node is Ready again, and at most once per RESTORE_EVERY a
        proxy, so Spillover and that controller never take turns writing it."""
        wanted = next((c.get("status") for c in status.get("conditions") or () if c.get("type") == "Ready"), None)
        if wanted != "True" or proxy.ready in ("True", "") or not node_ready(state):
            return False
        notes = self.view.notes(proxy.uid)
        since = time.monotonic() - notes.restored_at
        if since < RESTORE_EVERY:
            self.queue.add_after((proxy.peer, proxy.uid), RESTORE_EVERY - since)
            return False
        notes.restored_at = time.monotonic()
        return True

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
        if not status or (notes.mirrored == status and not self._readiness_lost(proxy, status, entry.runtime.state)):
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
