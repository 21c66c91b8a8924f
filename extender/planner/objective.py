"""The one objective every solver minimises, and the exact order plans are compared in.

The rules are lexicographic: as many pods as possible, then the lowest tiers, then the lowest
(weighted, preference-discounted) price. Solvers need one number, so the rules become weights
that keep the order exact: a tier step outweighs every price of the whole backlog together, and
one unplaced pod outweighs moving every pod up every tier. ``key`` compares finished plans by
the rules themselves, so picking the best of several candidates never trades one rule for the
next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from extender.planner.problem import F64, I64, Problem

PRICE_SCALE = 100_000
"""Integer price of the dearest (class, peer) pair for CP-SAT; cheaper pairs scale down."""


@dataclass(frozen=True, slots=True)
class Weights:
    price: F64
    """[class, peer]: normalised price in [0, 1] (weight x price x prefer discount)."""
    tier: float
    """Cost of one tier step for one pod: more than every pod's price together."""
    unplaced: float
    """Cost of leaving one pod unplaced: more than every pod moving up every tier."""

    def placement(self, problem: Problem) -> F64:
        """[class, peer]: what one pod costs there, tier included."""
        out: F64 = problem.tier_rank[None, :] * self.tier + self.price
        return out


def weights(problem: Problem, scale: float = 1.0) -> Weights:
    eff = problem.eff
    top = float(eff.max()) if eff.size else 0.0
    price = eff / top * scale if top > 0 else np.zeros_like(eff)
    pods = int(problem.count.sum())
    tier = scale * (pods + 1)
    top_tier = int(problem.tier_rank.max()) if problem.tier_rank.size else 0
    return Weights(price, tier, tier * (top_tier * pods + 1))


BUDGET_SCALE = 1_000_000
"""Real prices per hour in millionths, for CP-SAT's spend-cap constraints."""


def integer_prices(problem: Problem) -> I64:
    """[class, peer] real prices per pod-hour as integers (``BUDGET_SCALE``), for spend caps."""
    prices: I64 = np.rint(problem.cost * BUDGET_SCALE).astype(np.int64)
    return prices


def integer_budgets(left: F64) -> list[int]:
    """What each capped namespace may still spend, as integers (``BUDGET_SCALE``): rounded prices
    may overshoot the real cap by half a millionth per pod, never more."""
    return [int(np.floor(max(float(v), 0.0) * BUDGET_SCALE + 1e-3)) for v in left]


def integer_costs(problem: Problem) -> tuple[I64, int]:
    """[class, peer] integer placement costs and the integer unplaced cost, for CP-SAT."""
    w = weights(problem, PRICE_SCALE)
    placement: I64 = np.rint(w.placement(problem)).astype(np.int64)
    return placement, round(w.unplaced)


@dataclass(frozen=True, order=True, slots=True)
class Score:
    """A plan's standing under the rules; smaller is better (compare with ``<``)."""

    unplaced: int
    tiers: int
    """Sum of the tier rank of every placed pod."""
    price: float
    """Sum of every placed pod's weighted price, as the solvers minimise it."""


def score(problem: Problem, x: I64) -> Score:
    per_peer = np.zeros((problem.n_classes, len(problem.peers)), dtype=np.int64)
    np.add.at(per_peer.T, problem.node_peer, x.T)
    placed = int(per_peer.sum())
    tiers = int((per_peer * problem.tier_rank[None, :]).sum())
    price = float((per_peer * problem.eff).sum())
    # Rounded so two plans that differ only by float noise compare equal.
    return Score(int(problem.count.sum()) - placed, tiers, round(price, 9))
