"""The lifecycle of spilled pods after their bind, leader-only: every case where the proxy and its
delegate drift apart, and how it is settled.

- A proxy deleted in home: its delegate is deleted with the same grace, then the proxy itself
  (no kubelet finalises a pod on a virtual node); a deletion stuck past its grace is forced.
- A proxy gone: its delegate goes. A delegate gone under a live proxy: the proxy is failed.
- A delegate unschedulable in its peer for too long: withdrawn, its pod failed (and recreated by
  its controller), that peer avoided by the workload for a while.
- A proxy bound to a virtual node with no delegate in that peer for a while: failed.
- A peer unreachable past its grace period: its controller-owned pods are recreated elsewhere.
- A pod Spillover did not prepare, bound to a virtual node (a DaemonSet's pod that tolerates
  every taint, bound there by the default binder): never failed (its DaemonSet would recreate it,
  forever), told once why it does not run; only a deletion its owner asked for is confirmed.
"""

from __future__ import annotations

import logging
import time

from extender import labels
from extender.delegation import delegate_spec
from extender.delegation.avoid import AvoidList
from extender.delegation.view import DelegationView, PeerDelegates, Proxy
from extender.delegation.writer import DelegationMetrics, ProxyWriter
from extender.kube.api import PODS, Api, decode_list
from extender.kube.events import EventSink
from extender.kube.raw import ApiError
from extender.kube.tasks import TaskSet, every
from extender.peers.directory import PeerDirectory
from extender.resources import SPILLABLE
from extender.wire.core import pod_decoder

log = logging.getLogger("spillover.delegator")
CHECK_EVERY = 1.0
STUCK_DELETION_SLACK = 30.0
"""Seconds past the grace period after which a proxy is finalised even if its delegate lingers."""
MISSING_DELEGATE_SECONDS = 30.0
"""A proxy bound to a virtual node this long with no delegate in that peer is failed (and, if a
controller owns it, recreated): a bind cut off at the wrong moment must not leave it Pending forever."""
NOT_PREPARED = "NotPreparedBySpillover"
"""The reason of the Warning Event on a pod bound to a virtual node that Spillover did not prepare."""


