"""Small builders for planner tests: peers with nodes, pending pods with hints."""

from __future__ import annotations

from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.planner.types import PendingPod
from extender.wire.core import (
    Container,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodSpec,
    ResourceRequirements,
    Taint,
    Toleration,
)

GI = 2**30


def peer(
    name: str,
    nodes: dict[str, dict[str, int]],
    *,
    cost: float = 1.0,
    gib: float = 0.0,
    gpu: float = 0.0,
    tier: int = 0,
    healthy: bool = True,
    taints: tuple[Taint, ...] = (),
    labels: dict[str, str] | None = None,
) -> PeerState:
    return PeerState(
        name=name,
        virtual_node=f"spillover-{name}",
        cost=cost,
        cost_per_gib=gib,
        cost_per_gpu=gpu,
        tier=tier,
        reachable=healthy,
        synced=True,
        nodes={
            n: NodeCapacity(n, allocatable={"pods": 110, **alloc}, taints=taints, labels=labels or {})
            for n, alloc in nodes.items()
        },
    )


def pending(
    name: str,
    cpu: int = 1000,
    memory: int = GI,
    *,
    gpu: int = 0,
    annotations: dict[str, str] | None = None,
    workload: str | None = "w",
    namespace: str = "ns",
    tolerations: list[Toleration] | None = None,
    node_selector: dict[str, str] | None = None,
    owner: str | None = None,
) -> PendingPod:
    requests: dict[str, str | int | float] = {"cpu": f"{cpu}m", "memory": str(memory)}
    if gpu:
        requests["nvidia.com/gpu"] = gpu
    pod = Pod(
        metadata=ObjectMeta(
            name=name,
            namespace=namespace,
            uid=f"uid-{namespace}-{name}",
            annotations=annotations,
            owner_references=[OwnerReference(kind="ReplicaSet", name=owner, controller=True)] if owner else None,
        ),
        spec=PodSpec(
            containers=[Container(name="c", resources=ResourceRequirements(requests=requests))],
            tolerations=tolerations,
            node_selector=node_selector,
        ),
    )
    return PendingPod.from_pod(pod, workload=workload) if workload is not None else PendingPod.from_pod(pod)
