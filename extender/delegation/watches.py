"""The watches behind delegation, on every replica: for each joined peer, this home's delegates
in that peer and the home pods bound to its virtual node: the proxies, and the pods Spillover did
not prepare (no marker resource: a DaemonSet's that tolerates every taint), which are no proxies.

The handlers are the only writers of the shared state (``delegation.view``); after each change
they tell the controllers concerned, which act only while this replica leads.
"""

from __future__ import annotations

import time

from extender import labels
from extender.delegation import delegate_spec
from extender.delegation.adoption import adopt_until_done
from extender.delegation.copy_keeper import CopyKeeper
from extender.delegation.lifecycle import Lifecycle
from extender.delegation.mirror import StatusMirror
from extender.delegation.node_loss import NodeLossTolerations
from extender.delegation.sweep import OrphanSweeper
from extender.delegation.view import Delegate, DelegatePod, Delegations, PeerDelegates, Proxy, proxy_from
from extender.kube.api import PODS, WatchApi
from extender.kube.reflector import Handler, Reflector
from extender.marker import has_marker
from extender.peers.directory import PeerRuntime
from extender.peers.registry import PeerWork
from extender.wire.core import ProxyPod


class DelegationWatches:
    """The registry's ``PeerWatcher`` for delegation."""

    def __init__(
        self,
        home: WatchApi,
        state: Delegations,
        mirror: StatusMirror,
        lifecycle: Lifecycle,
        sweeper: OrphanSweeper,
        tolerations: NodeLossTolerations,
        copies: CopyKeeper,
        home_cluster: str,
    ) -> None:
        self.home = home
        self.state = state
        self.mirror = mirror
        self.lifecycle = lifecycle
        self.sweeper = sweeper
        self.tolerations = tolerations
        self.copies = copies
        self.home_cluster = home_cluster
        self.delegates_selector = delegate_spec.delegates_selector(home_cluster)

    def peer_started(self, runtime: PeerRuntime) -> PeerWork:
        name = runtime.state.name
        entry = PeerDelegates(runtime)
        entry.reflector = Reflector(
            runtime.raw,
            PODS.collection(),
            DelegatePod,
            _DelegateHandler(self, name),
            query=[("labelSelector", self.delegates_selector)],
            name=f"{name}/delegates",
        )
        # Proxies are the home pods bound to the peer's virtual node: no label to write on them
        # (one home write less per spilled pod), and the Binding carries their annotations.
        entry.proxy_reflector = Reflector(
            self.home,
            PODS.collection(),
            ProxyPod,
            _ProxyHandler(self, name),
            query=[("fieldSelector", f"spec.nodeName={runtime.state.virtual_node}")],
            name=f"home/proxies-on-{runtime.state.virtual_node}",
        )
        self.state.peers[name] = entry
        tasks = [("delegates", entry.reflector.run()), ("proxies", entry.proxy_reflector.run())]
        if self.home_cluster:
            tasks.append(("adopt", adopt_until_done(self.home, runtime, self.home_cluster)))
        return PeerWork(peer_reflectors=[entry.reflector], tasks=tasks)

    # ---- what the handlers call -----------------------------------------------------------
    def proxy_changed(self, proxy: Proxy) -> None:
        if proxy.deleting:
            self.lifecycle.proxy_deleting(proxy)
        elif proxy.peer:
            self.mirror.changed(proxy.peer, proxy.uid)
            self.tolerations.changed(proxy)

    def proxy_gone(self, proxy: Proxy) -> None:
        self.state.forget(proxy.uid)
        self.lifecycle.proxy_gone(proxy)

    def unprepared_changed(self, pod: Proxy) -> None:
        """A pod Spillover did not prepare is on a virtual node: no proxy, only told why."""
        old = self.state.unprepared.get(pod.uid)
        if old is not None:
            pod.deleting_since = old.deleting_since
        self.state.unprepared[pod.uid] = pod
        self.lifecycle.unprepared_bound(pod)

    def unprepared_gone(self, uid: str) -> None:
        self.state.unprepared.pop(uid, None)
        self.lifecycle.unprepared_gone(uid)

    def delegate_changed(self, peer: str, item: DelegatePod) -> None:
        entry = self.state.peers.get(peer)
        uid = (item.metadata.labels or {}).get(labels.PROXY_UID, "")
        if entry is None or not uid:
            return
        self.copies.delegate_seen(peer, item.metadata)
        status = item.status or {}
        previous = entry.by_proxy.get(uid)
        # Pending and not scheduled there, for whatever reason (no room, cordoned nodes, no
        # scheduler answering): the peer is not running it, so the clock for withdrawal runs.
        unschedulable = status.get("phase", "Pending") == "Pending" and not any(
            c.get("type") == "PodScheduled" and c.get("status") == "True" for c in status.get("conditions") or ()
        )
        since = None
        if unschedulable:
            since = previous.unschedulable_since if previous and previous.unschedulable_since else time.monotonic()
        entry.by_proxy[uid] = Delegate(
            namespace=item.metadata.namespace,
            name=item.metadata.name,
            proxy_uid=uid,
            status=status,
            seen_at=previous.seen_at if previous else time.monotonic(),
            unschedulable_since=since,
        )
        self.mirror.changed(peer, uid)

    def delegate_gone(self, peer: str, item: DelegatePod) -> None:
        entry = self.state.peers.get(peer)
        uid = (item.metadata.labels or {}).get(labels.PROXY_UID, "")
        if entry is None or not uid:
            return
        self.copies.delegate_gone(peer, item.metadata)
        entry.by_proxy.pop(uid, None)
        self.sweeper.sweep_soon(peer)
        self.lifecycle.delegate_gone(peer, uid)


