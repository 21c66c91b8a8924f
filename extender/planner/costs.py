"""Integer arc costs shared by the flow and CP-SAT solvers, so both minimise the same objective.

Both solvers need integers. Prices are scaled so the dearest (class, peer) is 100,000; a tier step
is a hundred times that, so a pod only goes to a higher tier when no lower one can take it; an
unplaced pod costs more than any placement, so the solvers place as many pods as they can first
and only then minimise cost. The fragmentation penalty is at most ``FRAG_WEIGHT`` of the pod's own
price (plus a tiny absolute part for free peers): it picks among nodes of a peer, never among
peers whose prices differ by more than that.
"""

from __future__ import annotations

import numpy as np

from extender.planner.problem import F64, I64, Problem

PRICE_SCALE = 100_000
TIER_STEP = 100 * PRICE_SCALE
FRAG_WEIGHT = 0.05
FRAG_FLOOR = 100
"""Absolute part of the fragmentation penalty (0.1 % of the price scale) for free peers."""


def base_costs(problem: Problem) -> I64:
    """[class, peer]: tier and price, as integers."""
    eff = problem.eff
    top = float(eff.max()) if eff.size else 0.0
    scale = PRICE_SCALE / top if top > 0 else 0.0
    out: I64 = problem.tier_rank[None, :] * TIER_STEP + np.rint(eff * scale).astype(np.int64)
    return out


def unplaced_cost(problem: Problem) -> int:
    tiers = int(problem.tier_rank.max()) + 1 if problem.tier_rank.size else 1
    return (tiers + 1) * TIER_STEP * 10


def arc_costs(base: I64, classes: I64, nodes: I64, node_peer: I64, sliver: F64) -> I64:
    """Cost of one pod of ``classes[i]`` on ``nodes[i]``: tier + price + fragmentation penalty."""
    price = base[classes, node_peer[nodes]]
    tier_free = price % TIER_STEP
    penalty = np.rint(sliver * (FRAG_WEIGHT * tier_free + FRAG_FLOOR)).astype(np.int64)
    out: I64 = price + penalty
    return out
