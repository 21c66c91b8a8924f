"""Peers come and go as PeerCluster objects change: each gets a client, watches and a virtual node.

Everything is rebuilt from the apiservers on start (the PeerCluster list, each peer's Secret,
Nodes and Pods), so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from extender.capacity.model import PeerState
from extender.capacity.reservations import Reservations
from extender.capacity.tracker import POD_FIELD_SELECTOR, PeerTracker
from extender.kube import client as kube_client
from extender.kube.api import NODES, PODS, READYZ, SECRETS, Client, PatchType, WatchApi
from extender.kube.events import EventSink
from extender.kube.raw import ApiError
from extender.kube.reflector import Handler, Listing, Reflector
from extender.kube.tasks import TaskSet, cancel_and_wait
from extender.kube.times import rfc3339
from extender.peers.directory import PeerDirectory, PeerRuntime
from extender.peers.model import FINALIZER, GROUP, PEERCLUSTERS, VERSION, PeerCluster
from extender.peers.status import PeerStatusWriter
from extender.peers.virtual_node import VirtualNodes, virtual_node_name
from extender.wire.core import PeerNode, PeerPod

log = logging.getLogger("spillover.peers")
PROBE_EVERY = 3.0
PROBE_TIMEOUT = 2.0


@dataclass
class PeerWork:
    """What another part runs for one joined peer, stopped with it."""

    peer_reflectors: Sequence[Reflector[Any]]
    """Its watches on the peer: woken with the registry's own when the peer answers again."""
    tasks: Sequence[tuple[str, Coroutine[Any, Any, None]]]
    """(name, coroutine) of everything it runs for the peer, those watches included."""


class PeerWatcher(Protocol):
    def peer_started(self, runtime: PeerRuntime) -> PeerWork:
        """A peer was joined (or its kubeconfig changed): what to run for it."""


