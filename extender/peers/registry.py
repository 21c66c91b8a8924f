"""Peers come and go as PeerCluster objects change: each gets a client, watches and a virtual node.

Everything is rebuilt from the apiservers on start (the PeerCluster list, each peer's Secret,
Nodes and Pods), so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client as k8s

from extender.capacity.model import PeerState
from extender.capacity.tracker import PeerTracker, Reservations
from extender.kube import client as kube_client
from extender.kube.raw import ApiError, RawClient
from extender.kube.reflector import Handler, Reflector
from extender.kube.tasks import cancel_and_wait
from extender.peers.model import FINALIZER, GROUP, PATH, VERSION, PeerCluster
from extender.peers.virtual_node import VirtualNodes, virtual_node_name
from extender.wire.core import Node, Pod

log = logging.getLogger("spillover.peers")
PROBE_EVERY = 3.0
PROBE_TIMEOUT = 2.0
STATUS_EVERY = 10.0


@dataclass
class PeerRuntime:
    state: PeerState
    api: k8s.ApiClient
    raw: RawClient
    tracker: PeerTracker
    kubeconfig_hash: str
    node_reflector: Reflector[Node]
    pod_reflector: Reflector[Pod]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    last_seen: str = ""
    told_unreachable: bool = False
    """A PeerUnreachable Event was recorded and no PeerReachable since."""
    peer_reflectors: list[Reflector[Any]] = field(default_factory=list)
    """Other watches on this peer (the delegator's), woken with ours when the peer is back."""

    def reflectors(self) -> list[Reflector[Any]]:
        return [self.node_reflector, self.pod_reflector, *self.peer_reflectors]


class PeerRegistry(Handler[PeerCluster]):
    def __init__(
        self,
        home: RawClient,
        virtual_nodes: VirtualNodes,
        reservations: Reservations,
        peer_timeout: float = 5.0,
    ) -> None:
        self.home = home
        self.virtual_nodes = virtual_nodes
        self.reservations = reservations
        self.peer_timeout = peer_timeout
        self.peers: dict[str, PeerRuntime] = {}
        self.by_virtual_node: dict[str, PeerState] = {}
        self.specs: dict[str, PeerCluster] = {}
        self.advice_for: Callable[[str], list[dict[str, Any]]] | None = None
        """Scale-up advice per peer from the planner, published in PeerCluster status."""
        self.listeners: list[Callable[[PeerRuntime], None]] = []
        """Called when a peer runtime starts (the delegator watches delegates through it)."""
        self.unusable: dict[str, str] = {}
        """Peers whose kubeconfig Secret cannot be read or used, and why."""
        self.detach_progress: dict[str, str] = {}
        """What the delegator is still waiting for before a deleted PeerCluster can go."""
        self.record_event: Callable[[dict[str, str], str, str, bool], None] | None = None
        """Records an Event (set by the composition root: the leader's recorder, or None)."""
        self._pending: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.reflector = Reflector(home, PATH, PeerCluster, self, name="peerclusters")

    # Reflector callbacks: schedule async reconciles, keep the event loop free.
    def replace(self, items: list[PeerCluster]) -> None:
        names = {pc.metadata.name for pc in items}
        for gone in set(self.specs) - names:
            self._spawn(self._remove(gone))
        for pc in items:
            self.upsert(pc)

    def upsert(self, item: PeerCluster) -> None:
        before = self.specs.get(item.metadata.name)
        if item.metadata.deletion_timestamp and (before is None or not before.metadata.deletion_timestamp):
            self._event(
                item.metadata.name,
                "Detaching",
                "PeerCluster deleted: no new pods go there; its pods are failed over and what Spillover made "
                "in the peer is deleted before it goes",
                item,
            )
        self.specs[item.metadata.name] = item
        self._spawn(self._reconcile(item.metadata.name))

    def delete(self, item: PeerCluster) -> None:
        self.specs.pop(item.metadata.name, None)
        self.unusable.pop(item.metadata.name, None)
        self.detach_progress.pop(item.metadata.name, None)
        self._spawn(self._remove(item.metadata.name))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def synced(self) -> bool:
        """Every known peer either synced or marked unreachable (for /readyz)."""
        if not self.reflector.synced.is_set():
            return False
        for name in self.specs:
            runtime = self.peers.get(name)
            if runtime is None:
                return False
            if not runtime.state.synced and runtime.state.reachable:
                return False
        return True

    async def _read_kubeconfig(self, pc: PeerCluster) -> str:
        ref = pc.spec.kubeconfig_secret_ref
        raw = await self.home.get(f"/api/v1/namespaces/{ref.namespace}/secrets/{ref.name}")
        import msgspec

        secret = msgspec.json.decode(raw)
        data = (secret.get("data") or {}).get(ref.key)
        if not data:
            raise ValueError(f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}")
        return base64.b64decode(data).decode()

    async def _reconcile(self, name: str) -> None:
        async with self._lock:
            pc = self.specs.get(name)
            if pc is None:
                return
            runtime = self.peers.get(name)
            try:
                text = await self._read_kubeconfig(pc)
            except (ApiError, ValueError, OSError) as exc:
                message = f"cannot read the kubeconfig Secret: {exc}"
                log.warning("peer %s: %s", name, message)
                self.unusable[name] = message
                if runtime is not None:
                    runtime.state.set_reachable(False, message)
                    self.virtual_nodes.touch(runtime.state)
                else:
                    await self._write_status_for(name, None, message)
                return
            digest = hashlib.sha256(text.encode()).hexdigest()
            if runtime is not None and runtime.kubeconfig_hash != digest:
                await self._stop(runtime)
                runtime = None
            if runtime is None:
                try:
                    runtime = await self._start(name, text, digest)
                except kube_client.KubeconfigError as exc:
                    self.unusable[name] = str(exc)
                    await self._write_status_for(name, None, str(exc))
                    return
            self.unusable.pop(name, None)
            before = runtime.state.health_reason()
            self._apply_spec(runtime.state, pc)
            self.virtual_nodes.touch(runtime.state)
            told = runtime.state.health_reason()
        if told != before:
            # Paused, resumed or being deleted: say so now, not at the next periodic write, so
            # `kubectl get peerclusters` and `spillover status` never show the old word.
            try:
                await self._write_status_for(name, runtime, told)
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
            await self.home.request("PATCH", f"{PATH}/{meta.name}", patch, content_type="application/merge-patch+json")
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("could not add finalizer %s to PeerCluster %s: %s", FINALIZER, meta.name, exc)

    def deleting(self) -> list[str]:
        """PeerClusters deleted but held by Spillover's finalizer: their peers are to be detached."""
        return [
            name
            for name, pc in self.specs.items()
            if pc.metadata.deletion_timestamp is not None and FINALIZER in (pc.metadata.finalizers or ())
        ]

    async def release(self, name: str) -> bool:
        """The peer holds nothing of Spillover's any more: drop its virtual node and the finalizer
        (the PeerCluster then goes, and its DELETED event stops the peer's watches)."""
        pc = self.specs.get(name)
        if pc is None:
            return True
        await self.virtual_nodes.remove(name)
        meta = pc.metadata
        kept = [f for f in meta.finalizers or () if f != FINALIZER]
        patch = {"metadata": {"finalizers": kept or None, "resourceVersion": meta.resource_version}}
        try:
            await self.home.request("PATCH", f"{PATH}/{name}", patch, content_type="application/merge-patch+json")
        except ApiError as exc:
            if exc.status == 404:
                return True
            log.warning("could not remove finalizer %s from PeerCluster %s (will retry): %s", FINALIZER, name, exc)
            return False
        log.info("peer %s detached: finalizer %s removed", name, FINALIZER)
        return True

    @staticmethod
    def _apply_spec(state: PeerState, pc: PeerCluster) -> None:
        spec = pc.spec
        state.cost = spec.cost
        state.cost_per_gib = spec.cost_per_gi_b
        state.cost_per_gpu = spec.cost_per_gpu
        state.tier = spec.tier
        state.paused = spec.paused
        state.allowed_namespaces = spec.allowed_namespaces
        state.remote_namespace = spec.namespace or None
        state.pod_security = spec.pod_security
        state.detaching = "its PeerCluster is being deleted" if pc.metadata.deletion_timestamp else ""
        state.generation += 1

    async def _start(self, name: str, kubeconfig_text: str, digest: str) -> PeerRuntime:
        api = await kube_client.from_text(kubeconfig_text, f"PeerCluster {name}")
        raw = RawClient(api, timeout=self.peer_timeout)
        state = PeerState(name=name, virtual_node=virtual_node_name(name))
        tracker = PeerTracker(state, self.virtual_nodes.touch)
        tracker.on_delegate_seen = self.reservations.release
        runtime = PeerRuntime(
            state=state,
            api=api,
            raw=raw,
            tracker=tracker,
            kubeconfig_hash=digest,
            node_reflector=Reflector(raw, "/api/v1/nodes", Node, _Health(state, tracker.nodes), name=f"{name}/nodes"),
            pod_reflector=Reflector(raw, "/api/v1/pods", Pod, _Health(state, tracker.pods), name=f"{name}/pods"),
        )
        self.peers[name] = runtime
        self.by_virtual_node[state.virtual_node] = state
        self.reservations.peers[name] = state
        runtime.tasks = [
            asyncio.create_task(runtime.node_reflector.run(), name=f"{name}-nodes"),
            asyncio.create_task(runtime.pod_reflector.run(), name=f"{name}-pods"),
            asyncio.create_task(self._probe(runtime), name=f"{name}-probe"),
            asyncio.create_task(self._synced(runtime), name=f"{name}-synced"),
        ]
        self.virtual_nodes.add(state)
        for listener in self.listeners:
            listener(runtime)
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
            await self._write_status_for(runtime.state.name, runtime, "")

    async def _probe(self, runtime: PeerRuntime) -> None:
        """A cheap /readyz every few seconds: a hung peer is noticed even with quiet watches."""
        state = runtime.state
        while True:
            try:
                await runtime.raw.request("GET", "/readyz", timeout=PROBE_TIMEOUT)
                runtime.last_seen = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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
                    grace = self.grace_period(state.name)
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
        await runtime.api.close()
        self.peers.pop(runtime.state.name, None)
        self.by_virtual_node.pop(runtime.state.virtual_node, None)

    async def _remove(self, name: str) -> None:
        async with self._lock:
            runtime = self.peers.get(name)
            if runtime is not None:
                await self._stop(runtime)
                # Its state lives on in the delegator and in plans: it must not look healthy there.
                runtime.state.set_reachable(False, "PeerCluster deleted")
                self.reservations.peers.pop(name, None)
            await self.virtual_nodes.remove(name)
            log.info("peer %s removed", name)

    def _event(
        self, name: str, reason: str, message: str, pc: PeerCluster | None = None, warning: bool = False
    ) -> None:
        pc = pc or self.specs.get(name)
        if self.record_event is None or pc is None:
            return
        ref = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PeerCluster", "name": name, "uid": pc.metadata.uid}
        self.record_event(ref, reason, message, warning)

    def grace_period(self, name: str) -> float:
        pc = self.specs.get(name)
        return float(pc.spec.grace_period_seconds) if pc is not None else 60.0

    async def close(self) -> None:
        for runtime in list(self.peers.values()):
            await self._stop(runtime)

    async def run_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY)
            for name in list(self.specs):
                runtime = self.peers.get(name)
                if runtime is None:
                    continue
                try:
                    await self._write_status_for(name, runtime, runtime.state.health_reason())
                except Exception as exc:
                    log.debug("status of PeerCluster %s not written: %s", name, exc)

    async def _write_status_for(self, name: str, runtime: PeerRuntime | None, message: str) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status: dict[str, Any] = {}
        if runtime is None:
            status["conditions"] = [
                _condition("Ready", False, "KubeconfigInvalid", message, now),
                _condition("Reachable", False, "KubeconfigInvalid", message, now),
            ]
        else:
            state = runtime.state
            free = state.free_total()
            status = {
                "conditions": [
                    _condition(
                        "Ready",
                        state.healthy,
                        "PeerReady" if state.healthy else "Detaching" if state.detaching else "PeerNotReady",
                        ready_message(state, self.detach_progress.get(name, ""), message),
                        now,
                    ),
                    _condition(
                        "Reachable",
                        state.reachable,
                        "Reachable" if state.reachable else "Unreachable",
                        state.unreachable_reason if not state.reachable else "apiserver answers",
                        now,
                    ),
                ],
                "capacity": {
                    "nodes": len(state.nodes),
                    "schedulableNodes": sum(1 for n in state.nodes.values() if n.schedulable),
                    "free": {
                        "cpu": f"{free.get('cpu', 0)}m",
                        "memory": f"{free.get('memory', 0) // 2**20}Mi",
                        "pods": free.get("pods", 0),
                    },
                },
                "virtualNode": state.virtual_node,
            }
            if runtime.last_seen:
                status["lastSeen"] = runtime.last_seen
            if self.advice_for is not None:
                status["scaleUpAdvice"] = self.advice_for(name)
        await self.home.request(
            "PATCH", f"{PATH}/{name}/status", {"status": status}, content_type="application/merge-patch+json"
        )


def ready_message(state: PeerState, progress: str, message: str) -> str:
    """The Ready condition's message: what is true of the peer now. "placing pods here" only
    while it is healthy; otherwise the detach's progress, the caller's reason or the peer's own."""
    if state.healthy:
        return "placing pods here"
    return progress or message or state.health_reason() or "not placing pods here"


def _condition(kind: str, ok: bool, reason: str, message: str, now: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }


class _Health(Handler[Any]):
    """Wraps a tracker handler: a failed list/watch marks the peer unreachable."""

    def __init__(self, state: PeerState, inner: Handler[Any]) -> None:
        self.state = state
        self.inner = inner

    def replace(self, items: list[Any]) -> None:
        self.inner.replace(items)

    def upsert(self, item: Any) -> None:
        self.inner.upsert(item)

    def delete(self, item: Any) -> None:
        self.inner.delete(item)

    def failed(self, error: str) -> None:
        self.state.set_reachable(False, error[:300])
