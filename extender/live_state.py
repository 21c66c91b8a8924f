"""The live SchedulingState: home's nodes and namespaces, the peers, the planner and the binder.

Every read the extender verbs make is a dict lookup into caches that watches keep current; the
only I/O on the scheduling path is the bind itself.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from typing import Protocol

import msgspec

from extender import labels
from extender.budgets import Budgets, CapError, parse_cap
from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.delegation.avoid import AvoidList
from extender.home_capacity import HomeCapacity
from extender.kube.api import NODES, Api
from extender.kube.raw import ApiError
from extender.kube.reflector import Handler
from extender.peers.directory import PeerDirectory
from extender.scheduling.binder import Binder
from extender.scheduling.filter import namespace_refusal
from extender.scheduling.refusals import PeerRefusals
from extender.scheduling.state import BindError
from extender.wire.core import Node, Pod

node_decoder = msgspec.json.Decoder(Node)

NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A DNS subdomain, as every Node name is (checked before a name goes into an apiserver path)."""


class Namespace(Node):
    """Only metadata is read (labels for opt-in and PeerCluster allowedNamespaces, the spend cap)."""


class HomeNamespaces(Handler[Namespace]):
    """Home namespaces' labels (opt-in, allowedNamespaces) and spend caps (``budgets.Caps``).

    ``on_cap_change`` runs when a namespace's cap appears, changes or goes: pods waiting for
    room under it are retried by kube-scheduler only on a cluster event, so it is told of one
    (the virtual nodes are rewritten, as for a change of a peer's capacity).
    """

    def __init__(self, on_cap_change: Callable[[], None] | None = None) -> None:
        self.labels: dict[str, dict[str, str]] = {}
        self.caps: dict[str, float | str] = {}
        self.on_cap_change = on_cap_change

    def replace(self, items: list[Namespace]) -> None:
        self.labels = {n.metadata.name: dict(n.metadata.labels or {}) for n in items}
        before = self.caps
        self.caps = {}
        for item in items:
            self._set_cap(item)
        if before != self.caps:
            self._cap_changed()

    def upsert(self, item: Namespace) -> None:
        self.labels[item.metadata.name] = dict(item.metadata.labels or {})
        before = self.caps.get(item.metadata.name)
        self._set_cap(item)
        if self.caps.get(item.metadata.name) != before:
            self._cap_changed()

    def delete(self, item: Namespace) -> None:
        self.labels.pop(item.metadata.name, None)
        self.caps.pop(item.metadata.name, None)

    def _set_cap(self, item: Namespace) -> None:
        name = item.metadata.name
        try:
            cap: float | str | None = parse_cap(item.metadata.annotations)
        except CapError as exc:
            cap = f"namespace {name}: {exc}"
        if cap is None:
            self.caps.pop(name, None)
        else:
            self.caps[name] = cap

    def _cap_changed(self) -> None:
        if self.on_cap_change is not None:
            self.on_cap_change()

    def cap(self, namespace: str) -> float | str | None:
        return self.caps.get(namespace)

    def capped(self) -> Mapping[str, float | str]:
        return self.caps

    def opted_in(self, namespace: str) -> bool | None:
        """None for a namespace the cache has not seen (yet)."""
        found = self.labels.get(namespace)
        return None if found is None else labels.opted_in(found)


class HomeView:
    """What bind reads of home, from the watches: namespaces (opt-in, labels) and real nodes."""

    def __init__(self, nodes: HomeCapacity, namespaces: HomeNamespaces) -> None:
        self._nodes = nodes
        self._namespaces = namespaces

    def opted_in(self, namespace: str) -> bool | None:
        return self._namespaces.opted_in(namespace)

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self._namespaces.labels.get(namespace, {})

    def node(self, name: str) -> NodeCapacity | None:
        return self._nodes.node(name)


