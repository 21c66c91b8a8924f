"""Generated planning inputs: the benchmark's workloads, also used by the tests.

A seeded generator so every solver in one benchmark run sees the same input, and a failure can be
reproduced from its seed. Prices are heterogeneous on purpose (some peers cheap for CPU and dear
for memory, others the reverse, a few with GPUs): that is where placing the backlog as a whole
beats choosing per pod.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.planner.pricing import GPU
from extender.planner.types import PendingPod, PlanInput
from extender.wire.core import Container, ObjectMeta, Pod, PodSpec, ResourceRequirements, Taint, Toleration

GI = 2**30
GPU_TAINT = Taint(key=GPU, value="present", effect="NoSchedule")


@dataclass(frozen=True, slots=True)
class PodShape:
    name: str
    cpu: int
    """millicores"""
    memory: int
    gpu: int = 0
    share: float = 1.0


MIXED = (
    PodShape("web", 500, 1 * GI, share=4),
    PodShape("api", 1000, 2 * GI, share=3),
    PodShape("batch", 4000, 4 * GI, share=2),
    PodShape("cache", 1000, 12 * GI, share=2),
    PodShape("tiny", 250, GI // 2, share=3),
    PodShape("train", 4000, 16 * GI, gpu=1, share=0.3),
)


def make_pod(name: str, shape: PodShape, namespace: str = "bench", annotations: dict[str, str] | None = None) -> Pod:
    requests: dict[str, str | int | float] = {"cpu": f"{shape.cpu}m", "memory": str(shape.memory)}
    tolerations = None
    if shape.gpu:
        requests[GPU] = shape.gpu
        tolerations = [Toleration(key=GPU, operator="Exists", effect="NoSchedule")]
    return Pod(
        metadata=ObjectMeta(name=name, namespace=namespace, uid=f"uid-{namespace}-{name}", annotations=annotations),
        spec=PodSpec(
            containers=[Container(name="main", resources=ResourceRequirements(requests=requests))],
            tolerations=tolerations,
        ),
    )


def make_peers(rng: random.Random, peers: int, nodes: int, *, gpu_every: int = 3, busy: float = 0.5) -> list[PeerState]:
    out = []
    for p in range(peers):
        cpu_price = rng.uniform(0.02, 0.06)
        gib_price = rng.uniform(0.002, 0.008)
        # Roughly the same overall price, split differently: cheap CPU goes with dear memory.
        if p % 2:
            cpu_price, gib_price = 0.08 - cpu_price, 0.01 - gib_price
        has_gpu = gpu_every > 0 and p % gpu_every == 0
        members = {}
        for n in range(nodes):
            gpu_node = has_gpu and n % 10 == 0
            cpu, mem = (
                (32000, 128 * GI) if gpu_node else rng.choice(((16000, 64 * GI), (8000, 32 * GI), (32000, 64 * GI)))
            )
            alloc = {"cpu": cpu, "memory": mem, "pods": 110}
            used = {
                "cpu": int(cpu * rng.uniform(0, busy)) // 100 * 100,
                "memory": int(mem * rng.uniform(0, busy)) // GI * GI,
                "pods": rng.randrange(2, 20),
            }
            if gpu_node:
                alloc[GPU] = 4
                used[GPU] = rng.randrange(0, 3)
            name = f"p{p}-n{n}"
            members[name] = NodeCapacity(
                name=name,
                allocatable=alloc,
                requested=used,
                labels={
                    "node.kubernetes.io/instance-type": f"{cpu // 1000}c{mem // GI}g" + ("-gpu" if gpu_node else "")
                },
                taints=(GPU_TAINT,) if gpu_node else (),
            )
        out.append(
            PeerState(
                name=f"peer-{p}",
                virtual_node=f"spillover-peer-{p}",
                cost=round(cpu_price, 4),
                cost_per_gib=round(gib_price, 5),
                cost_per_gpu=round(rng.uniform(1.0, 3.0), 2) if has_gpu else 0.0,
                tier=0,
                reachable=True,
                synced=True,
                nodes=members,
            )
        )
    return out


def make_pods(
    rng: random.Random, count: int, shapes: tuple[PodShape, ...] = MIXED, workloads_per_shape: int = 8
) -> list[PendingPod]:
    """Pods of ``workloads_per_shape`` Deployments per shape (each its own equivalence class)."""
    weights = [s.share for s in shapes]
    out = []
    for i in range(count):
        shape = rng.choices(shapes, weights)[0]
        pod = make_pod(f"{shape.name}-{i}", shape)
        out.append(PendingPod.from_pod(pod, workload=f"{shape.name}-{rng.randrange(workloads_per_shape)}"))
    return out


def mixed_input(seed: int, pods: int, peers: int, nodes: int, busy: float = 0.5) -> PlanInput:
    rng = random.Random(seed)
    return PlanInput(peers=make_peers(rng, peers, nodes, busy=busy), pods=make_pods(rng, pods))


def hinted_input(seed: int, pods: int, peers: int, nodes: int, busy: float = 0.85) -> PlanInput:
    """A mixed backlog where a third of the workloads carry ``max-cost`` (allowing only the two
    cheapest peers) and the dearest third of the peers is tier 1: hint-limited classes compete
    with free ones for the cheap room, the case a per-node relaxation got wrong."""
    rng = random.Random(seed)
    members = make_peers(rng, peers, nodes, busy=busy)
    by_cost = sorted(members, key=lambda p: p.cost)
    ceiling = by_cost[1].cost
    for peer in by_cost[len(by_cost) - len(by_cost) // 3 :]:
        peer.tier = 1
    out = []
    for pending in make_pods(rng, pods):
        if int(pending.workload.rsplit("-", 1)[1]) % 3 == 0:
            meta = pending.pod.metadata
            meta.annotations = {**(meta.annotations or {}), "spillover.io/max-cost": f"{ceiling:g}"}
            pending = PendingPod.from_pod(pending.pod, workload=pending.workload)
        out.append(pending)
    return PlanInput(peers=members, pods=out)
