"""The delegator: creates delegates at bind, mirrors their status, and cleans up after them.

State is only what the watches show: proxy pods in home (the pods bound to each peer's
virtual node, watched by field selector) and delegates in every peer (label
spillover.io/proxy-uid). Every write is idempotent, so a restart
at any moment, or two attempts at the same thing, converge on one delegate per proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from cachetools import TTLCache

from extender import hints, labels, pod_security
from extender.capacity.model import PeerState
from extender.config import Config
from extender.delegation import delegate_spec
from extender.kube.events import EventRecorder
from extender.kube.leader import LeaderElector
from extender.kube.raw import ApiError, RawClient
from extender.kube.reflector import Handler, Reflector
from extender.peers.model import give_up_command
from extender.peers.registry import PeerRegistry, PeerRuntime
from extender.pod_security import Level
from extender.resources import QuantityError, Resources, pod_requests
from extender.scheduling.state import BindError, BindRefused
from extender.wire.core import ObjectMeta, Pod

log = logging.getLogger("spillover.delegator")
MERGE = "application/merge-patch+json"
DELEGATES = f"{labels.MANAGED_BY}={labels.MANAGED_BY_VALUE},{labels.PROXY_UID}"
"""Label selector of Spillover's delegate pods in a peer, of every home sharing it."""
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
MIRROR_WORKERS = 64
"""Concurrent proxy status writes; a burst of spilled pods turns Running together."""
STUCK_DELETION_SLACK = 30.0
"""Seconds past the grace period after which a proxy is finalised even if its delegate lingers."""
ORPHAN_MIN_AGE = 30.0
"""A delegate younger than this is never swept: its bind may still be in flight (its proxy only
becomes visible once bound to the virtual node)."""
PENDING_MIRROR_DELAY = 2.0
"""A delegate usually runs within a second of being created; its passing Pending status is
mirrored only if it lasts this long: one home write less per spilled pod in a burst, when the
home apiserver is busiest (Running, Failed and a Pending that lasts are written at once)."""
MISSING_DELEGATE_SECONDS = 30.0
"""A proxy bound to a virtual node this long with no delegate in that peer is failed (and, if a
controller owns it, recreated): a bind cut off at the wrong moment must not leave it Pending forever."""


def _younger_than(meta: dict[str, Any], seconds: float) -> bool:
    created = meta.get("creationTimestamp")
    if not created:
        return False
    try:
        when = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return False
    return (datetime.datetime.now(datetime.UTC) - when).total_seconds() < seconds


class DelegatePod(msgspec.Struct, rename="camel"):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    status: dict[str, Any] | None = None


@dataclass
class Proxy:
    uid: str
    namespace: str
    name: str
    peer: str
    node_name: str
    deleting: bool
    grace: int | None
    controlled: bool
    failover_never: bool
    phase: str = ""
    deleting_since: float | None = None
    missing_since: float | None = None
    """When it was first seen bound with no delegate in its peer (None: it has one)."""
    requests: Resources = field(default_factory=dict)
    """What the pod asks for (its price on the peer: extender.spend)."""

    def ref(self) -> dict[str, str]:
        return {"namespace": self.namespace, "name": self.name, "uid": self.uid}


@dataclass
class Delegate:
    namespace: str
    name: str
    proxy_uid: str
    status: dict[str, Any]
    seen_at: float
    unschedulable_since: float | None = None


@dataclass
class PeerDelegates:
    runtime: PeerRuntime
    by_proxy: dict[str, Delegate] = field(default_factory=dict)
    reflector: Reflector[DelegatePod] | None = None
    proxy_reflector: Reflector[Pod] | None = None
    """Home pods bound to this peer's virtual node."""
    known_namespaces: dict[str, Level] = field(default_factory=dict)
    """Peer namespaces checked fit for delegates, and the Pod Security level they enforce."""
    ensuring: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    """Namespace checks in flight: a burst of binds into a new namespace shares one."""


def _proxy_from(pod: Pod, peer: str) -> Proxy:
    meta = pod.metadata
    annotations = meta.annotations or {}
    return Proxy(
        uid=meta.uid,
        namespace=meta.namespace,
        name=meta.name,
        peer=peer,
        node_name=pod.spec.node_name,
        deleting=meta.deletion_timestamp is not None,
        grace=meta.deletion_grace_period_seconds,
        controlled=any(ref.controller for ref in meta.owner_references or ()),
        failover_never=annotations.get(hints.FAILOVER) == hints.Failover.NEVER.value,
        phase=pod.status.phase if pod.status else "",
        requests=_requests(pod),
    )


def _requests(pod: Pod) -> Resources:
    try:
        return pod_requests(pod)
    except QuantityError:  # the apiserver validated them; an unparsable one costs nothing here
        return {}


