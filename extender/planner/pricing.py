"""What a pod costs on a peer, from the PeerCluster's prices, and how ``prefer`` weighs against it.

The price of running a pod for an hour is what its requests would be billed at: cores * price per
CPU hour + GiB * price per GiB hour + GPUs * price per GPU hour. ``max-cost`` is a ceiling on the
PeerCluster ``cost`` (per CPU hour), the same figure the filter verb compares.

One model of preference, used by the planner, ``spillover simulate`` and the scheduler verbs when
no plan covers a pod (``placement_key``): ``prefer`` is a discount on the price, never a rule. The
most preferred peer counts at half its price, weight w at ``1 - 0.5 w / top``: a preferred peer
wins unless it is more than twice as dear (for ``west=3,east=1``: west at 0.5 x its price, east
at 0.83 x). Tiers come before price and preference alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from extender.capacity.model import PeerState
from extender.hints import Hints
from extender.resources import CPU, MEMORY

GPU = "nvidia.com/gpu"
GIB = 2**30
PREFER_DISCOUNT = 0.5
"""The most preferred peer's effective cost is halved; lower weights get proportionally less."""


def cost_per_hour(requests: Mapping[str, int], peer: PeerState) -> float:
    return (
        requests.get(CPU, 0) / 1000 * peer.cost
        + requests.get(MEMORY, 0) / GIB * peer.cost_per_gib
        + requests.get(GPU, 0) * peer.cost_per_gpu
    )


def money(amount: float) -> str:
    """A price per hour as people read it: 2, 0.5, 0.125, 1.3333."""
    return f"{round(amount, 4):g}"


def prefer_factor(hints: Hints, peer: str) -> float:
    if not hints.prefer:
        return 1.0
    top = max(hints.prefer.values())
    if top <= 0:
        return 1.0
    return 1.0 - PREFER_DISCOUNT * hints.prefer.get(peer, 0) / top


def hint_rejection(hints: Hints, peer: PeerState) -> str | None:
    """Why the hints keep a pod off this peer (None: they allow it)."""
    if not hints.allows(peer.name):
        if hints.policy.value == "local-only":
            return "policy local-only keeps it at home"
        if peer.name in hints.avoid_clusters:
            return f"{peer.name} is in avoid-clusters"
        return f"{peer.name} is not in clusters"
    if not hints.allows_cost(peer.cost):
        return f"{peer.name} costs {peer.cost:g} per CPU hour, above max-cost {hints.max_cost:g}"
    return None


def effective_price(requests: Mapping[str, int], hints: Hints, peer: PeerState, weight: float = 1.0) -> float:
    """What the optimiser minimises for one pod on the peer: weight x price x prefer discount."""
    return weight * cost_per_hour(requests, peer) * prefer_factor(hints, peer.name)


def placement_key(requests: Mapping[str, int], hints: Hints, peer: PeerState) -> tuple[int, float]:
    """Order of peers for one pod, best first: lowest tier, then lowest effective price."""
    return (peer.tier, effective_price(requests, hints, peer))
