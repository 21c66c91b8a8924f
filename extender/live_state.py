"""The live SchedulingState: home's nodes and namespaces, the peers, the planner and the binder.

Every read the extender verbs make is a dict lookup into caches that watches keep current; the
only I/O on the scheduling path is the bind itself.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Protocol

import msgspec

from extender import labels
from extender.capacity.model import NodeCapacity, PeerState
from extender.delegation.avoid import AvoidList
from extender.kube.api import NODES, Api
from extender.kube.raw import ApiError
from extender.kube.reflector import Handler
from extender.peers.directory import PeerDirectory
from extender.scheduling.binder import Binder
from extender.scheduling.filter import namespace_refusal
from extender.scheduling.state import BindError
from extender.wire.core import Node, ObjectMeta, Pod

node_decoder = msgspec.json.Decoder(Node)

NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A DNS subdomain, as every Node name is (checked before a name goes into an apiserver path)."""


class Namespace(Node):
    """Only metadata is read (labels, for PeerCluster allowedNamespaces)."""


def home_placement(node: Node) -> NodeCapacity:
    """What a bind checks of a real home node: labels, taints, cordon. Resources and readiness are
    the scheduler's to judge (and the kubelet re-checks resources and node affinity at admission;
    a NotReady node carries the lifecycle controller's taints)."""
    return NodeCapacity(
        name=node.metadata.name,
        labels=dict(node.metadata.labels or {}),
        taints=tuple(node.spec.taints or ()),
        unschedulable=node.spec.unschedulable,
    )


class HomeNodes(Handler[Node]):
    """The real home nodes, for bind to judge a pod against without I/O."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeCapacity] = {}

    @property
    def names(self) -> Mapping[str, NodeCapacity]:
        return self.nodes

    def replace(self, items: list[Node]) -> None:
        self.nodes = {n.metadata.name: home_placement(n) for n in items if not _is_virtual(n.metadata)}

    def upsert(self, item: Node) -> None:
        if not _is_virtual(item.metadata):
            self.nodes[item.metadata.name] = home_placement(item)

    def delete(self, item: Node) -> None:
        self.nodes.pop(item.metadata.name, None)


def _is_virtual(meta: ObjectMeta) -> bool:
    return (meta.labels or {}).get(labels.VIRTUAL) == "true"


class HomeNamespaces(Handler[Namespace]):
    def __init__(self) -> None:
        self.labels: dict[str, dict[str, str]] = {}

    def replace(self, items: list[Namespace]) -> None:
        self.labels = {n.metadata.name: dict(n.metadata.labels or {}) for n in items}

    def upsert(self, item: Namespace) -> None:
        self.labels[item.metadata.name] = dict(item.metadata.labels or {})

    def delete(self, item: Namespace) -> None:
        self.labels.pop(item.metadata.name, None)

    def opted_in(self, namespace: str) -> bool | None:
        """None for a namespace the cache has not seen (yet)."""
        found = self.labels.get(namespace)
        return None if found is None else labels.opted_in(found)


class HomeView:
    """What bind reads of home, from the watches: namespaces (opt-in, labels) and real nodes."""

    def __init__(self, nodes: HomeNodes, namespaces: HomeNamespaces) -> None:
        self._nodes = nodes
        self._namespaces = namespaces

    def opted_in(self, namespace: str) -> bool | None:
        return self._namespaces.opted_in(namespace)

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self._namespaces.labels.get(namespace, {})

    def node(self, name: str) -> NodeCapacity | None:
        return self._nodes.nodes.get(name)


class PlannerVeto:
    """What keeps a pod off a peer besides room, for the planner: the rules filter applies too
    (the peer's allowedNamespaces, a workload withdrawn from the peer recently)."""

    def __init__(self, namespaces: HomeNamespaces, avoid: AvoidList) -> None:
        self.namespaces = namespaces
        self.avoid = avoid

    def __call__(self, pod: Pod, peer: PeerState) -> str | None:
        namespace = pod.metadata.namespace
        refusal = namespace_refusal(peer, namespace, self.namespaces.labels.get(namespace, {}))
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
        nodes: HomeNodes,
        namespaces: HomeNamespaces,
        binder: Binder,
        avoid: AvoidList,
        planner: Planning | None = None,
    ) -> None:
        self.home = home
        self.directory = directory
        self.nodes = nodes
        self.namespaces = namespaces
        self.binder = binder
        self.avoid = avoid
        self.planner = planner

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
        if self.nodes is not None:  # the bind that follows judges the pod against it from the cache
            with contextlib.suppress(msgspec.MsgspecError):
                self.nodes.upsert(node_decoder.decode(payload))
        return True

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self.namespaces.labels.get(namespace, {})

    def namespace_opted_in(self, namespace: str) -> bool | None:
        return self.namespaces.opted_in(namespace)

    def avoided(self, pod: Pod, peer: PeerState) -> str | None:
        if (refused := self.binder.refused_before(pod, peer.name)) is not None:
            return refused
        return self.avoid.avoided(pod, peer.name)

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

    async def bind(self, pod_namespace: str, pod_name: str, pod_uid: str, node_name: str) -> None:
        await self.binder.bind(pod_namespace, pod_name, pod_uid, node_name)