class _ProxyHandler(Handler[Pod]):
    """The proxies of one peer; all peers' proxies share ``Delegator.proxies`` (by UID)."""

    def __init__(self, delegator: Delegator, peer: str) -> None:
        self.d = delegator
        self.peer = peer

    def replace(self, items: list[Pod]) -> None:
        fresh = {p.metadata.uid: _proxy_from(p, self.peer) for p in items}
        for uid, proxy in list(self.d.proxies.items()):
            if proxy.peer == self.peer and uid not in fresh:
                del self.d.proxies[uid]  # gone while unwatched: the orphan sweep collects its delegate
        self.d.proxies.update(fresh)
        for proxy in fresh.values():
            self.d.proxy_changed(proxy)

    def upsert(self, item: Pod) -> None:
        proxy = _proxy_from(item, self.peer)
        old = self.d.proxies.get(proxy.uid)
        if old is not None:
            proxy.deleting_since = proxy.deleting_since or old.deleting_since
            proxy.missing_since = old.missing_since
        self.d.proxies[proxy.uid] = proxy
        self.d.proxy_changed(proxy)

    def delete(self, item: Pod) -> None:
        proxy = self.d.proxies.pop(item.metadata.uid, None) or _proxy_from(item, self.peer)
        self.d.proxy_gone(proxy)


class _DelegateHandler(Handler[DelegatePod]):
    def __init__(self, delegator: Delegator, peer: str) -> None:
        self.d = delegator
        self.peer = peer

    def replace(self, items: list[DelegatePod]) -> None:
        entry = self.d.peers.get(self.peer)
        if entry is None:
            return
        entry.by_proxy = {}
        for item in items:
            self.upsert(item)
        self.d._schedule_sweep(self.peer)  # at start and whenever the peer comes back

    def upsert(self, item: DelegatePod) -> None:
        self.d.delegate_changed(self.peer, item)

    def delete(self, item: DelegatePod) -> None:
        self.d.delegate_gone(self.peer, item)


