"""Partial core/v1 Pod and Node, decoded with msgspec.

Only the fields Spillover reads are declared; msgspec skips the rest while decoding, which keeps
watch streams of thousands of pods cheap. These models are never re-encoded to write an object
back (patches are built from paths), so nothing the apiserver sent is ever lost.
"""

from __future__ import annotations

import msgspec


class Base(msgspec.Struct, rename="camel", omit_defaults=True, forbid_unknown_fields=False, gc=False):
    """camelCase JSON keys, as the Kubernetes API writes them.

    ``gc=False``: these are trees decoded from JSON and never form reference cycles, so the cyclic
    garbage collector need not track them; a page of a peer's pod list is thousands of them, and a
    full collection walking them all stalled the event loop.
    """


class OwnerReference(Base):
    api_version: str = ""
    kind: str = ""
    name: str = ""
    uid: str = ""
    controller: bool | None = None


class ObjectMeta(Base):
    name: str = ""
    generate_name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    creation_timestamp: str | None = None
    finalizers: list[str] | None = None


class ResourceRequirements(Base):
    requests: dict[str, str | int | float] | None = None
    limits: dict[str, str | int | float] | None = None


class Container(Base):
    name: str = ""
    image: str = ""
    resources: ResourceRequirements | None = None
    restart_policy: str | None = None


class ContainerStatus(Base):
    """What the kubelet reports of a container's resources (in-place resize: allocated and actuated)."""

    name: str = ""
    allocated_resources: dict[str, str | int | float] | None = None
    resources: ResourceRequirements | None = None


class Toleration(Base):
    key: str = ""
    operator: str = ""
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None


class NodeSelectorRequirement(Base):
    key: str = ""
    operator: str = ""
    values: list[str] | None = None


class NodeSelectorTerm(Base):
    match_expressions: list[NodeSelectorRequirement] | None = None
    match_fields: list[NodeSelectorRequirement] | None = None


class NodeSelector(Base):
    node_selector_terms: list[NodeSelectorTerm] | None = None


class NodeAffinity(Base):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None


class Affinity(Base):
    node_affinity: NodeAffinity | None = None


class PodSpec(Base):
    containers: list[Container] = msgspec.field(default_factory=list)
    init_containers: list[Container] | None = None
    node_name: str = ""
    node_selector: dict[str, str] | None = None
    affinity: Affinity | None = None
    tolerations: list[Toleration] | None = None
    scheduler_name: str = ""
    priority: int | None = None
    overhead: dict[str, str | int | float] | None = None
    resources: ResourceRequirements | None = None
    """Pod-level resources (PodLevelResources, on by default since 1.34)."""


class PodCondition(Base):
    type: str = ""
    status: str = ""
    reason: str = ""


class PodStatus(Base):
    phase: str = ""
    conditions: list[PodCondition] | None = None
    container_statuses: list[ContainerStatus] | None = None
    init_container_statuses: list[ContainerStatus] | None = None
    resources: ResourceRequirements | None = None
    allocated_resources: dict[str, str | int | float] | None = None


class Pod(Base):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus | None = None


class ProxyPod(Pod):
    """A home pod bound to a virtual node, with its conditions (the node-lifecycle controller
    turns Ready False on the pods of a node that goes NotReady; Spillover turns it back)."""

    def ready(self) -> str:
        """The status of its Ready condition ("" when it has none)."""
        conditions = self.status.conditions if self.status else None
        return next((c.status for c in conditions or () if c.type == "Ready"), "")


class Taint(Base):
    key: str = ""
    value: str = ""
    effect: str = ""


class NodeSpec(Base):
    unschedulable: bool = False
    taints: list[Taint] | None = None


class NodeCondition(Base):
    type: str = ""
    status: str = ""


class NodeStatus(Base):
    allocatable: dict[str, str | int | float] | None = None
    capacity: dict[str, str | int | float] | None = None
    conditions: list[NodeCondition] | None = None


class Node(Base):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: NodeSpec = msgspec.field(default_factory=NodeSpec)
    status: NodeStatus = msgspec.field(default_factory=NodeStatus)


# --- a peer's nodes and pods as the capacity cache reads them -----------------------------------
# Peers list every node and pod they have (100,000 pods is a few hundred MB of JSON): these models
# declare only what kube-scheduler's fit reads, so msgspec skips the rest (annotations, managed
# fields, images, env) without building it.


class NamedMeta(Base):
    name: str = ""
    uid: str = ""
    labels: dict[str, str] | None = None


class NodeOffer(Base):
    allocatable: dict[str, str | int | float] | None = None


class PeerNode(Base):
    """A peer's Node: what its scheduler reads to place a pod there (no conditions: it reads none)."""

    metadata: NamedMeta = msgspec.field(default_factory=NamedMeta)
    spec: NodeSpec = msgspec.field(default_factory=NodeSpec)
    status: NodeOffer = msgspec.field(default_factory=NodeOffer)


class PeerPodSpec(Base):
    node_name: str = ""
    containers: list[Container] = msgspec.field(default_factory=list)
    init_containers: list[Container] | None = None
    overhead: dict[str, str | int | float] | None = None
    resources: ResourceRequirements | None = None


class PeerPod(Base):
    """A peer's Pod: where it is bound and what it takes from that node."""

    metadata: NamedMeta = msgspec.field(default_factory=NamedMeta)
    spec: PeerPodSpec = msgspec.field(default_factory=PeerPodSpec)
    status: PodStatus | None = None


def annotations_of(meta: ObjectMeta) -> dict[str, str]:
    return meta.annotations or {}


pod_decoder = msgspec.json.Decoder(Pod)
"""The one decoder of (partial) pods, shared by filter, bind and admission."""
