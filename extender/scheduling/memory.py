"""A SchedulingState in memory, and builders of the peers and pods it holds.

The extender verbs only read a ``SchedulingState``; this one is plain collections, so the unit
tests and the handler benchmark (hack/bench/handlers_bench.py) run the verbs without watches,
apiservers or HTTP. Pods are built as kube-scheduler sends them after the webhook.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from extender import labels
from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.labels import VIRTUAL_NODE_PREFIX
from extender.wire.core import Pod, Taint

GI = 2**30
OPTED_IN = {labels.ENABLED: "true"}
"""Labels of an opted-in home namespace."""


class InMemoryState:
    """Dict lookups only, like the live state; records binds and can be told to fail them."""

    def __init__(
        self,
        peers: Iterable[PeerState] = (),
        home_nodes: Iterable[str] = (),
        namespaces: Mapping[str, Mapping[str, str]] | None = None,
        plan: Mapping[str, int] | None = None,
    ) -> None:
        self.peers = {peer.virtual_node: peer for peer in peers}
        self.home_nodes = set(home_nodes)
        self.namespaces = dict(namespaces if namespaces is not None else {"shop": OPTED_IN})
        self.plan = dict(plan or {})
        self.bound: list[tuple[str, str, str, str]] = []
        self.bind_error: Exception | None = None
        self.avoid: dict[str, str] = {}
        """peer name -> reason, as delegation remembers peers a workload was withdrawn from."""
        self.candidates: list[str] = []
        self.refusals: dict[tuple[str, str], str] = {}
        """(pod name, peer) -> what filter noted the peer would refuse the pod for."""
        self.gangs: dict[str, str] = {}
        self.gang_reasons: dict[str, str] = {}
        self.remembered: dict[str, tuple[Pod, bytes]] = {}
        self.late_nodes: set[str] = set()
        """Home nodes the apiserver has and the cache has not seen yet."""
        self.over_budget: dict[str, str] = {}
        """namespace -> why its pods would exceed its spend cap (on any peer)."""

    def peer_for_node(self, node_name: str) -> PeerState | None:
        return self.peers.get(node_name)

    def is_virtual_node_name(self, node_name: str) -> bool:
        return node_name.startswith(VIRTUAL_NODE_PREFIX)

    def home_node_exists(self, node_name: str) -> bool:
        return node_name in self.home_nodes

    async def confirm_home_node(self, node_name: str) -> bool:
        return node_name in self.home_nodes or node_name in self.late_nodes

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self.namespaces.get(namespace, {})

    def namespace_opted_in(self, namespace: str) -> bool | None:
        known = self.namespaces.get(namespace)
        return None if known is None else labels.opted_in(known)

    def gang_peer(self, pod: Pod, gang: str) -> str | None:
        return self.gangs.get(gang)

    def gang_reason(self, pod: Pod, gang: str) -> str | None:
        return self.gang_reasons.get(gang)

    def remember_pod(self, pod: Pod, body: bytes) -> None:
        self.remembered[pod.metadata.uid] = (pod, body)

    def note_spill_candidate(self, pod: Pod) -> None:
        self.candidates.append(pod.metadata.name)

    def note_refusal(self, pod: Pod, peer: PeerState, reason: str) -> None:
        self.refusals[(pod.metadata.name, peer.name)] = reason

    def avoided(self, pod: Pod, peer: PeerState) -> str | None:
        return self.avoid.get(peer.name)

    def plan_score(self, pod: Pod, peer: PeerState) -> int | None:
        return self.plan.get(peer.name)

    def budget_refusal(self, pod: Pod, peer: PeerState, requests: Mapping[str, int]) -> str | None:
        return self.over_budget.get(pod.metadata.namespace)

    async def bind(self, pod_namespace: str, pod_name: str, pod_uid: str, node_name: str) -> None:
        if self.bind_error is not None:
            raise self.bind_error
        self.bound.append((pod_namespace, pod_name, pod_uid, node_name))


class InMemoryHome:
    """Home as the binder reads it (its ``HomeView``): namespace labels and real nodes (shop opted
    in, home-1 and home-2 plain nodes, unless told otherwise)."""

    def __init__(
        self,
        namespaces: Mapping[str, Mapping[str, str]] | None = None,
        nodes: Iterable[NodeCapacity] | None = None,
    ) -> None:
        self.namespaces = dict(namespaces if namespaces is not None else {"shop": OPTED_IN})
        chosen = nodes if nodes is not None else [NodeCapacity(name="home-1"), NodeCapacity(name="home-2")]
        self.nodes = {n.name: n for n in chosen}

    def opted_in(self, namespace: str) -> bool | None:
        known = self.namespaces.get(namespace)
        return None if known is None else labels.opted_in(known)

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self.namespaces.get(namespace, {})

    def node(self, name: str) -> NodeCapacity | None:
        return self.nodes.get(name)


def node_capacity(
    name: str,
    cpu_m: int = 4000,
    memory: int = 16 * GI,
    pods: int = 110,
    used_cpu_m: int = 0,
    used_memory: int = 0,
    labels: Mapping[str, str] | None = None,
    taints: Iterable[Taint] = (),
    unschedulable: bool = False,
) -> NodeCapacity:
    return NodeCapacity(
        name=name,
        allocatable={"cpu": cpu_m, "memory": memory, "pods": pods},
        requested={"cpu": used_cpu_m, "memory": used_memory, "pods": 1 if used_cpu_m else 0},
        labels=dict(labels or {}),
        taints=tuple(taints),
        unschedulable=unschedulable,
    )


def peer(
    name: str,
    nodes: Iterable[NodeCapacity] | int = 3,
    cost: float = 1.0,
    healthy: bool = True,
    allowed_namespaces: Mapping[str, object] | None = None,
    **node_kwargs: Any,
) -> PeerState:
    """A healthy, synced peer; ``nodes`` is a list or a count of identical nodes named <peer>-<i>."""
    if isinstance(nodes, int):
        nodes = [node_capacity(f"{name}-{i}", **node_kwargs) for i in range(nodes)]
    return PeerState(
        name=name,
        virtual_node=VIRTUAL_NODE_PREFIX + name,
        cost=cost,
        reachable=healthy,
        synced=True,
        unreachable_reason="" if healthy else "connection refused",
        allowed_namespaces=allowed_namespaces,
        nodes={n.name: n for n in nodes},
    )


def pod_dict(
    name: str = "web-1",
    namespace: str = "shop",
    cpu: str = "500m",
    memory: str = "256Mi",
    annotations: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A pod as kube-scheduler sends it after the webhook: marker resource and toleration present."""
    resources = {
        "requests": {"cpu": cpu, "memory": memory, "spillover.io/spillable": "1"},
        "limits": {"spillover.io/spillable": "1"},
    }
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "containers": [{"name": "app", "image": "nginx", "resources": resources}],
            "tolerations": [{"key": "spillover.io/virtual", "operator": "Exists", "effect": "NoSchedule"}],
            **spec,
        },
        "status": {"phase": "Pending"},
    }


def make_pod(**kwargs: Any) -> Pod:
    return msgspec.convert(pod_dict(**kwargs), Pod)