class Delegator:
    def __init__(self, home: RawClient, registry: PeerRegistry, config: Config, metrics: Any = None) -> None:
        self.home = home
        self.registry = registry
        self.config = config
        self.metrics = metrics
        self.home_cluster = config.cluster_id
        mine = f",{labels.HOME_CLUSTER}={config.cluster_id}" if config.cluster_id else ""
        self.delegates_selector = DELEGATES + mine
        """This home's delegates only: a peer may be shared, and another home's are not ours to touch."""
        self.copies_selector = f"{delegate_spec.COPY_LABEL}=true{mine}"
        self.events = EventRecorder(home)
        self.leader = LeaderElector(home, config.leader_election_namespace, config.leader_elect)
        self.proxies: dict[str, Proxy] = {}
        self.peers: dict[str, PeerDelegates] = {}
        self.avoid: TTLCache[tuple[str, str], str] = TTLCache(maxsize=100_000, ttl=config.avoid_peer_seconds)
        """(owner uid, peer) -> reason: peers a workload was withdrawn from, avoided for a while."""
        self._mirrored: dict[str, dict[str, Any]] = {}
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queued: set[tuple[str, str]] = set()
        self._active: set[tuple[str, str]] = set()
        """Proxies a worker is writing now: never two writers for one proxy."""
        self._dirty: set[tuple[str, str]] = set()
        """Proxies that changed while being written: queued again once that write is done."""
        self._lost: set[str] = set()
        """Proxies failed for good (delegate deleted, withdrawn, missing): no mirror write after that."""
        self._status_locks: dict[str, asyncio.Lock] = {}
        """One status writer per proxy, mirror and failure alike, so the last word is the latest."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweep_soon: set[str] = set()
        self._detached: set[str] = set()
        """Proxies already taken off a peer whose PeerCluster is being deleted."""

    # ---- wiring -------------------------------------------------------------------------
    def peer_started(self, runtime: PeerRuntime) -> None:
        name = runtime.state.name
        entry = PeerDelegates(runtime)
        entry.reflector = Reflector(
            runtime.raw,
            "/api/v1/pods",
            DelegatePod,
            _DelegateHandler(self, name),
            query=[("labelSelector", self.delegates_selector)],
            name=f"{name}/delegates",
        )
        # Proxies are the home pods bound to the peer's virtual node: no label to write on them
        # (one home write less per spilled pod), and the Binding carries their annotations.
        entry.proxy_reflector = Reflector(
            self.home,
            "/api/v1/pods",
            Pod,
            _ProxyHandler(self, name),
            query=[("fieldSelector", f"spec.nodeName={runtime.state.virtual_node}")],
            name=f"home/proxies-on-{runtime.state.virtual_node}",
        )
        self.peers[name] = entry
        runtime.peer_reflectors.append(entry.reflector)
        runtime.tasks.append(asyncio.create_task(entry.reflector.run(), name=f"{name}-delegates"))
        runtime.tasks.append(asyncio.create_task(entry.proxy_reflector.run(), name=f"{name}-proxies"))
        if self.home_cluster:
            runtime.tasks.append(asyncio.create_task(self._adopt_until_done(entry), name=f"{name}-adopt"))

    async def _adopt_until_done(self, entry: PeerDelegates) -> None:
        while True:
            try:
                adopted = await self.adopt_unlabelled(entry)
            except Exception as exc:  # the peer is not answering yet: try again later
                log.info("unlabelled delegates in %s not adopted yet: %s", entry.runtime.state.name, exc)
                await asyncio.sleep(10)
                continue
            if adopted:
                log.info("adopted %d delegates made before they named their home", adopted)
            return

    async def adopt_unlabelled(self, entry: PeerDelegates) -> int:
        """Label this home's delegates (and their copies) made before they carried the home's
        label (an upgrade), so they are watched and swept again. A delegate is this home's when
        its pod is here with that UID; anything else is left alone, never deleted: it may be
        another home's, not yet adopted by its own Spillover."""
        client = entry.runtime.raw
        mark = {"metadata": {"labels": delegate_spec.home_labels(self.home_cluster)}}
        query = [("labelSelector", f"{DELEGATES},!{labels.HOME_CLUSTER}")]
        adopted = 0
        for item in msgspec.json.decode(await client.get("/api/v1/pods", query=query)).get("items", []):
            meta = item.get("metadata", {})
            found = meta.get("labels") or {}
            home_ns, home_name = found.get(labels.HOME_NAMESPACE), found.get(labels.HOME_NAME)
            if not home_ns or not home_name:
                continue
            try:
                pod = msgspec.json.decode(
                    await self.home.get(f"/api/v1/namespaces/{home_ns}/pods/{home_name}"), type=Pod
                )
            except ApiError as exc:
                if exc.status == 404:
                    continue
                raise
            if pod.metadata.uid != found.get(labels.PROXY_UID):
                continue
            namespace = meta.get("namespace", "")
            await client.request(
                "PATCH", f"/api/v1/namespaces/{namespace}/pods/{meta.get('name')}", mark, content_type=MERGE
            )
            adopted += 1
            for kind, name in delegate_spec.copies_of(meta.get("annotations")):
                path = f"/api/v1/namespaces/{namespace}/{delegate_spec.PLURALS[kind]}/{name}"
                with contextlib.suppress(ApiError):
                    copied = (msgspec.json.decode(await client.get(path)).get("metadata", {}).get("labels")) or {}
                    if copied.get(delegate_spec.COPY_LABEL) == "true" and labels.HOME_CLUSTER not in copied:
                        await client.request("PATCH", path, mark, content_type=MERGE)
        return adopted

    async def run(self) -> None:
        workers = [asyncio.create_task(self._worker(), name=f"mirror-{i}") for i in range(MIRROR_WORKERS)]
        tasks = [
            asyncio.create_task(self.leader.run(), name="leader"),
            asyncio.create_task(self._follow_leadership(), name="leadership"),
            asyncio.create_task(self._periodic(), name="delegation-periodic"),
            asyncio.create_task(self._sweeper(), name="orphan-sweep"),
            asyncio.create_task(self.events.run(), name="events"),
            *workers,
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _follow_leadership(self) -> None:
        while True:
            await self.leader.changed.wait()
            self.leader.changed.clear()
            if self.leader.leading:
                self.resync()

    def resync(self) -> None:
        """On becoming leader, act on everything the watches showed while another replica led:
        those events were seen and let go, and a proxy deleted meanwhile would otherwise stay
        Terminating for ever (no kubelet finalises it) and a status change stay unmirrored."""
        log.info("leading: resyncing %d proxies", len(self.proxies))
        for proxy in list(self.proxies.values()):
            self.proxy_changed(proxy)
        for peer in list(self.peers):
            self._schedule_sweep(peer)

    def delegate_phases(self) -> Iterator[tuple[str, str]]:
        """(peer, phase) of every delegate of this home the watches show (for the metrics)."""
        for peer, entry in list(self.peers.items()):
            for delegate in list(entry.by_proxy.values()):
                yield peer, str(delegate.status.get("phase") or "Pending")

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def avoided(self, pod: Pod, peer: str) -> str | None:
        """Why this pod's workload must not go to ``peer`` now (withdrawn from it recently)."""
        for ref in pod.metadata.owner_references or ():
            reason = self.avoid.get((ref.uid, peer))
            if reason:
                return reason
        return None

    # ---- bind (called from the binder, before the Binding) ---------------------------
    async def create_delegate(
        self, raw_pod: dict[str, Any], pod: Pod, peer: PeerState, peer_node: str
    ) -> tuple[Callable[[], Awaitable[None]], dict[str, str]]:
        """Create the delegate; return how to undo it and the annotations for the proxy's Binding
        (the apiserver copies a Binding's annotations onto the pod, in the same write)."""
        entry = self.peers.get(peer.name)
        if entry is None:
            raise BindError(f"peer {peer.name} has no running client yet")
        client = entry.runtime.raw
        meta = pod.metadata
        namespace = peer.remote_namespace or meta.namespace
        name = delegate_spec.delegate_name(meta.name, meta.uid)
        reason = (
            f"no home node could take the pod; peer {peer.name} (cost {peer.cost:g}, tier {peer.tier}) has room "
            f"on node {peer_node}"
        )
        annotations = {
            hints.CLUSTER: peer.name,
            hints.REASON: reason,
            labels.DELEGATE: f"{namespace}/{name}",
            DELETION_COST: "-1000",
        }
        # Until the Binding, the proxy is invisible to the proxy watches, so its new delegate
        # looks orphaned: ORPHAN_MIN_AGE keeps the sweep off it, and a proxy that ends up bound
        # without one is failed by _check_missing_delegates.
        await self._remove_leftovers(meta.uid, keep=peer.name)
        await self._ensure_namespace(entry, namespace, peer)
        copies = await self._copy_references(client, raw_pod, meta.namespace, namespace, peer.name)
        body = delegate_spec.delegate_body(raw_pod, peer.name, namespace, copies, self.home_cluster)
        if peer.detaching:  # its PeerCluster was deleted while this bind ran: nothing new goes there
            raise BindError(f"cannot bind {meta.namespace}/{meta.name} to peer {peer.name}: {peer.health_reason()}")
        try:
            await client.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)
        except ApiError as exc:
            if exc.status == 404:  # the namespace went meanwhile: the next bind looks at it again
                entry.known_namespaces.pop(namespace, None)
            if exc.status != 409:
                raise BindError(f"creating delegate {namespace}/{name} in {peer.name} failed: {exc.message}") from exc
            existing = msgspec.json.decode(await client.get(f"/api/v1/namespaces/{namespace}/pods/{name}"))
            owner = (existing.get("metadata", {}).get("labels") or {}).get(labels.PROXY_UID)
            if owner != meta.uid:
                raise BindError(
                    f"pod {namespace}/{name} exists in {peer.name} but was not created for this pod; "
                    "rename or delete it there"
                ) from exc

        async def undo() -> None:
            await self._delete_delegate(client, namespace, name, grace=0)

        return undo, annotations

    async def _remove_leftovers(self, proxy_uid: str, keep: str) -> None:
        """Delete this pod's delegates in other peers: an earlier bind of it created one and was
        cut off before its Binding (a restart, a timeout), and the retry chose another peer."""
        for name, entry in self.peers.items():
            stale = entry.by_proxy.get(proxy_uid)
            if name == keep or stale is None:
                continue
            if not entry.runtime.state.reachable:
                # Failing this bind would keep the pod from running anywhere while that peer is
                # down; once it is back, the sweep removes a delegate whose proxy is bound elsewhere.
                log.info(
                    "delegate left by an interrupted bind is in an unreachable peer; the sweep will remove it",
                    extra={"delegate": f"{stale.namespace}/{stale.name}", "peer": name, "uid": proxy_uid},
                )
                continue
            await self._delete_delegate(entry.runtime.raw, stale.namespace, stale.name, grace=0)
            log.info(
                "deleted delegate left by an interrupted bind",
                extra={"delegate": f"{stale.namespace}/{stale.name}", "peer": name, "uid": proxy_uid, "now": keep},
            )

    def bound(self, pod: Pod, peer: PeerState, peer_node: str) -> None:
        raw = {"namespace": pod.metadata.namespace, "name": pod.metadata.name, "uid": pod.metadata.uid}
        self.events.record(
            raw,
            "Spilled",
            f"No home node could take the pod; running it in peer cluster {peer.name} "
            f"(cost {peer.cost:g}, tier {peer.tier}, peer node {peer_node})",
        )

    async def _ensure_namespace(self, entry: PeerDelegates, namespace: str, peer: PeerState) -> None:
        """Delegates go only into a namespace Spillover created in the peer (labelled as its own, and
        with the peer's Pod Security level, which the peer's apiserver then enforces) or into the
        one the PeerCluster maps on purpose (spec.namespace: its labels are the peer owner's).
        Never into a peer team's namespace that happens to share the home namespace's name."""
        if entry.known_namespaces.get(namespace) == peer.pod_security:
            return
        pending = entry.ensuring.get(namespace)
        if pending is None:
            pending = entry.ensuring[namespace] = asyncio.ensure_future(self._make_namespace(entry, namespace, peer))

            def done(future: asyncio.Future[None]) -> None:
                entry.ensuring.pop(namespace, None)
                if not future.cancelled():
                    future.exception()  # retrieved: each waiting bind has raised it already

            pending.add_done_callback(done)
        await asyncio.shield(pending)  # one bind given up must not cancel the others' check

    async def _make_namespace(self, entry: PeerDelegates, namespace: str, peer: PeerState) -> None:
        level = peer.pod_security
        client = entry.runtime.raw
        wanted = {labels.MANAGED_BY: labels.MANAGED_BY_VALUE, **pod_security.namespace_labels(level)}
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": wanted}}
        try:
            await client.request("POST", "/api/v1/namespaces", body)
        except ApiError as exc:
            if exc.status != 409:
                raise BindError(f"cannot create namespace {namespace} in {peer.name}: {exc.message}") from exc
            try:
                existing = msgspec.json.decode(await client.get(f"/api/v1/namespaces/{namespace}"))
            except ApiError as read:
                raise BindError(f"cannot read namespace {namespace} in {peer.name}: {read.message}") from read
            found = existing.get("metadata", {}).get("labels") or {}
            if found.get(labels.MANAGED_BY) != labels.MANAGED_BY_VALUE:
                if namespace != peer.remote_namespace:
                    raise BindRefused(
                        f"namespace {namespace} exists in peer {peer.name} and Spillover did not create it: delegates "
                        "go only into namespaces Spillover creates there, never into a peer team's; give the delegates "
                        "a namespace of their own there (PeerCluster spec.namespace)"
                    ) from exc
            elif stale := {key: value for key, value in wanted.items() if found.get(key) != value}:
                # Spillover's own, labelled before (or for another level): the peer enforces the level now set.
                patch = {"metadata": {"labels": stale}}
                try:
                    await client.request("PATCH", f"/api/v1/namespaces/{namespace}", patch, content_type=MERGE)
                except ApiError as write:
                    raise BindError(
                        f"cannot label namespace {namespace} in {peer.name} with Pod Security {level}: {write.message}"
                    ) from write
        entry.known_namespaces[namespace] = level

    async def _copy_references(
        self, client: RawClient, raw_pod: dict[str, Any], home_ns: str, namespace: str, peer: str
    ) -> list[tuple[str, str]]:
        """Copy what the pod references into the peer. A delegate mounts only what Spillover copied
        there from the pod's own home namespace: an object of that name that is the peer's own, or
        a copy for another home or home namespace, fails the bind (BindRefused), naming it, even
        when home has no such object (the pod must not find the peer's instead)."""
        copies = []
        for kind, name in sorted(delegate_spec.references(raw_pod.get("spec") or {})):
            plural = delegate_spec.PLURALS[kind]
            collection = f"/api/v1/namespaces/{namespace}/{plural}"
            try:
                original = msgspec.json.decode(await self.home.get(f"/api/v1/namespaces/{home_ns}/{plural}/{name}"))
            except ApiError as exc:
                if exc.status != 404:
                    raise
                try:
                    existing = msgspec.json.decode(await client.get(f"{collection}/{name}"))
                except ApiError as peer_exc:
                    if peer_exc.status != 404:
                        raise BindError(f"cannot read {kind} {namespace}/{name} in {peer}: {peer_exc.message}") from exc
                    log.warning("pod references missing %s %s/%s; not copied", kind, home_ns, name)
                    continue
                if why := self._not_ours(kind, existing, namespace, home_ns, peer):
                    lacking = f"the pod references {kind} {name}, which namespace {home_ns} lacks"
                    raise BindRefused(f"{lacking}, and {why}") from exc
                copies.append((kind, name))  # this namespace's own earlier copy: keep it while needed
                continue
            body = delegate_spec.copy_body(original, namespace, home_ns, self.home_cluster)
            try:
                await client.request("POST", collection, body)
            except ApiError as exc:
                if exc.status != 409:
                    raise BindError(f"copying {kind} {name} to the peer failed: {exc.message}") from exc
                existing = msgspec.json.decode(await client.get(f"{collection}/{name}"))
                if why := self._not_ours(kind, existing, namespace, home_ns, peer):
                    raise BindRefused(f"the pod references {kind} {name} and {why}") from exc
                if not existing.get("immutable"):
                    patch: dict[str, Any] = {k: body[k] for k in ("data", "binaryData") if k in body}
                    found = existing.get("metadata", {}).get("labels") or {}
                    if self.home_cluster and not found.get(labels.HOME_CLUSTER):  # made before copies named their home
                        patch["metadata"] = {"labels": delegate_spec.home_labels(self.home_cluster)}
                    await client.request("PATCH", f"{collection}/{name}", patch, content_type=MERGE)
            copies.append((kind, name))
        return copies

    def _not_ours(self, kind: str, existing: dict[str, Any], namespace: str, home_ns: str, peer: str) -> str:
        """Why a peer object may not serve this home namespace's pods ("" when it is its own copy)."""
        meta = existing.get("metadata", {})
        found = meta.get("labels") or {}
        where = f"{kind} {namespace}/{meta.get('name', '')} in peer {peer}"
        if found.get(delegate_spec.COPY_LABEL) != "true":
            return (
                f"{where} was not copied there by Spillover (it is the peer's own): a delegate mounts only what "
                "Spillover copies from home; rename it in home, or give the delegates a namespace of their own in "
                "the peer (PeerCluster spec.namespace)"
            )
        maker = found.get(labels.HOME_CLUSTER, "")
        if maker and self.home_cluster and maker != self.home_cluster:
            return (
                f"{where} is a copy made for another home cluster ({maker}); give each home its own namespace "
                "there (PeerCluster spec.namespace)"
            )
        source = found.get(labels.HOME_NAMESPACE, "")
        if source and source != home_ns:
            return (
                f"{where} is a copy of home namespace {source}'s, not {home_ns}'s: home namespaces whose delegates "
                "share a peer namespace cannot share object names"
            )
        return ""

    async def _delete_delegate(self, client: RawClient, namespace: str, name: str, grace: int | None) -> bool:
        query: list[tuple[str, str | int]] = []
        body: dict[str, Any] | None = None
        if grace is not None:
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": grace}
        try:
            await client.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body, query=query)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _force_delete_proxy(self, proxy: Proxy, why: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": proxy.uid},
        }
        try:
            await self.home.request("DELETE", f"/api/v1/namespaces/{proxy.namespace}/pods/{proxy.name}", body)
            log.info("proxy deleted", extra={"pod": f"{proxy.namespace}/{proxy.name}", "uid": proxy.uid, "why": why})
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("could not delete proxy %s/%s: %s", proxy.namespace, proxy.name, exc)

    # ---- reactions to watch events (synchronous: schedule the async work) -------------
    def proxy_changed(self, proxy: Proxy) -> None:
        if proxy.deleting and self.leader.leading:
            if proxy.deleting_since is None:
                proxy.deleting_since = time.monotonic()
                self._spawn(self._finalise_proxy(proxy))
        elif proxy.peer:
            self._enqueue(proxy.peer, proxy.uid)

    def _status_lock(self, uid: str) -> asyncio.Lock:
        lock = self._status_locks.get(uid)
        if lock is None:
            lock = self._status_locks[uid] = asyncio.Lock()
        return lock

    def _drop(self, uid: str) -> None:
        """Forget what was kept about a proxy that is gone."""
        self._mirrored.pop(uid, None)
        self._lost.discard(uid)
        self._detached.discard(uid)
        self._status_locks.pop(uid, None)

    def proxy_gone(self, proxy: Proxy) -> None:
        self._drop(proxy.uid)
        if self.leader.leading:
            self._spawn(self._remove_delegate_of(proxy, grace=0))

    def delegate_changed(self, peer: str, item: DelegatePod) -> None:
        entry = self.peers.get(peer)
        uid = (item.metadata.labels or {}).get(labels.PROXY_UID, "")
        if entry is None or not uid:
            return
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
        self._enqueue(peer, uid)

    def delegate_gone(self, peer: str, item: DelegatePod) -> None:
        entry = self.peers.get(peer)
        uid = (item.metadata.labels or {}).get(labels.PROXY_UID, "")
        if entry is None or not uid:
            return
        entry.by_proxy.pop(uid, None)
        self._schedule_sweep(peer)
        proxy = self.proxies.get(uid)
        if proxy is None or not self.leader.leading:
            return
        if proxy.deleting:
            self._spawn(self._force_delete_proxy(proxy, "delegate gone after proxy deletion"))
            return
        if uid in self._lost:
            return  # already failed, with the reason that removed its delegate
        self._spawn(self._delegate_lost(proxy, "DelegateDeleted", f"the delegate was deleted in peer {peer}"))

    def _enqueue(self, peer: str, uid: str) -> None:
        """As client-go's workqueue: one worker per proxy at a time. Two writers for one proxy
        could land out of order (a Pending read before a Running one, written after it) and leave
        home showing a status its delegate left long ago."""
        key = (peer, uid)
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                await self._sync_proxy(*key)
            except Exception as exc:
                log.warning("status of proxy %s not mirrored: %s", key[1], exc)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self._enqueue(*key)

    async def _sync_proxy(self, peer: str, uid: str) -> None:
        if not self.leader.leading:
            return
        proxy = self.proxies.get(uid)
        entry = self.peers.get(peer)
        if proxy is None or entry is None or proxy.deleting or not proxy.node_name:
            return
        delegate = entry.by_proxy.get(uid)
        if delegate is None:
            return
        status = delegate_spec.mirrored_status(delegate.status)
        if not status or self._mirrored.get(uid) == status:
            return
        if status.get("phase") == "Pending" and uid not in self._mirrored:
            waited = time.monotonic() - delegate.seen_at
            if waited < PENDING_MIRROR_DELAY:
                asyncio.get_running_loop().call_later(PENDING_MIRROR_DELAY - waited, self._enqueue, peer, uid)
                return
        before = (self._mirrored.get(uid) or {}).get("phase")
        async with self._status_lock(uid):
            if uid in self._lost:  # failed meanwhile: a status read before that must not undo it
                return
            await self._write_status(proxy, status)
            self._mirrored[uid] = status
        phase = status.get("phase")
        if phase != before:
            self._phase_event(proxy, peer, delegate, phase)
        if phase == "Failed":
            await self._delegate_lost(
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

    async def _write_status(self, proxy: Proxy, status: dict[str, Any]) -> None:
        """Under ``_status_lock(proxy.uid)``: the mirror and the failures share this one writer."""
        path = f"/api/v1/namespaces/{proxy.namespace}/pods/{proxy.name}/status"
        await self.home.request("PATCH", path, {"status": status}, content_type=MERGE)

    async def _delegate_lost(self, proxy: Proxy, reason: str, message: str, mirror: bool = True) -> None:
        """The proxy tells the truth (Failed, with why); a controller-owned one is recreated."""
        if self.metrics is not None:
            self.metrics.count_lost(proxy.peer, reason)
        if mirror:
            status = {"phase": "Failed", "reason": reason, "message": message}
            self._lost.add(proxy.uid)  # before the lock: a mirror write not yet started stays out
            async with self._status_lock(proxy.uid):
                with contextlib.suppress(ApiError):
                    await self._write_status(proxy, status)
            self.events.record(proxy.ref(), reason, message, warning=True)
        if proxy.controlled:
            await self._force_delete_proxy(proxy, reason)

    async def _finalise_proxy(self, proxy: Proxy) -> None:
        """Proxy deleted in home: delete the delegate with the same grace, then the proxy itself."""
        entry = self.peers.get(proxy.peer)
        delegate = entry.by_proxy.get(proxy.uid) if entry else None
        if entry is None or delegate is None:
            await self._force_delete_proxy(proxy, "deleted; no delegate")
            return
        try:
            existed = await self._delete_delegate(entry.runtime.raw, delegate.namespace, delegate.name, proxy.grace)
        except Exception as exc:
            log.warning(
                "delegate of %s/%s not deleted yet (%s); finalising the proxy, the sweep will collect it",
                proxy.namespace,
                proxy.name,
                exc,
            )
            existed = False
        if not existed:
            await self._force_delete_proxy(proxy, "deleted; delegate already gone")
        # Otherwise the delegate's DELETED event finalises the proxy (see delegate_gone).

    async def _remove_delegate_of(self, proxy: Proxy, grace: int | None) -> None:
        entry = self.peers.get(proxy.peer)
        delegate = entry.by_proxy.get(proxy.uid) if entry else None
        if entry is None or delegate is None:
            return
        with contextlib.suppress(Exception):
            await self._delete_delegate(entry.runtime.raw, delegate.namespace, delegate.name, grace)

    # ---- periodic: remote-pending withdrawal, peer-loss failover, stuck deletions ---------
    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self.leader.leading:
                continue
            try:
                await self._check_remote_pending()
                await self._check_missing_delegates()
                await self._check_lost_peers()
                await self._check_stuck_deletions()
                await self._detach_deleted_peers()
            except Exception as exc:
                log.warning("delegation check failed: %s", exc)

    async def _check_remote_pending(self) -> None:
        now = time.monotonic()
        for peer, entry in self.peers.items():
            for uid, delegate in list(entry.by_proxy.items()):
                since = delegate.unschedulable_since
                if since is None or now - since < self.config.remote_pending_timeout:
                    continue
                proxy = self.proxies.get(uid)
                delegate.unschedulable_since = None
                message = (
                    f"the delegate stayed unschedulable in peer {peer} for over "
                    f"{self.config.remote_pending_timeout:g}s; withdrawn, and {peer} is avoided for this workload "
                    f"for {self.config.avoid_peer_seconds:g}s"
                )
                if proxy is not None:
                    for owner in await self._owner_uids(proxy):
                        self.avoid[(owner, peer)] = message
                await self._delete_delegate(entry.runtime.raw, delegate.namespace, delegate.name, grace=0)
                if proxy is not None:
                    await self._delegate_lost(proxy, "RemotePending", message)

    async def _check_missing_delegates(self) -> None:
        """Fail proxies bound to a healthy, synced peer that has had no delegate for them for a while."""
        now = time.monotonic()
        for proxy in list(self.proxies.values()):
            entry = self.peers.get(proxy.peer)
            done = proxy.phase in ("Succeeded", "Failed")
            if entry is None or proxy.deleting or done or proxy.uid in entry.by_proxy:
                proxy.missing_since = None
                continue
            synced = entry.reflector is not None and entry.reflector.synced.is_set()
            if not synced or not entry.runtime.state.reachable:
                continue
            if proxy.missing_since is None:
                proxy.missing_since = now
            elif now - proxy.missing_since >= MISSING_DELEGATE_SECONDS:
                proxy.missing_since = None
                if await self._delegate_exists(entry, proxy.uid):
                    continue  # the watch is behind (a reconnect), not the peer
                await self._delegate_lost(
                    proxy,
                    "DelegateMissing",
                    f"bound to peer {proxy.peer} for over {MISSING_DELEGATE_SECONDS:g}s but no delegate exists there "
                    "(a bind cut off after its delegate was removed)",
                )

    async def _delegate_exists(self, entry: PeerDelegates, proxy_uid: str) -> bool:
        """Ask the peer itself before failing a pod on the watch's word (True when unsure)."""
        selector = f"{self.delegates_selector},{labels.PROXY_UID}={proxy_uid}"
        try:
            payload = await entry.runtime.raw.get("/api/v1/pods", query=[("labelSelector", selector)])
            listed = msgspec.json.decode(payload)
        except Exception as exc:
            log.info("could not check for the delegate of %s: %s", proxy_uid, exc)
            return True
        return bool(listed.get("items"))

    async def _owner_uids(self, proxy: Proxy) -> list[str]:
        try:
            pod = msgspec.json.decode(
                await self.home.get(f"/api/v1/namespaces/{proxy.namespace}/pods/{proxy.name}"), type=Pod
            )
        except ApiError:
            return []
        return [ref.uid for ref in pod.metadata.owner_references or () if ref.controller]

    async def _check_lost_peers(self) -> None:
        for peer, entry in self.peers.items():
            state = entry.runtime.state
            lost_for = state.unreachable_for()
            grace = self.registry.grace_period(peer)
            if lost_for is None or lost_for < grace:
                continue
            for proxy in list(self.proxies.values()):
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
                if self.metrics is not None:
                    self.metrics.count_lost(peer, "PeerLost")
                await self._force_delete_proxy(proxy, f"peer {peer} lost")

    async def _check_stuck_deletions(self) -> None:
        now = time.monotonic()
        for proxy in list(self.proxies.values()):
            if proxy.deleting_since is None:
                continue
            if now - proxy.deleting_since > (proxy.grace or 0) + STUCK_DELETION_SLACK:
                await self._force_delete_proxy(proxy, "delegate deletion did not finish in time")

    # ---- detaching the peer of a deleted PeerCluster ----------------------------------------
    async def _detach_deleted_peers(self) -> None:
        for name in self.registry.deleting():
            if self.registry.peers.get(name) is None:
                why = self.registry.unusable.get(name)
                if why is not None:  # blocking the deletion would help no one: nothing can be reached
                    log.warning(
                        "PeerCluster %s deleted while its kubeconfig is unusable (%s): whatever Spillover "
                        "created in that peer stays there; letting the PeerCluster go",
                        name,
                        why,
                    )
                    await self.registry.release(name)
                continue
            done, progress = await self.detach(name)
            self.registry.detach_progress[name] = progress
            if done and await self.registry.release(name):
                self._forget(name)

    def _forget(self, peer: str) -> None:
        """A detached peer's proxies are failed or gone and its watches about to stop: drop what
        is remembered of them (nothing would ever clear it)."""
        self.peers.pop(peer, None)
        for uid in [uid for uid, proxy in self.proxies.items() if proxy.peer == peer]:
            del self.proxies[uid]
            self._drop(uid)

    async def detach(self, peer: str) -> tuple[bool, str]:
        """One pass of taking Spillover out of a peer whose PeerCluster is being deleted: its pods
        are failed (recreated elsewhere when a controller owns them), their delegates and copies
        deleted. Returns whether a pass found nothing left, and what it is waiting for."""
        entry = self.peers.get(peer)
        force = f"to give up on them, remove the finalizer: {give_up_command(peer)}"
        if entry is None:
            return False, "waiting for the peer's watches to start"
        state = entry.runtime.state
        synced = all(r is not None and r.synced.is_set() for r in (entry.reflector, entry.proxy_reflector))
        if not state.reachable or not synced:
            return False, (
                f"waiting for peer {peer} to be reachable ({state.unreachable_reason}) to delete the pods and "
                f"copies Spillover created there; {force}"
            )
        for proxy in [p for p in self.proxies.values() if p.peer == peer]:
            if proxy.uid in self._detached:
                continue
            self._detached.add(proxy.uid)
            if not proxy.deleting and proxy.phase not in ("Succeeded", "Failed"):
                recreated = "; its controller recreates it elsewhere" if proxy.controlled else ""
                await self._delegate_lost(
                    proxy, "PeerDetached", f"PeerCluster {peer} is being deleted: the pod cannot run there{recreated}"
                )
            await self._remove_delegate_of(proxy, grace=None)
        left = await self.sweep(peer, everything=True)
        if left:
            return False, f"deleting {left} objects Spillover created in peer {peer}; {force}"
        return True, f"nothing of Spillover's is left in peer {peer}"

    # ---- orphan sweep ----------------------------------------------------------------------
    async def _sweeper(self) -> None:
        while True:
            if self.leader.leading:
                for peer in list(self.peers):
                    try:
                        await self.sweep(peer)
                    except Exception as exc:
                        log.warning("orphan sweep of %s failed: %s", peer, exc)
            await asyncio.sleep(self.config.orphan_sweep_seconds)

    async def sweep(self, peer: str, everything: bool = False) -> int:
        """Delete delegates whose proxy is gone and copies no delegate needs; returns how many.

        ``everything`` (the peer is being detached): every delegate and copy goes, whatever its
        age or proxy, and the count includes those still terminating."""
        entry = self.peers.get(peer)
        if entry is None or entry.reflector is None or not entry.reflector.synced.is_set():
            return 0
        proxies_synced = entry.proxy_reflector is not None and entry.proxy_reflector.synced.is_set()
        if not proxies_synced or not entry.runtime.state.reachable:
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
            proxy = self.proxies.get(uid)
            # Its proxy is gone, or bound somewhere else (a bind cut off after creating this
            # delegate, then retried to another peer or home): nothing will ever use it.
            bound_elsewhere = proxy is not None and proxy.node_name not in (None, "", virtual_node)
            if everything:
                if not meta.get("deletionTimestamp"):
                    await self._delete_delegate(client, meta.get("namespace", ""), meta.get("name", ""), grace=None)
                removed += 1
                continue
            terminating = bool(meta.get("deletionTimestamp"))  # its proxy's deletion deleted it: not an orphan
            if (proxy is None or bound_elsewhere) and not terminating:
                if _younger_than(meta, ORPHAN_MIN_AGE):
                    too_young = True
                else:
                    await self._delete_delegate(client, meta.get("namespace", ""), meta.get("name", ""), grace=0)
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
            if self.metrics is not None:
                self.metrics.count_orphans(peer, orphans)
        if unused and not everything:
            log.info("removed %d copied ConfigMaps and Secrets no delegate uses any more from %s", unused, peer)
            if self.metrics is not None:
                self.metrics.count_unused_copies(peer, unused)
        if too_young:
            self._schedule_sweep(peer, delay=ORPHAN_MIN_AGE)
        return removed

    def _schedule_sweep(self, peer: str, delay: float = 2.0) -> None:
        """Soon after delegates go, collect the copies only they needed (debounced per peer)."""
        if peer in self._sweep_soon or not self.leader.leading:
            return
        self._sweep_soon.add(peer)

        async def later() -> None:
            await asyncio.sleep(delay)
            self._sweep_soon.discard(peer)
            try:
                await self.sweep(peer)
            except Exception as exc:
                log.warning("orphan sweep of %s failed: %s", peer, exc)

        self._spawn(later())
