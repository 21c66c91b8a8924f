"""The `bind` verb's side effects: the commit point of a placement.

A real node gets a plain Binding. A virtual node is re-checked against the capacity cache (a
burst of binds may have used the room the filter saw), reserved, handed to the delegator (which
creates the pod in the peer) and only then bound; any failure undoes what this bind did and is
returned to kube-scheduler, which retries the pod. Nothing half-done remains.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import msgspec
from cachetools import TTLCache

from extender.capacity.fit import find_node
from extender.capacity.model import PeerState
from extender.capacity.tracker import Reservations
from extender.kube.raw import ApiError, RawClient
from extender.resources import pod_requests
from extender.scheduling.state import BindError
from extender.wire.core import Pod, pod_decoder

log = logging.getLogger("spillover.bind")
FILTERED_PODS = 20_000
FILTERED_POD_SECONDS = 120.0


class Delegation(Protocol):
    """What the binder needs of the delegator (kept abstract so the arrows point one way)."""

    async def create_delegate(
        self, raw_pod: dict[str, Any], pod: Pod, peer: PeerState, peer_node: str
    ) -> tuple[Callable[[], Awaitable[None]], dict[str, str]]:
        """Create the delegate in the peer (idempotently); return how to undo it and the
        annotations the proxy's Binding carries (so the proxy needs no write of its own)."""

    def bound(self, pod: Pod, peer: PeerState, peer_node: str) -> None:
        """The proxy is bound: report it."""

    def avoided(self, pod: Pod, peer: str) -> str | None:
        """Why this pod's workload must not go to that peer now, if it must not."""


def binding_body(
    namespace: str, name: str, uid: str, node: str, annotations: Mapping[str, str] | None = None
) -> dict[str, object]:
    """A pods/binding body; the apiserver copies its annotations onto the pod as it binds it."""
    metadata: dict[str, object] = {"name": name, "namespace": namespace, "uid": uid}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": metadata,
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


class Binder:
    def __init__(
        self,
        home: RawClient,
        peers_by_virtual_node: Mapping[str, PeerState],
        reservations: Reservations,
        delegation: Delegation | None = None,
        on_peer_bound: Callable[[Pod, str], None] | None = None,
    ) -> None:
        self.home = home
        self.peers = peers_by_virtual_node
        self.reservations = reservations
        self.delegation = delegation
        self.on_peer_bound = on_peer_bound
        self.filtered_pods: TTLCache[str, tuple[Pod, bytes]] = TTLCache(maxsize=FILTERED_PODS, ttl=FILTERED_POD_SECONDS)
        """Pods filter passed to a peer (decoded, and as sent), by UID: their bind follows within ms."""

    async def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        peer = self.peers.get(node)
        if peer is None:
            await self._binding(namespace, name, uid, node)
            return
        raw_pod, pod = await self._get_pod(namespace, name, uid)
        if not peer.healthy:
            raise BindError(f"cannot bind {namespace}/{name} to {node}: {peer.health_reason()}")
        requests = pod_requests(pod)
        fit = find_node(pod, requests, peer)
        if fit.node is None:
            raise BindError(f"cannot bind {namespace}/{name} to {node}: {fit.reason}")
        if self.delegation is not None and (why := self.delegation.avoided(pod, peer.name)):
            raise BindError(f"cannot bind {namespace}/{name} to {node}: {why}")
        self.reservations.hold(uid, peer, fit.node, requests)
        undo: Callable[[], Awaitable[None]] | None = None
        annotations: dict[str, str] = {}
        try:
            if self.delegation is not None:
                undo, annotations = await self.delegation.create_delegate(raw_pod, pod, peer, fit.node)
            await self._binding(namespace, name, uid, node, annotations)
        except BaseException as exc:
            self.reservations.release(uid)
            if undo is not None:
                try:
                    await undo()
                except Exception as undo_exc:  # the orphan sweep collects what this leaves
                    log.warning("undo after failed bind of %s/%s failed: %s", namespace, name, undo_exc)
            if isinstance(exc, BindError):
                raise
            if isinstance(exc, Exception):
                raise BindError(f"cannot bind {namespace}/{name} to {node}: {exc}") from exc
            raise
        if self.delegation is not None:
            self.delegation.bound(pod, peer, fit.node)
        if self.on_peer_bound is not None:
            self.on_peer_bound(pod, peer.name)
        log.info(
            "bound to peer",
            extra={"pod": f"{namespace}/{name}", "uid": uid, "peer": peer.name, "peer_node": fit.node},
        )

    async def _get_pod(self, namespace: str, name: str, uid: str) -> tuple[dict[str, Any], Pod]:
        """The pod as filter saw it moments ago, else as the apiserver has it. Either way the
        Binding carries the UID, so a pod replaced in between fails the bind rather than binding."""
        remembered = self.filtered_pods.pop(uid, None) if uid else None
        if remembered is not None:
            pod, body = remembered
            if pod.metadata.uid == uid and pod.metadata.name == name and pod.metadata.namespace == namespace:
                return msgspec.json.decode(body), pod
        try:
            payload = await self.home.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        except ApiError as exc:
            raise BindError(f"cannot read pod {namespace}/{name}: {exc.message}") from exc
        pod = pod_decoder.decode(payload)
        if uid and pod.metadata.uid != uid:
            raise BindError(f"pod {namespace}/{name} was replaced (uid {pod.metadata.uid}, expected {uid})")
        raw: dict[str, Any] = msgspec.json.decode(payload)
        return raw, pod

    async def _binding(
        self, namespace: str, name: str, uid: str, node: str, annotations: Mapping[str, str] | None = None
    ) -> None:
        body = binding_body(namespace, name, uid, node, annotations)
        try:
            await self.home.request("POST", f"/api/v1/namespaces/{namespace}/pods/{name}/binding", body)
        except ApiError as exc:
            raise BindError(f"binding {namespace}/{name} to {node} failed: {exc.message}") from exc
