"""Creating delegates: what the binder calls for a pod bound to a virtual node, before its Binding.

The delegate is created in the peer (with the namespace and the ConfigMaps and Secrets it
needs), idempotently: its name derives from the proxy UID, so a retried bind finds its own.
Until the Binding, the proxy is invisible to the proxy watches, so its new delegate looks
orphaned: ORPHAN_MIN_AGE keeps the sweep off it, and a proxy that ends up bound without one is
failed by the lifecycle's missing-delegate check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from extender import hints, labels, pod_security
from extender.capacity.model import PeerState
from extender.delegation import delegate_spec
from extender.delegation.avoid import AvoidList
from extender.delegation.copies import CopiesMade, write_copy
from extender.delegation.view import DelegationView, PeerDelegates
from extender.delegation.writer import ProxyWriter
from extender.kube.api import NAMESPACES, PODS, Api, PatchType, decode_object
from extender.kube.events import EventSink
from extender.kube.raw import ApiError
from extender.scheduling.state import BindError, BindRefused
from extender.wire.core import ObjectMeta, Pod

log = logging.getLogger("spillover.delegator")
DELETION_COST = labels.DELETION_COST


class _Copy(msgspec.Struct):
    """A ConfigMap or Secret in a peer, read for whose copy it is."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    immutable: bool | None = None


