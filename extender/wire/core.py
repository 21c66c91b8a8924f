"""Partial core/v1 Pod and Node, decoded with msgspec.

Only the fields Spillover reads are declared; msgspec skips the rest while decoding, which keeps
watch streams of thousands of pods cheap. These models are never re-encoded to write an object
back (patches are built from paths), so nothing the apiserver sent is ever lost.
"""

from __future__ import annotations

import msgspec


class Base(msgspec.Struct, rename="camel", omit_defaults=True, forbid_unknown_fields=False):
    """camelCase JSON keys, as the Kubernetes API writes them."""


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


class PodStatus(Base):
    phase: str = ""


class Pod(Base):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus | None = None


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


def annotations_of(meta: ObjectMeta) -> dict[str, str]:
    return meta.annotations or {}


pod_decoder = msgspec.json.Decoder(Pod)
"""The one decoder of (partial) pods, shared by filter, bind and admission."""