class PlannerVeto:
    """What keeps a pod off a peer besides room, for the planner: the rules filter applies too
    (the peer's allowedNamespaces, a workload withdrawn from the peer recently), and what filter or
    bind found the peer would refuse (its Pod Security level, a bind the peer refused)."""

    def __init__(self, namespaces: HomeNamespaces, avoid: AvoidList, refusals: PeerRefusals) -> None:
        self.namespaces = namespaces
        self.avoid = avoid
        self.refusals = refusals

    def __call__(self, pod: Pod, peer: PeerState) -> str | None:
        namespace = pod.metadata.namespace
        refusal = namespace_refusal(peer, namespace, self.namespaces.labels.get(namespace, {}))
        if refusal is None:
            refusal = self.refusals.get(pod.metadata.uid, peer)
        return refusal if refusal is not None else self.avoid.avoided(pod, peer.name)


class Planning(Protocol):
    def note_candidate(self, pod: Pod) -> None: ...

    def score(self, pod: Pod, peer: PeerState) -> int | None: ...

    def gang_peer(self, pod: Pod, gang: str) -> str | None: ...

    def gang_reason(self, pod: Pod, gang: str) -> str | None: ...


class LiveState:
    def __init__(
        self,
        home: Api,
        directory: PeerDirectory,
        nodes: HomeCapacity,
        namespaces: HomeNamespaces,
        binder: Binder,
        avoid: AvoidList,
        planner: Planning | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self.home = home
        self.directory = directory
        self.nodes = nodes
        self.namespaces = namespaces
        self.binder = binder
        self.avoid = avoid
        self.planner = planner
        self.budgets = budgets

    def peer_for_node(self, node_name: str) -> PeerState | None:
        return self.directory.by_virtual_node.get(node_name)

    def is_virtual_node_name(self, node_name: str) -> bool:
        return node_name.startswith(labels.VIRTUAL_NODE_PREFIX) and node_name not in self.nodes.names

    def home_node_exists(self, node_name: str) -> bool:
        return node_name in self.nodes.names

    async def confirm_home_node(self, node_name: str) -> bool:
        if len(node_name) > 253 or not NODE_NAME.fullmatch(node_name):
            return False  # not a name any node can have: nothing to ask
        try:
            payload = await self.home.get(NODES.item(node_name))
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise BindError(f"cannot tell whether node {node_name} exists: {exc.message}") from exc
        except OSError as exc:
            raise BindError(f"cannot tell whether node {node_name} exists: {exc}") from exc
        with contextlib.suppress(msgspec.MsgspecError):  # the bind that follows judges the pod against it
            self.nodes.nodes.upsert(node_decoder.decode(payload))
        return True

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self.namespaces.labels.get(namespace, {})

    def namespace_opted_in(self, namespace: str) -> bool | None:
        return self.namespaces.opted_in(namespace)

    def avoided(self, pod: Pod, peer: PeerState) -> str | None:
        if (refused := self.binder.refused_before(pod, peer)) is not None:
            return refused
        return self.avoid.avoided(pod, peer.name)

    def note_refusal(self, pod: Pod, peer: PeerState, reason: str) -> None:
        self.binder.refused.note(pod.metadata.uid, peer.name, reason, peer.pod_security)

    def note_spill_candidate(self, pod: Pod) -> None:
        if self.planner is not None:
            self.planner.note_candidate(pod)

    def remember_pod(self, pod: Pod, body: bytes) -> None:
        if self.binder.trust_filtered:
            self.binder.filtered_pods[pod.metadata.uid] = (pod, body)

    def gang_peer(self, pod: Pod, gang: str) -> str | None:
        return self.planner.gang_peer(pod, gang) if self.planner is not None else None

    def gang_reason(self, pod: Pod, gang: str) -> str | None:
        return self.planner.gang_reason(pod, gang) if self.planner is not None else None

    def plan_score(self, pod: Pod, peer: PeerState) -> int | None:
        return self.planner.score(pod, peer) if self.planner is not None else None

    def budget_refusal(self, pod: Pod, peer: PeerState, requests: Mapping[str, int]) -> str | None:
        if self.budgets is None:
            return None
        return self.budgets.refusal(pod.metadata.namespace, peer, requests)

    async def bind(self, pod_namespace: str, pod_name: str, pod_uid: str, node_name: str) -> None:
        await self.binder.bind(pod_namespace, pod_name, pod_uid, node_name)