class PeerRegistry(Handler[PeerCluster]):
    """Reconciles each PeerCluster into a joined peer (client, watches, virtual node) in the directory."""

    def __init__(
        self,
        home: WatchApi,
        directory: PeerDirectory,
        virtual_nodes: VirtualNodes,
        reservations: Reservations,
        status: PeerStatusWriter,
        events: EventSink,
        watchers: Sequence[PeerWatcher] = (),
        peer_timeout: float = 5.0,
        connect: Callable[[str, str, float], Awaitable[Client]] = kube_client.connect_text,
    ) -> None:
        self.home = home
        self.directory = directory
        self.virtual_nodes = virtual_nodes
        self.reservations = reservations
        self.status = status
        self.events = events
        """Events on PeerClusters; every replica sees the same, so only the leader's are recorded."""
        self.watchers = list(watchers)
        self.peer_timeout = peer_timeout
        self.connect = connect
        """Opens a client of a peer from its kubeconfig text (unit tests open in-memory ones)."""
        self._pending = TaskSet("peer-registry")
        self._lock = asyncio.Lock()
        self.reflector = Reflector(home, PEERCLUSTERS.collection(), PeerCluster, self, name="peerclusters")

    # Reflector callbacks: schedule async reconciles, keep the event loop free.
    def replace(self, items: list[PeerCluster]) -> None:
        names = {pc.metadata.name for pc in items}
        for gone in set(self.directory.specs) - names:
            self._pending.spawn(self._remove(gone), f"remove-{gone}")
        for pc in items:
            self.upsert(pc)

    def upsert(self, item: PeerCluster) -> None:
        before = self.directory.specs.get(item.metadata.name)
        if item.metadata.deletion_timestamp and (before is None or not before.metadata.deletion_timestamp):
            self._event(
                item.metadata.name,
                "Detaching",
                "PeerCluster deleted: no new pods go there; its pods are failed over and what Spillover made "
                "in the peer is deleted before it goes",
                item,
            )
        self.directory.specs[item.metadata.name] = item
        self._pending.spawn(self._reconcile(item.metadata.name), f"reconcile-{item.metadata.name}")

    def delete(self, item: PeerCluster) -> None:
        self.directory.specs.pop(item.metadata.name, None)
        self.directory.unusable.pop(item.metadata.name, None)
        self._pending.spawn(self._remove(item.metadata.name), f"remove-{item.metadata.name}")

    def synced(self) -> bool:
        """Every known peer either synced or marked unreachable (for /readyz)."""
        if not self.reflector.synced.is_set():
            return False
        for name in self.directory.specs:
            runtime = self.directory.peers.get(name)
            if runtime is None:
                return False
            if not runtime.state.synced and runtime.state.reachable:
                return False
        return True

    async def _read_kubeconfig(self, pc: PeerCluster) -> str:
        ref = pc.spec.kubeconfig_secret_ref
        secret = msgspec.json.decode(await self.home.get(SECRETS.item(ref.name, ref.namespace)), type=_Secret)
        data = (secret.data or {}).get(ref.key)
        if not data:
            raise ValueError(f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}")
        return base64.b64decode(data).decode()

    async def _reconcile(self, name: str) -> None:
        async with self._lock:
            pc = self.directory.specs.get(name)
            if pc is None:
                return
            runtime = self.directory.peers.get(name)
            try:
                text = await self._read_kubeconfig(pc)
            except (ApiError, ValueError, OSError) as exc:
                message = f"cannot read the kubeconfig Secret: {exc}"
                log.warning("peer %s: %s", name, message)
                self.directory.unusable[name] = message
                if runtime is not None:
                    runtime.state.set_reachable(False, message)
                    self.virtual_nodes.touch(runtime.state)
                else:
                    await self.status.write(name, None, message)
                return
            digest = hashlib.sha256(text.encode()).hexdigest()
            if runtime is not None and runtime.kubeconfig_hash != digest:
                await self._stop(runtime)
                runtime = None
            if runtime is None:
                try:
                    runtime = await self._start(name, text, digest)
                except kube_client.KubeconfigError as exc:
                    self.directory.unusable[name] = str(exc)
                    await self.status.write(name, None, str(exc))
                    return
            self.directory.unusable.pop(name, None)
            before = runtime.state.health_reason()
            apply_spec(runtime.state, pc)
            self.virtual_nodes.touch(runtime.state)
            told = runtime.state.health_reason()
        if told != before:
            # Paused, resumed or being deleted: say so now, not at the next periodic write, so
            # `kubectl get peerclusters` and `spillover status` never show the old word.
            try:
                await self.status.write(name, runtime, told)
            except Exception as exc:
                log.debug("status of PeerCluster %s not written: %s", name, exc)
        await self._ensure_finalizer(pc)

    async def _ensure_finalizer(self, pc: PeerCluster) -> None:
        """Put the finalizer on a live PeerCluster, so deleting it waits for the peer's cleanup.

        A merge patch carrying the resourceVersion: a concurrent change to the list (another
        controller's finalizer) fails it with 409 rather than being overwritten, and the watch
        event of that change brings this back with the fresh list.
        """
        meta = pc.metadata
        if meta.deletion_timestamp is not None or FINALIZER in (meta.finalizers or ()):
            return
        finalizers = [*(meta.finalizers or ()), FINALIZER]
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.resource_version}}
        try:
            await self.home.request("PATCH", PEERCLUSTERS.item(meta.name), patch, content_type=PatchType.MERGE)
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("could not add finalizer %s to PeerCluster %s: %s", FINALIZER, meta.name, exc)

    async def _start(self, name: str, kubeconfig_text: str, digest: str) -> PeerRuntime:
        raw = await self.connect(kubeconfig_text, f"PeerCluster {name}", self.peer_timeout)
        state = PeerState(name=name, virtual_node=virtual_node_name(name))
        tracker = PeerTracker(state, self.virtual_nodes.touch, on_delegate_seen=self.reservations.delegate_seen)
        runtime = PeerRuntime(
            state=state,
            raw=raw,
            tracker=tracker,
            kubeconfig_hash=digest,
            node_reflector=Reflector(
                raw, NODES.collection(), PeerNode, _Health(state, tracker.nodes), name=f"{name}/nodes"
            ),
            pod_reflector=Reflector(
                raw,
                PODS.collection(),
                PeerPod,
                _Health(state, tracker.pods),
                query=[("fieldSelector", POD_FIELD_SELECTOR)],
                name=f"{name}/pods",
            ),
        )
        self.directory.peers[name] = runtime
        self.directory.by_virtual_node[state.virtual_node] = state
        self.reservations.peers[name] = state
        runtime.tasks = [
            asyncio.create_task(runtime.node_reflector.run(), name=f"{name}-nodes"),
            asyncio.create_task(runtime.pod_reflector.run(), name=f"{name}-pods"),
            asyncio.create_task(self._probe(runtime), name=f"{name}-probe"),
            asyncio.create_task(self._synced(runtime), name=f"{name}-synced"),
        ]
        self.virtual_nodes.add(state)
        for watcher in self.watchers:
            work = watcher.peer_started(runtime)
            runtime.peer_reflectors.extend(work.peer_reflectors)
            runtime.tasks.extend(asyncio.create_task(coro, name=f"{name}-{task}") for task, coro in work.tasks)
        log.info("peer %s added", name)
        return runtime

    async def _synced(self, runtime: PeerRuntime) -> None:
        await runtime.node_reflector.synced.wait()
        await runtime.pod_reflector.synced.wait()
        runtime.state.synced = True
        runtime.state.set_reachable(True)
        runtime.tracker.changed()
        # Tell `kubectl get peerclusters` at once rather than at the next periodic write.
        with contextlib.suppress(Exception):
            await self.status.write(runtime.state.name, runtime, "")

    async def _probe(self, runtime: PeerRuntime) -> None:
        """A cheap /readyz every few seconds: a hung peer is noticed even with quiet watches."""
        state = runtime.state
        while True:
            try:
                await runtime.raw.request("GET", READYZ, timeout=PROBE_TIMEOUT)
                runtime.last_seen = rfc3339()
                if runtime.told_unreachable:
                    runtime.told_unreachable = False
                    self._event(state.name, "PeerReachable", "the peer's apiserver answers again")
                if not state.reachable and state.synced:
                    state.set_reachable(True)
                    log.info("peer %s reachable again", state.name)
                    runtime.tracker.changed()
                    for reflector in runtime.reflectors():
                        reflector.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if state.reachable:
                    log.warning("peer %s unreachable: %s", state.name, exc)
                if not runtime.told_unreachable:
                    runtime.told_unreachable = True
                    grace = self.directory.grace_period(state.name)
                    self._event(
                        state.name,
                        "PeerUnreachable",
                        f"{type(exc).__name__}: {exc}; no new pods go there, and after {grace:g}s its pods that a "
                        "controller owns are recreated elsewhere",
                        warning=True,
                    )
                state.set_reachable(False, f"{type(exc).__name__}: {exc}"[:300] or "probe failed")
                runtime.tracker.changed()
            await asyncio.sleep(PROBE_EVERY)

    async def _stop(self, runtime: PeerRuntime) -> None:
        await cancel_and_wait(runtime.tasks)
        await runtime.raw.close()
        self.directory.peers.pop(runtime.state.name, None)
        self.directory.by_virtual_node.pop(runtime.state.virtual_node, None)

    async def _remove(self, name: str) -> None:
        async with self._lock:
            runtime = self.directory.peers.get(name)
            if runtime is not None:
                await self._stop(runtime)
                # Its state lives on in delegation and in plans: it must not look healthy there.
                runtime.state.set_reachable(False, "PeerCluster deleted")
                self.reservations.peers.pop(name, None)
            await self.virtual_nodes.remove(name)
            log.info("peer %s removed", name)

    def _event(
        self, name: str, reason: str, message: str, pc: PeerCluster | None = None, warning: bool = False
    ) -> None:
        pc = pc or self.directory.specs.get(name)
        if pc is None:
            return
        ref = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PeerCluster", "name": name, "uid": pc.metadata.uid}
        self.events.record(ref, reason, message, warning=warning)

    async def close(self) -> None:
        for runtime in list(self.directory.peers.values()):
            await self._stop(runtime)


