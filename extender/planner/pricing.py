"""What a pod costs on a peer, from the PeerCluster's prices.

The price of running a pod for an hour is what its requests would be billed at: cores * price per
CPU hour + GiB * price per GiB hour + GPUs * price per GPU hour. ``prefer`` weights lower the
*effective* cost the optimiser sees (never the reported one), so a preferred peer wins unless it
is markedly dearer; ``max-cost`` is a ceiling on the PeerCluster ``cost`` (per CPU hour), the same
figure the filter verb compares.
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