class _ProxyHandler(Handler[ProxyPod]):
    """The proxies of one peer; all peers' proxies share ``Delegations.proxies`` (by UID)."""

    def __init__(self, watches: DelegationWatches, peer: str) -> None:
        self.w = watches
        self.proxies = watches.state.proxies
        self.peer = peer

    def replace(self, items: list[ProxyPod]) -> None:
        fresh = {p.metadata.uid: proxy_from(p, self.peer) for p in items if has_marker(p)}
        for uid, proxy in list(self.proxies.items()):
            if proxy.peer == self.peer and uid not in fresh:
                del self.proxies[uid]  # gone while unwatched: the orphan sweep collects its delegate
        self.proxies.update(fresh)
        for proxy in fresh.values():
            self.w.proxy_changed(proxy)
        listed = {p.metadata.uid for p in items}
        for uid, pod in list(self.w.state.unprepared.items()):
            if pod.peer == self.peer and uid not in listed:
                self.w.unprepared_gone(uid)
        for item in items:
            if not has_marker(item):
                self.w.unprepared_changed(proxy_from(item, self.peer))

    def upsert(self, item: ProxyPod) -> None:
        if not has_marker(item):  # not Spillover's to run (its resources never change: no pod turns into one)
            self.w.unprepared_changed(proxy_from(item, self.peer))
            return
        proxy = proxy_from(item, self.peer)
        old = self.proxies.get(proxy.uid)
        if old is not None:
            proxy.deleting_since = proxy.deleting_since or old.deleting_since
            proxy.missing_since = old.missing_since
        self.proxies[proxy.uid] = proxy
        self.w.proxy_changed(proxy)

    def delete(self, item: ProxyPod) -> None:
        if not has_marker(item):
            self.w.unprepared_gone(item.metadata.uid)
            return
        proxy = self.proxies.pop(item.metadata.uid, None) or proxy_from(item, self.peer)
        self.w.proxy_gone(proxy)


class _DelegateHandler(Handler[DelegatePod]):
    def __init__(self, watches: DelegationWatches, peer: str) -> None:
        self.w = watches
        self.peer = peer

    def replace(self, items: list[DelegatePod]) -> None:
        entry = self.w.state.peers.get(self.peer)
        if entry is None:
            return
        entry.by_proxy = {}
        self.w.copies.delegates_listed(self.peer, [item.metadata for item in items])
        for item in items:
            self.upsert(item)
        self.w.sweeper.sweep_soon(self.peer)  # at start and whenever the peer comes back

    def upsert(self, item: DelegatePod) -> None:
        self.w.delegate_changed(self.peer, item)

    def delete(self, item: DelegatePod) -> None:
        self.w.delegate_gone(self.peer, item)
