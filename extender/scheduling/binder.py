"""The `bind` verb's side effects: the commit point of a placement.

Defence in depth: kube-scheduler is meant to be the only caller (the transport sees to that), but
bind trusts no caller. It binds only a pod Spillover prepared (it requests the marker resource,
which only such pods carry, and is not bound yet) and only where the pod's own rules let it go:

- a real node whose labels (nodeSelector, required node affinity), taints and cordon the pod
  satisfies, judged from the home node cache (no I/O; a forged bind must not put a pod on a
  dedicated or control-plane node). Resources stay the scheduler's call, and the kubelet re-checks
  them at admission;
- a virtual node only for a pod of a namespace that is opted in now, that tolerates the virtual
  node's taint and whose hints allow the peer, of a healthy peer that admits its namespace
  (allowedNamespaces) and its Pod Security level, with a node it fits.

Each refusal says why; kube-scheduler puts it in the pod's FailedScheduling event.

The pod judged is the one filter saw moments before, as the scheduler sent it, only when the
extender's caller is known to be the scheduler (``trust_filtered``: loopback, or a verified client
certificate); otherwise, and for a bind no filter preceded (a forged one), it is read from the
apiserver, so what a caller claims about a pod never decides.

A virtual node is re-checked against the capacity cache (a burst of binds may have used the room
the filter saw), reserved, handed to the delegator (which creates the pod in the peer) and only
then bound; any failure undoes what this bind did and is returned to kube-scheduler, which
retries the pod. Nothing half-done remains.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import msgspec
from cachetools import TTLCache

from extender import labels, pod_security
from extender.capacity.fit import find_node, placement_rejection, untolerated_taint
from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.capacity.reservations import Reservations
from extender.hints import HintError, parse_hints
from extender.kube.api import PODS, Api
from extender.kube.raw import ApiError
from extender.marker import has_marker
from extender.pod_requests import pod_requests
from extender.pod_security import Level
from extender.resources import SPILLABLE
from extender.scheduling.filter import namespace_refusal, not_known, not_opted_in
from extender.scheduling.refusals import PeerRefusals
from extender.scheduling.state import BindError, BindRefused
from extender.wire.core import Pod, Taint, pod_decoder

log = logging.getLogger("spillover.bind")
FILTERED_PODS = 20_000
FILTERED_POD_SECONDS = 120.0
"""How long a lasting refusal (BindRefused) keeps a pod off a peer before a bind may try again."""


class HomeView(Protocol):
    """What the binder reads of home from the watches (no I/O)."""

    def opted_in(self, namespace: str) -> bool | None:
        """None for a namespace the cache does not know (yet)."""

    def namespace_labels(self, namespace: str) -> Mapping[str, str]: ...

    def node(self, name: str) -> NodeCapacity | None:
        """A real home node's labels, taints and cordon."""


