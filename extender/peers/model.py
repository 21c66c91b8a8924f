"""The PeerCluster custom resource (spillover.io/v1alpha1, cluster-scoped) as Spillover reads it."""

from __future__ import annotations

from typing import Any

import msgspec

from extender.kube.api import Resource
from extender.pod_security import DEFAULT_LEVEL, Level
from extender.wire.core import ObjectMeta

GROUP = "spillover.io"
VERSION = "v1alpha1"
PEERCLUSTERS = Resource(GROUP, VERSION, "peerclusters", namespaced=False)
FINALIZER = "spillover.io/detach"
"""Held on every PeerCluster until what Spillover made in that peer is gone (no orphans)."""


def give_up_command(name: str) -> str:
    """What lets a deleted PeerCluster go without waiting for its peer to be emptied."""
    return f"""kubectl patch peercluster {name} --type=json -p '[{{"op":"remove","path":"/metadata/finalizers"}}]'"""


class SecretRef(msgspec.Struct, rename="camel", omit_defaults=True):
    name: str = ""
    namespace: str = "spillover-system"
    key: str = "kubeconfig"


class PeerClusterSpec(msgspec.Struct, rename="camel", omit_defaults=True):
    kubeconfig_secret_ref: SecretRef = msgspec.field(default_factory=SecretRef)
    cost: float = 1.0
    cost_per_gi_b: float = msgspec.field(default=0.0, name="costPerGiB")
    cost_per_gpu: float = msgspec.field(default=0.0, name="costPerGPU")
    tier: int = 0
    allowed_namespaces: dict[str, object] | None = None
    namespace: str = ""
    pod_security: Level = DEFAULT_LEVEL
    """The Pod Security level the peer accepts; an unknown value is refused when decoding (the
    CRD's enum refuses it first)."""
    paused: bool = False
    grace_period_seconds: int = 60
    repatriate_after_seconds: int | None = None
    """Seconds home must have had room for a pod spilled here before it comes home (None: the
    server's default); a pod's spillover.io/repatriate-after overrides it."""


class PeerCluster(msgspec.Struct, rename="camel"):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PeerClusterSpec = msgspec.field(default_factory=PeerClusterSpec)


class Condition(msgspec.Struct, rename="camel", omit_defaults=True):
    """A meta/v1 Condition, as PeerCluster status carries Ready and Reachable."""

    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""


class PeerClusterStatus(msgspec.Struct, rename="camel", omit_defaults=True):
    """Only what `spillover leave` and `spillover status` read (the rest is written as data)."""

    conditions: list[Condition] = msgspec.field(default_factory=list)
    capacity: dict[str, Any] = msgspec.field(default_factory=dict)
    last_seen: str = ""

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


class PeerClusterWithStatus(PeerCluster):
    status: PeerClusterStatus = msgspec.field(default_factory=PeerClusterStatus)