class DelegateCreator:
    """The binder's ``Delegation``."""

    def __init__(
        self,
        home: Api,
        view: DelegationView,
        writer: ProxyWriter,
        events: EventSink,
        avoid: AvoidList,
        home_cluster: str,
        copies: CopiesMade,
    ) -> None:
        self.home = home
        self.view = view
        self.writer = writer
        self.events = events
        self.avoid = avoid
        self.home_cluster = home_cluster
        self.copies = copies
        """Told each copy made or refreshed here (the copy keeper then knows it is current)."""

    def avoided(self, pod: Pod, peer: str) -> str | None:
        return self.avoid.avoided(pod, peer)

    async def create_delegate(
        self, raw_pod: dict[str, Any], pod: Pod, peer: PeerState, peer_node: str
    ) -> tuple[Callable[[], Awaitable[None]], dict[str, str]]:
        """Create the delegate; return how to undo it and the annotations for the proxy's Binding
        (the apiserver copies a Binding's annotations onto the pod, in the same write)."""
        entry = self.view.peers.get(peer.name)
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
        # without one is failed by the lifecycle's missing-delegate check.
        await self._remove_leftovers(meta.uid, keep=peer.name)
        await self._ensure_namespace(entry, namespace, peer)
        copies = await self._copy_references(client, raw_pod, meta.namespace, namespace, peer.name)
        referenced = delegate_spec.references(raw_pod.get("spec") or {})
        body = delegate_spec.delegate_body(raw_pod, peer.name, namespace, copies, self.home_cluster, referenced)
        if peer.detaching:  # its PeerCluster was deleted while this bind ran: nothing new goes there
            raise BindError(f"cannot bind {meta.namespace}/{meta.name} to peer {peer.name}: {peer.health_reason()}")
        try:
            await client.request("POST", PODS.collection(namespace), body)
        except ApiError as exc:
            if exc.status == 404:  # the namespace went meanwhile: the next bind looks at it again
                entry.known_namespaces.pop(namespace, None)
            if exc.status != 409:
                raise BindError(f"creating delegate {namespace}/{name} in {peer.name} failed: {exc.message}") from exc
            existing = decode_object(await client.get(PODS.item(name, namespace)))
            owner = (existing.metadata.labels or {}).get(labels.PROXY_UID)
            if owner != meta.uid:
                raise BindError(
                    f"pod {namespace}/{name} exists in {peer.name} but was not created for this pod; "
                    "rename or delete it there"
                ) from exc

        async def undo() -> None:
            await self.writer.delete_delegate(client, namespace, name, grace=0)

        return undo, annotations

    async def _remove_leftovers(self, proxy_uid: str, keep: str) -> None:
        """Delete this pod's delegates in other peers: an earlier bind of it created one and was
        cut off before its Binding (a restart, a timeout), and the retry chose another peer."""
        for name, entry in self.view.peers.items():
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
            await self.writer.delete_delegate(entry.runtime.raw, stale.namespace, stale.name, grace=0)
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
            await client.request("POST", NAMESPACES.collection(), body)
        except ApiError as exc:
            if exc.status != 409:
                raise BindError(f"cannot create namespace {namespace} in {peer.name}: {exc.message}") from exc
            try:
                existing = decode_object(await client.get(NAMESPACES.item(namespace)))
            except ApiError as read:
                raise BindError(f"cannot read namespace {namespace} in {peer.name}: {read.message}") from read
            found = existing.metadata.labels or {}
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
                    await client.request("PATCH", NAMESPACES.item(namespace), patch, content_type=PatchType.MERGE)
                except ApiError as write:
                    raise BindError(
                        f"cannot label namespace {namespace} in {peer.name} with Pod Security {level}: {write.message}"
                    ) from write
        entry.known_namespaces[namespace] = level

    async def _copy_references(
        self, client: Api, raw_pod: dict[str, Any], home_ns: str, namespace: str, peer: str
    ) -> list[tuple[str, str]]:
        """Copy what the pod references into the peer. A delegate mounts only what Spillover copied
        there from the pod's own home namespace: an object of that name that is the peer's own, or
        a copy for another home or home namespace, fails the bind (BindRefused), naming it, even
        when home has no such object (the pod must not find the peer's instead)."""
        copies = []
        for kind, name in sorted(delegate_spec.references(raw_pod.get("spec") or {})):
            resource = delegate_spec.COPIED[kind]
            try:
                original = msgspec.json.decode(await self.home.get(resource.item(name, home_ns)))
            except ApiError as exc:
                if exc.status != 404:
                    raise
                try:
                    existing = msgspec.json.decode(await client.get(resource.item(name, namespace)), type=_Copy)
                except ApiError as peer_exc:
                    if peer_exc.status != 404:
                        raise BindError(f"cannot read {kind} {namespace}/{name} in {peer}: {peer_exc.message}") from exc
                    # The copy keeper tells the pod (ReferenceMissing), and copies it when it appears.
                    log.info("pod references missing %s %s/%s; copied when it appears", kind, home_ns, name)
                    continue
                if why := self._not_ours(kind, existing, namespace, home_ns, peer):
                    lacking = f"the pod references {kind} {name}, which namespace {home_ns} lacks"
                    raise BindRefused(f"{lacking}, and {why}") from exc
                copies.append((kind, name))  # this namespace's own earlier copy: keep it while needed
                continue
            body = delegate_spec.copy_body(original, namespace, home_ns, self.home_cluster)
            try:
                await client.request("POST", resource.collection(namespace), body)
            except ApiError as exc:
                if exc.status != 409:
                    raise BindError(f"copying {kind} {name} to the peer failed: {exc.message}") from exc
                raw_existing = msgspec.json.decode(await client.get(resource.item(name, namespace)))
                existing = msgspec.convert(raw_existing, _Copy)
                if why := self._not_ours(kind, existing, namespace, home_ns, peer):
                    raise BindRefused(f"the pod references {kind} {name} and {why}") from exc
                held = (existing.metadata.annotations or {}).get(delegate_spec.SOURCE_VERSION_ANNOTATION)
                if held != original.get("metadata", {}).get("resourceVersion"):
                    # Data replaced whole (keys removed at home go), labels of a copy made before
                    # copies named their home added; an immutable one replaced if its data differs.
                    try:
                        await write_copy(client, kind, body, raw_existing)
                    except ApiError as write:
                        raise BindError(f"refreshing the copy of {kind} {name} failed: {write.message}") from write
            copies.append((kind, name))
            self.copies.copied(
                (kind, home_ns, name), (peer, namespace), original.get("metadata", {}).get("resourceVersion", "")
            )
        return copies

    def _not_ours(self, kind: str, existing: _Copy, namespace: str, home_ns: str, peer: str) -> str:
        """Why a peer object may not serve this home namespace's pods ("" when it is its own copy)."""
        found = existing.metadata.labels or {}
        where = f"{kind} {namespace}/{existing.metadata.name} in peer {peer}"
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