class Lifecycle:
    def __init__(
        self,
        home: Api,
        view: DelegationView,
        writer: ProxyWriter,
        events: EventSink,
        metrics: DelegationMetrics,
        avoid: AvoidList,
        directory: PeerDirectory,
        home_cluster: str,
        remote_pending_timeout: float,
    ) -> None:
        self.home = home
        self.view = view
        self.writer = writer
        self.events = events
        self.metrics = metrics
        self.avoid = avoid
        self.directory = directory
        self.delegates_selector = delegate_spec.delegates_selector(home_cluster)
        self.remote_pending_timeout = remote_pending_timeout
        self.reactions = TaskSet("lifecycle", accepting=False)
        """What watch events start; taken only while leading (``lead`` catches up on the rest)."""
        self.told_unprepared: set[str] = set()
        """UIDs of the unprepared pods told why they do not run (once each)."""

    # ---- reactions to watch events (synchronous: schedule the async work) -------------
    def proxy_deleting(self, proxy: Proxy) -> None:
        if proxy.deleting_since is None:
            self.reactions.spawn(self._finalise_once(proxy.uid), f"finalise-{proxy.uid}")

    def proxy_gone(self, proxy: Proxy) -> None:
        self.reactions.spawn(self.writer.remove_delegate_of(proxy, grace=0), f"remove-delegate-{proxy.uid}")

    def delegate_gone(self, peer: str, uid: str) -> None:
        self.reactions.spawn(self._after_delegate_gone(peer, uid), f"delegate-gone-{uid}")

    def unprepared_bound(self, pod: Proxy) -> None:
        self.reactions.spawn(self._settle_unprepared(pod.uid), f"unprepared-{pod.uid}")

    def unprepared_gone(self, uid: str) -> None:
        self.told_unprepared.discard(uid)

    async def lead(self) -> None:
        """Act on every proxy the watches show deleted, then check the rest every second."""
        async with self.reactions.open():
            for proxy in list(self.view.proxies.values()):
                if proxy.deleting:
                    self.proxy_deleting(proxy)
            for pod in list(self.view.unprepared.values()):
                self.unprepared_bound(pod)
            await every(CHECK_EVERY, self.check, "delegation check failed")

    async def check(self) -> None:
        """One pass of the periodic checks."""
        await self._check_remote_pending()
        await self._check_missing_delegates()
        await self._check_lost_peers()
        await self._check_stuck_deletions()

    async def _finalise_once(self, uid: str) -> None:
        proxy = self.view.proxies.get(uid)  # the latest: several events may have raced here
        if proxy is None or not proxy.deleting or proxy.deleting_since is not None:
            return
        proxy.deleting_since = time.monotonic()
        await self._finalise_proxy(proxy)

    async def _settle_unprepared(self, uid: str) -> None:
        """Leave it be, and say why once. No kubelet confirms a deletion on a virtual node, so one
        its owner asked for (a DaemonSet given the affinity below lets go of it) is confirmed here,
        as a kubelet would for a pod that never started; it would hang Terminating otherwise."""
        pod = self.view.unprepared.get(uid)
        if pod is None:
            return
        if pod.deleting:
            if pod.deleting_since is None:
                pod.deleting_since = time.monotonic()
                await self.writer.force_delete_proxy(pod, "deleted; it never ran (not prepared by Spillover)")
            return
        if uid in self.told_unprepared:
            return
        self.told_unprepared.add(uid)
        self.events.record(
            pod.ref(),
            NOT_PREPARED,
            f"bound to virtual node {pod.node_name} (peer {pod.peer}), which runs only the pods Spillover prepared "
            f"(its webhook gives pods of namespaces labelled {labels.ENABLED}=true the {SPILLABLE} resource); this "
            f"pod has none, so it does not run, and Spillover leaves it alone. It was bound there by someone else: "
            f"a DaemonSet whose pods tolerate every taint gets one on each virtual node. Keep it off them with a "
            f"required node affinity {{key: {labels.VIRTUAL}, operator: DoesNotExist}} in the DaemonSet's pod template",
            warning=True,
        )

    async def _after_delegate_gone(self, peer: str, uid: str) -> None:
        proxy = self.view.proxies.get(uid)
        if proxy is None:
            return
        if proxy.deleting:
            await self.writer.force_delete_proxy(proxy, "delegate gone after proxy deletion")
            return
        if self.view.notes(uid).lost:
            return  # already failed, with the reason that removed its delegate
        await self.writer.delegate_lost(proxy, "DelegateDeleted", f"the delegate was deleted in peer {peer}")

    async def _finalise_proxy(self, proxy: Proxy) -> None:
        """Proxy deleted in home: delete the delegate with the same grace, then the proxy itself."""
        entry = self.view.peers.get(proxy.peer)
        delegate = entry.by_proxy.get(proxy.uid) if entry else None
        if entry is None or delegate is None:
            await self.writer.force_delete_proxy(proxy, "deleted; no delegate")
            return
        try:
            existed = await self.writer.delete_delegate(
                entry.runtime.raw, delegate.namespace, delegate.name, proxy.grace
            )
        except Exception as exc:
            log.warning(
                "delegate of %s/%s not deleted yet (%s); finalising the proxy, the sweep will collect it",
                proxy.namespace,
                proxy.name,
                exc,
            )
            existed = False
        if not existed:
            await self.writer.force_delete_proxy(proxy, "deleted; delegate already gone")
        # Otherwise the delegate's DELETED event finalises the proxy (see _after_delegate_gone).

    # ---- periodic: remote-pending withdrawal, missing delegates, peer-loss failover, stuck deletions
    async def _check_remote_pending(self) -> None:
        now = time.monotonic()
        for peer, entry in list(self.view.peers.items()):
            for uid, delegate in list(entry.by_proxy.items()):
                since = delegate.unschedulable_since
                if since is None or now - since < self.remote_pending_timeout:
                    continue
                proxy = self.view.proxies.get(uid)
                delegate.unschedulable_since = None
                message = (
                    f"the delegate stayed unschedulable in peer {peer} for over "
                    f"{self.remote_pending_timeout:g}s; withdrawn, and {peer} is avoided for this workload "
                    f"for {self.avoid.seconds:g}s"
                )
                if proxy is not None:
                    for owner in await self._owner_uids(proxy):
                        self.avoid.avoid(owner, peer, message)
                await self.writer.delete_delegate(entry.runtime.raw, delegate.namespace, delegate.name, grace=0)
                if proxy is not None:
                    await self.writer.delegate_lost(proxy, "RemotePending", message)

    async def _check_missing_delegates(self) -> None:
        """Fail proxies bound to a healthy, synced peer that has had no delegate for them for a while."""
        now = time.monotonic()
        for proxy in list(self.view.proxies.values()):
            entry = self.view.peers.get(proxy.peer)
            if entry is None or proxy.deleting or proxy.finished or proxy.uid in entry.by_proxy:
                proxy.missing_since = None
                continue
            if not entry.delegates_synced() or not entry.runtime.state.reachable:
                continue
            if proxy.missing_since is None:
                proxy.missing_since = now
            elif now - proxy.missing_since >= MISSING_DELEGATE_SECONDS:
                proxy.missing_since = None
                if await self._delegate_exists(entry, proxy.uid):
                    continue  # the watch is behind (a reconnect), not the peer
                await self.writer.delegate_lost(
                    proxy,
                    "DelegateMissing",
                    f"bound to peer {proxy.peer} for over {MISSING_DELEGATE_SECONDS:g}s but no delegate exists there "
                    "(a bind cut off after its delegate was removed)",
                )

    async def _delegate_exists(self, entry: PeerDelegates, proxy_uid: str) -> bool:
        """Ask the peer itself before failing a pod on the watch's word (True when unsure)."""
        selector = f"{self.delegates_selector},{labels.PROXY_UID}={proxy_uid}"
        try:
            listed = decode_list(await entry.runtime.raw.get(PODS.collection(), query=[("labelSelector", selector)]))
        except Exception as exc:
            log.info("could not check for the delegate of %s: %s", proxy_uid, exc)
            return True
        return bool(listed)

    async def _owner_uids(self, proxy: Proxy) -> list[str]:
        try:
            pod = pod_decoder.decode(await self.home.get(PODS.item(proxy.name, proxy.namespace)))
        except ApiError:
            return []
        return [ref.uid for ref in pod.metadata.owner_references or () if ref.controller]

    async def _check_lost_peers(self) -> None:
        for peer, entry in list(self.view.peers.items()):
            state = entry.runtime.state
            lost_for = state.unreachable_for()
            grace = self.directory.grace_period(peer)
            if lost_for is None or lost_for < grace:
                continue
            for proxy in list(self.view.proxies.values()):
                if proxy.peer != peer or proxy.deleting or not proxy.node_name:
                    continue
                if not proxy.controlled or proxy.failover_never:
                    continue
                self.events.record(
                    proxy.ref(),
                    "PeerLost",
                    f"peer {peer} unreachable for {lost_for:.0f}s (grace {grace}s): recreating the pod elsewhere",
                    warning=True,
                )
                proxy.deleting = True
                self.metrics.count_lost(peer, "PeerLost")
                await self.writer.force_delete_proxy(proxy, f"peer {peer} lost")

    async def _check_stuck_deletions(self) -> None:
        now = time.monotonic()
        for proxy in list(self.view.proxies.values()):
            if proxy.deleting_since is None:
                continue
            if now - proxy.deleting_since > (proxy.grace or 0) + STUCK_DELETION_SLACK:
                await self.writer.force_delete_proxy(proxy, "delegate deletion did not finish in time")
