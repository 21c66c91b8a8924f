"""Delegation wired as app.py wires it, on fake apiservers: a home and its peers, for unit tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from extender.capacity.model import PeerState
from extender.capacity.reservations import Reservations
from extender.capacity.tracker import PeerTracker
from extender.delegation.avoid import AvoidList
from extender.delegation.copy_keeper import CopyKeeper
from extender.delegation.creator import DelegateCreator
from extender.delegation.evacuation import Evacuation
from extender.delegation.lifecycle import Lifecycle
from extender.delegation.mirror import StatusMirror
from extender.delegation.node_loss import NodeLossTolerations
from extender.delegation.sweep import OrphanSweeper
from extender.delegation.view import Delegations
from extender.delegation.watches import DelegationWatches
from extender.delegation.writer import ProxyWriter
from extender.kube.api import NODES, PODS
from extender.kube.reflector import Reflector
from extender.kube.tasks import TaskSet
from extender.peers.directory import PeerDirectory, PeerRuntime
from extender.peers.registry import PeerRegistry, PeerWatcher
from extender.peers.status import PeerStatusWriter
from extender.peers.virtual_node import VirtualNodes
from extender.scheduling.memory import peer
from extender.server.metrics import Metrics
from extender.wire.core import PeerNode, PeerPod
from tests.unit.apiserver import FakeApiserver, Object

OLD = "2020-01-01T00:00:00Z"
"""A creation time long past: old enough for the orphan sweep."""


class RecordedEvents:
    """An EventSink that keeps (reason, message) of what it is told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []

    def record(self, ref: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        self.told.append((reason, message))

    def reasons(self) -> list[str]:
        return [reason for reason, _ in self.told]


def peer_runtime(state: PeerState, api: FakeApiserver) -> PeerRuntime:
    """A joined peer as the registry makes one (its own watches are not run here)."""
    tracker = PeerTracker(state, lambda _: None)
    return PeerRuntime(
        state=state,
        raw=api,
        tracker=tracker,
        kubeconfig_hash="",
        node_reflector=Reflector(api, NODES.collection(), PeerNode, tracker.nodes),
        pod_reflector=Reflector(api, PODS.collection(), PeerPod, tracker.pods),
    )


def proxy_pod(name: str, peer_name: str = "east", **meta: Any) -> Object:
    """A home pod bound to a peer's virtual node (a proxy), with the marker the webhook adds."""
    marker = {"spillover.io/spillable": "1"}
    container = {"name": "app", "image": "nginx", "resources": {"requests": marker, "limits": marker}}
    return {
        "metadata": {"namespace": "shop", "name": name, "uid": f"uid-{name}", **meta},
        "spec": {"nodeName": f"spillover-{peer_name}", "containers": [container]},
        "status": {"phase": "Pending"},
    }


def controlled(name: str = "web") -> dict[str, Any]:
    """metadata.ownerReferences of a pod a ReplicaSet owns."""
    return {"ownerReferences": [{"kind": "ReplicaSet", "name": name, "uid": f"rs-{name}", "controller": True}]}


def delegate_pod(proxy: Object, phase: str = "Running", home: str = "", **meta: Any) -> Object:
    """The delegate of ``proxy`` in its peer, as Spillover creates it."""
    labels = {"app.kubernetes.io/managed-by": "spillover", "spillover.io/proxy-uid": proxy["metadata"]["uid"]}
    if home:
        labels["spillover.io/home-cluster"] = home
    metadata = {"namespace": "shop", "name": f"{proxy['metadata']['name']}-x", "labels": labels, **meta}
    return {"metadata": metadata, "spec": {}, "status": {"phase": phase}}


class Delegation:
    """Home and its peers as fake apiservers, and delegation's parts over them, not yet leading."""

    def __init__(self, *peers: str, cluster_id: str = "", remote_pending_timeout: float = 60) -> None:
        self.home = FakeApiserver()
        self.peer_apis = {name: FakeApiserver() for name in peers or ("east",)}
        self.directory = PeerDirectory()
        self.state = Delegations()
        self.events = RecordedEvents()
        self.metrics = Metrics()
        self.avoid = AvoidList(300)
        self.writer = ProxyWriter(self.home, self.state, self.events, self.metrics)
        self.mirror = StatusMirror(self.state, self.writer, self.events)
        self.lifecycle = Lifecycle(
            self.home,
            self.state,
            self.writer,
            self.events,
            self.metrics,
            self.avoid,
            self.directory,
            cluster_id,
            remote_pending_timeout,
        )
        self.sweeper = OrphanSweeper(self.state, self.writer, self.metrics, cluster_id, every=3600)
        self.tolerations = NodeLossTolerations(self.home, self.state, delay=0)
        self.copies = CopyKeeper(self.home, self.directory, self.state, self.events, cluster_id)
        self.watches = DelegationWatches(
            self.home, self.state, self.mirror, self.lifecycle, self.sweeper, self.tolerations, self.copies, cluster_id
        )
        self.creator = DelegateCreator(
            self.home, self.state, self.writer, self.events, self.avoid, cluster_id, self.copies
        )
        self.evacuation = Evacuation(self.state, self.writer, self.sweeper)
        self.tasks = TaskSet("test")

    def api(self, name: str = "east") -> FakeApiserver:
        return self.peer_apis[name]

    def join(self, name: str = "east", reachable: bool = True) -> PeerState:
        """Join the peer ``name`` and start delegation's watches on it (see ``synced``)."""
        state = peer(name, healthy=reachable)
        runtime = peer_runtime(state, self.peer_apis[name])
        self.directory.peers[name] = runtime
        self.directory.by_virtual_node[state.virtual_node] = state
        work = self.watches.peer_started(runtime)
        for task, coro in work.tasks:
            self.tasks.spawn(coro, f"{name}-{task}")
        return state

    async def synced(self) -> None:
        """Until every joined peer's watches listed."""
        await until(lambda: all(entry.synced() for entry in self.state.peers.values()))

    @contextlib.asynccontextmanager
    async def leading(self) -> AsyncIterator[None]:
        """The leader-only controllers run inside the block (their periodic loops hardly tick)."""
        leading = TaskSet("leading")
        for controller in (self.mirror, self.lifecycle, self.sweeper, self.tolerations, self.copies):
            leading.spawn(controller.lead())
        await asyncio.sleep(0)
        try:
            yield
        finally:
            await leading.cancel()

    async def watch_home_copies(self) -> None:
        """Start the copy keeper's watches of home's ConfigMaps and Secrets, until they listed."""
        for reflector in self.copies.reflectors:
            self.tasks.spawn(reflector.run(), reflector.name)
        await until(lambda: all(r.synced.is_set() for r in self.copies.reflectors))

    async def close(self) -> None:
        await self.tasks.cancel()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.005)


