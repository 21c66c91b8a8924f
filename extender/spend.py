"""What spilled pods cost per hour, by namespace and peer, at the peers' prices.

The planner's price model (extender.planner.pricing.cost_per_hour: cores x ``cost`` + GiB x
``costPerGiB`` + GPUs x ``costPerGPU``) applied to the pods running in peers now. The status page,
`spillover explain` and the ``spillover_spend_per_hour`` metric read it, and so do the spend caps
(``extender.budgets``) and repatriation (what bringing a pod home saves).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from extender.capacity.model import PeerState
from extender.planner.pricing import cost_per_hour

FINISHED = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True)
class SpilledPod:
    namespace: str
    peer: str
    requests: Mapping[str, int]
    phase: str = ""
    deleting: bool = False


@dataclass(slots=True)
class Spend:
    """Price per hour of the spilled pods that run or will run (not finished, not being deleted)."""

    by_namespace_peer: dict[tuple[str, str], float] = field(default_factory=dict)
    pods: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.by_namespace_peer.values())

    def by_namespace(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for (namespace, _), amount in self.by_namespace_peer.items():
            out[namespace] = out.get(namespace, 0.0) + amount
        return out

    def by_peer(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for (_, peer), amount in self.by_namespace_peer.items():
            out[peer] = out.get(peer, 0.0) + amount
        return out


def spend_per_hour(pods: Iterable[SpilledPod], peers: Mapping[str, PeerState]) -> Spend:
    """Sum each counted pod's price on its peer; pods of a peer no longer known cost nothing
    here (its prices are gone with its PeerCluster)."""
    spend = Spend()
    for pod in pods:
        peer = peers.get(pod.peer)
        if peer is None or pod.deleting or pod.phase in FINISHED:
            continue
        key = (pod.namespace, pod.peer)
        spend.by_namespace_peer[key] = spend.by_namespace_peer.get(key, 0.0) + cost_per_hour(pod.requests, peer)
        spend.pods[key] = spend.pods.get(key, 0) + 1
    return spend