def _spec_view(state: PeerState) -> tuple[Any, ...]:
    return (
        state.cost,
        state.cost_per_gib,
        state.cost_per_gpu,
        state.tier,
        state.paused,
        state.allowed_namespaces,
        state.remote_namespace,
        state.pod_security,
        state.detaching,
    )


class _Secret(msgspec.Struct):
    data: dict[str, str] | None = None


class _Health(Handler[Any]):
    """Wraps a tracker handler: a failed list/watch marks the peer unreachable."""

    def __init__(self, state: PeerState, inner: Handler[Any]) -> None:
        self.state = state
        self.inner = inner

    def replace(self, items: list[Any]) -> None:
        self.inner.replace(items)

    def listing(self) -> Listing[Any]:
        return self.inner.listing()

    def upsert(self, item: Any) -> None:
        self.inner.upsert(item)

    def delete(self, item: Any) -> None:
        self.inner.delete(item)

    def failed(self, error: str) -> None:
        self.state.set_reachable(False, error[:300])


def apply_spec(state: PeerState, pc: PeerCluster) -> None:
    """Take in the PeerCluster's spec; a new generation only when something changed (its status,
    which Spillover itself writes every few seconds, brings the same spec back each time)."""
    spec = pc.spec
    before = _spec_view(state)
    state.cost = spec.cost
    state.cost_per_gib = spec.cost_per_gi_b
    state.cost_per_gpu = spec.cost_per_gpu
    state.tier = spec.tier
    state.paused = spec.paused
    state.allowed_namespaces = spec.allowed_namespaces
    state.remote_namespace = spec.namespace or None
    state.pod_security = spec.pod_security
    state.detaching = "its PeerCluster is being deleted" if pc.metadata.deletion_timestamp else ""
    if _spec_view(state) != before:
        state.bump()