def peercluster(name: str = "east", finalizers: list[str] | None = None, deleting: bool = False) -> Object:
    meta: dict[str, Any] = {"name": name, "finalizers": finalizers}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-26T12:00:00Z"
    ref = {"name": f"peer-{name}-kubeconfig", "namespace": "spillover-system"}
    return {"metadata": meta, "spec": {"kubeconfigSecretRef": ref}}


def kubeconfig_secret(name: str = "east") -> Object:
    """The Secret `spillover join` makes; its "kubeconfig" is the peer's name (see ``Peers.connect``)."""
    data = {"kubeconfig": base64.b64encode(name.encode()).decode()}
    return {"metadata": {"namespace": "spillover-system", "name": f"peer-{name}-kubeconfig"}, "data": data}


class Peers:
    """The peer registry as app.py builds it, on a fake home; each peer's kubeconfig opens a fake."""

    def __init__(self, *peers: str, watchers: Sequence[PeerWatcher] = ()) -> None:
        self.home = FakeApiserver()
        self.peer_apis = {name: FakeApiserver() for name in peers or ("east",)}
        self.directory = PeerDirectory()
        self.events = RecordedEvents()
        self.reservations = Reservations()
        self.virtual_nodes = VirtualNodes(self.home)
        self.progress: dict[str, str] = {}
        self.status = PeerStatusWriter(self.home, self.directory, self.progress, lambda name: [])
        self.registry = PeerRegistry(
            self.home,
            self.directory,
            self.virtual_nodes,
            self.reservations,
            self.status,
            self.events,
            watchers=watchers,
            connect=self.connect,
        )

    async def connect(self, kubeconfig: str, source: str, timeout: float) -> FakeApiserver:
        return self.peer_apis[kubeconfig]

    def joined(self, name: str = "east") -> bool:
        return name in self.directory.peers
