"""coordination.k8s.io/v1 Leases, shared by node heartbeats and leader election."""

from __future__ import annotations

from typing import Any

import msgspec

from extender.wire.core import ObjectMeta


class LeaseSpec(msgspec.Struct, rename="camel", omit_defaults=True):
    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    acquire_time: str | None = None
    """A metav1.MicroTime (``extender.kube.times.rfc3339(micro=True)``), as is ``renew_time``."""
    renew_time: str | None = None


class Lease(msgspec.Struct, rename="camel"):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: LeaseSpec = msgspec.field(default_factory=LeaseSpec)


def lease_body(name: str, namespace: str, spec: LeaseSpec) -> dict[str, Any]:
    """A new Lease, to POST to ``LEASES.collection(namespace)``."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": msgspec.to_builtins(spec),
    }
