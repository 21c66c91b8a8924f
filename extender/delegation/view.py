"""The one shared state of delegation: every proxy and every delegate, as the watches show them.

A proxy is a home pod bound to a peer's virtual node; its delegate is the pod Spillover made for
it in that peer (label spillover.io/proxy-uid). The watch handlers (``delegation.watches``) are
the only writers of this state; the controllers read it through ``DelegationView`` and keep
their notes about each proxy in it, forgotten with the proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from extender import hints
from extender.delegation.tolerations import lacking_patch
from extender.kube.reflector import Reflector
from extender.peers.directory import PeerRuntime
from extender.pod_requests import pod_requests
from extender.pod_security import Level
from extender.resources import QuantityError, Resources
from extender.wire.core import ObjectMeta, Pod, ProxyPod


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
    ready: str = ""
    """The status of its Ready condition as home shows it ("" when it has none)."""
    node_loss_patch: list[dict[str, Any]] = field(default_factory=list)
    """What would make it tolerate node loss for ever ([] once it does, or if Spillover did not bind it)."""

    def ref(self) -> dict[str, str]:
        return {"namespace": self.namespace, "name": self.name, "uid": self.uid}

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


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
    proxy_reflector: Reflector[ProxyPod] | None = None
    """Home pods bound to this peer's virtual node."""
    known_namespaces: dict[str, Level] = field(default_factory=dict)
    """Peer namespaces checked fit for delegates, and the Pod Security level they enforce."""
    ensuring: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    """Namespace checks in flight: a burst of binds into a new namespace shares one."""

    def delegates_synced(self) -> bool:
        return self.reflector is not None and self.reflector.synced.is_set()

    def synced(self) -> bool:
        """Both watches listed: what they show is the whole truth (as of a moment ago)."""
        proxies_synced = self.proxy_reflector is not None and self.proxy_reflector.synced.is_set()
        return self.delegates_synced() and proxies_synced


@dataclass
class ProxyNotes:
    """What the controllers remember of one proxy between events."""

    mirrored: dict[str, Any] | None = None
    """The status last written onto it from its delegate."""
    lost: bool = False
    """Failed for good (delegate deleted, withdrawn, missing): no mirror write after that."""
    detached: bool = False
    """Taken off a peer whose PeerCluster is being deleted."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One status writer at a time, mirror and failure alike, so the last word is the latest."""
    restored_at: float = 0.0
    """When its Ready condition was last written back after the node-lifecycle controller's mark."""


def proxy_from(pod: Pod, peer: str) -> Proxy:
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
        ready=pod.ready() if isinstance(pod, ProxyPod) else "",
        node_loss_patch=lacking_patch(pod),
    )


def _requests(pod: Pod) -> Resources:
    try:
        return pod_requests(pod)
    except QuantityError:  # the apiserver validated them; an unparsable one costs nothing here
        return {}


class DelegationView(Protocol):
    """What the delegation controllers read (and the metrics and status page)."""

    @property
    def proxies(self) -> Mapping[str, Proxy]:
        """Every proxy, by UID."""

    @property
    def peers(self) -> Mapping[str, PeerDelegates]:
        """The delegates of each peer whose watches run, by peer name."""

    @property
    def unprepared(self) -> Mapping[str, Proxy]:
        """Pods bound to a virtual node that Spillover did not prepare (``marker``), by UID: no
        proxies (never failed, mirrored or given a delegate), only told why they do not run."""

    def proxies_on(self, peer: str) -> list[Proxy]: ...

    def notes(self, uid: str) -> ProxyNotes: ...

    def delegate_phases(self) -> Iterator[tuple[str, str]]: ...


class Delegations:
    """The state behind ``DelegationView``; written by the watch handlers only."""

    def __init__(self) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.peers: dict[str, PeerDelegates] = {}
        self.unprepared: dict[str, Proxy] = {}
        self._notes: dict[str, ProxyNotes] = {}

    def proxies_on(self, peer: str) -> list[Proxy]:
        return [proxy for proxy in self.proxies.values() if proxy.peer == peer]

    def notes(self, uid: str) -> ProxyNotes:
        found = self._notes.get(uid)
        if found is None:
            found = self._notes[uid] = ProxyNotes()
        return found

    def forget(self, uid: str) -> None:
        """Drop the notes of a proxy that is gone."""
        self._notes.pop(uid, None)

    def forget_peer(self, peer: str) -> None:
        """A detached peer's proxies are failed or gone and its watches about to stop: drop what
        is remembered of them (nothing would ever clear it)."""
        self.peers.pop(peer, None)
        for uid in [uid for uid, proxy in self.proxies.items() if proxy.peer == peer]:
            del self.proxies[uid]
            self.forget(uid)
        for uid in [uid for uid, pod in self.unprepared.items() if pod.peer == peer]:
            del self.unprepared[uid]

    def delegate_phases(self) -> Iterator[tuple[str, str]]:
        """(peer, phase) of every delegate of this home the watches show (for the metrics)."""
        for peer, entry in list(self.peers.items()):
            for delegate in list(entry.by_proxy.values()):
                yield peer, str(delegate.status.get("phase") or "Pending")