class Budget(Protocol):
    """The namespaces' spend caps, as bind checks them (kept abstract: the ledger lives above)."""

    def hold(self, uid: str, namespace: str, peer: PeerState, requests: Mapping[str, int]) -> str | None:
        """Check the pod against its namespace's cap and count its price while it binds; the
        refusal when it would go over (nothing held then)."""

    def release(self, uid: str) -> None:
        """The bind failed: its price no longer counts."""


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
        home: Api,
        peers_by_virtual_node: Mapping[str, PeerState],
        reservations: Reservations,
        home_view: HomeView,
        delegation: Delegation | None = None,
        on_peer_bound: Callable[[Pod, str], None] | None = None,
        trust_filtered: bool = True,
        budgets: Budget | None = None,
        refusals: PeerRefusals | None = None,
    ) -> None:
        self.home = home
        self.peers = peers_by_virtual_node
        self.reservations = reservations
        self.home_view = home_view
        self.delegation = delegation
        self.on_peer_bound = on_peer_bound
        self.budgets = budgets
        """Spend caps: checked again here, and the price held, so a burst cannot overshoot a cap."""
        self.trust_filtered = trust_filtered
        """Whether the pods filter saw may be judged and delegated without reading them back: only
        when the extender's caller can only be the scheduler."""
        self.filtered_pods: TTLCache[str, tuple[Pod, bytes]] = TTLCache(maxsize=FILTERED_PODS, ttl=FILTERED_POD_SECONDS)
        """Pods filter passed (decoded, and as sent), by UID: their bind follows within ms."""
        self.refused = refusals if refusals is not None else PeerRefusals()
        """Why a bind to a peer failed for a reason that lasts (BindRefused), shared with filter
        and the planner."""

    def refused_before(self, pod: Pod, peer: PeerState) -> str | None:
        return self.refused.get(pod.metadata.uid, peer)

    async def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        pod, body = await self._get_pod(namespace, name, uid)
        peer = self.peers.get(node)
        refusal = self._unprepared(pod)
        refusal = refusal or (self._home_misfit(pod, node) if peer is None else self._peer_refusal(pod, peer))
        if refusal:
            raise BindError(f"cannot bind {namespace}/{name} to {node}: {refusal}")
        if peer is None:
            await self._binding(namespace, name, uid, node)
            return
        raw_pod: dict[str, Any] = msgspec.json.decode(body)
        if peer.pod_security is not Level.PRIVILEGED:
            try:
                refused = pod_security.refusal(pod_security.from_dict(raw_pod), peer.pod_security, peer.name)
            except msgspec.MsgspecError as exc:
                refused = f"the pod's security settings do not decode: {exc}"
            if refused:
                raise BindError(f"cannot bind {namespace}/{name} to {node}: {refused}")
        requests = pod_requests(pod)
        fit = find_node(pod, requests, peer)
        if fit.node is None:
            raise BindError(f"cannot bind {namespace}/{name} to {node}: {fit.reason}")
        if self.budgets is not None and (over := self.budgets.hold(uid, namespace, peer, requests)) is not None:
            raise BindError(f"cannot bind {namespace}/{name} to {node}: {over}")
        self.reservations.hold(uid, peer, fit.node, requests)
        undo: Callable[[], Awaitable[None]] | None = None
        annotations: dict[str, str] = {}
        try:
            if self.delegation is not None:
                undo, annotations = await self.delegation.create_delegate(raw_pod, pod, peer, fit.node)
            try:
                await self._binding(namespace, name, uid, node, annotations)
            except (BindError, asyncio.CancelledError):
                raise
            except Exception as exc:
                # No answer (a timeout, a connection cut, the apiserver restarting): the Binding
                # may have been stored. Deleting the delegate now could leave a bound pod with
                # none; kept, it serves the pod if it was bound, and if not, the retry reuses it
                # (same peer) or removes it (another peer), or the orphan sweep does.
                log.warning(
                    "binding %s/%s to %s: no answer (%s); its delegate is kept until it is known whether it was bound",
                    namespace,
                    name,
                    node,
                    type(exc).__name__,
                )
                undo = None
                raise
        except BaseException as exc:
            self.reservations.release(uid)
            if self.budgets is not None:
                self.budgets.release(uid)
            if isinstance(exc, BindRefused):
                self.refused.note(uid, peer.name, str(exc))
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

    def _unprepared(self, pod: Pod) -> str:
        """Why this is not a pod Spillover binds ("" when it is)."""
        if not has_marker(pod):
            return (
                f"the pod does not request {SPILLABLE}: Spillover binds only the pods its webhook prepared "
                "(kube-scheduler sends no other)"
            )
        if pod.spec.node_name:
            return f"the pod is already bound to {pod.spec.node_name}"
        return ""

    def _home_misfit(self, pod: Pod, node: str) -> str:
        """Why the pod may not go on this real node by its own rules ("" when it may)."""
        found = self.home_view.node(node)
        if found is None:
            return f"node {node} is not in Spillover's home node cache yet"
        reason = placement_rejection(pod, found)
        return f"the pod does not fit node {node}: {reason}" if reason else ""

    def _peer_refusal(self, pod: Pod, peer: PeerState) -> str:
        """Why the pod may not go to this peer, asked without I/O ("" when it may)."""
        namespace = pod.metadata.namespace
        opted_in = self.home_view.opted_in(namespace)
        if opted_in is None:
            return not_known(namespace)
        if not opted_in:
            return not_opted_in(namespace)
        if not peer.healthy:
            return peer.health_reason()
        taint = Taint(key=labels.VIRTUAL, value=peer.name, effect="NoSchedule")
        if untolerated_taint(pod.spec.tolerations or (), (taint,)) is not None:
            return f"the pod does not tolerate the virtual node's taint {labels.VIRTUAL}={peer.name}:NoSchedule"
        try:
            hints = parse_hints(pod.metadata.annotations)
        except HintError as exc:
            return str(exc)
        if not hints.allows(peer.name) or not hints.allows_cost(peer.cost):
            return f"the pod's placement hints exclude peer {peer.name}"
        if refused := namespace_refusal(peer, namespace, self.home_view.namespace_labels(namespace)):
            return refused
        if self.delegation is not None and (why := self.delegation.avoided(pod, peer.name)):
            return why
        return ""

    async def _get_pod(self, namespace: str, name: str, uid: str) -> tuple[Pod, bytes]:
        """The pod as filter saw it moments ago (when its caller can only be the scheduler), else
        as the apiserver has it. Either way the Binding carries the UID, so a pod replaced in
        between fails the bind rather than binding."""
        remembered = self.filtered_pods.pop(uid, None) if uid else None
        if remembered is not None and self.trust_filtered:
            pod, body = remembered
            if pod.metadata.uid == uid and pod.metadata.name == name and pod.metadata.namespace == namespace:
                return pod, body
        try:
            payload = await self.home.get(PODS.item(name, namespace))
        except ApiError as exc:
            raise BindError(f"cannot read pod {namespace}/{name}: {exc.message}") from exc
        pod = pod_decoder.decode(payload)
        if uid and pod.metadata.uid != uid:
            raise BindError(f"pod {namespace}/{name} was replaced (uid {pod.metadata.uid}, expected {uid})")
        return pod, payload

    async def _binding(
        self, namespace: str, name: str, uid: str, node: str, annotations: Mapping[str, str] | None = None
    ) -> None:
        body = binding_body(namespace, name, uid, node, annotations)
        try:
            await self.home.request("POST", PODS.item(name, namespace, "binding"), body)
        except ApiError as exc:
            raise BindError(f"binding {namespace}/{name} to {node} failed: {exc.message}") from exc
