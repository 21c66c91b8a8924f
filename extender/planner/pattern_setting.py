"""The pattern rounding's view of a backlog: groups, node types and what each type offers each group.

Nodes with the same peer, kind and free room are interchangeable, so the master LP
(``pattern_master``) chooses fills per *type* of node; the types the per-node LP used are in play,
the nodes of other types only take what overflows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from extender.planner.objective import Weights
from extender.planner.problem import F64, I64, Problem
from extender.planner.relaxation import Relaxation, group_slots, representatives
from extender.planner.work import Work

TOLERANCE = 1e-7
"""Below this, an LP value is taken as zero (or as whole)."""


@dataclass(slots=True)
class PatternSetting:
    """The master's view: groups, node types and what each type offers each group."""

    groups: list[list[int]]
    req: I64
    """[group, resource]"""
    left: I64
    """[group] pods left"""
    nodes: I64
    """Nodes in play (those the LP used, and the rest of their types)."""
    type_of: I64
    """[node in play]: its type."""
    count: I64
    """[type]: nodes."""
    rep: I64
    """[type]: one of its nodes."""
    peer: I64
    """[type]: its peer."""
    room: I64
    """[type, resource]: free room of each of its nodes."""
    cost: F64
    """[type, group]: placement cost of one pod (tiers and price, ``objective.weights``)."""
    cap: I64
    """[type, group]: at most this many pods of the group on one node (0: not usable)."""
    limit_groups: list[I64]
    """Per limit: groups it counts (empty when none is in play)."""
    limit_peer: I64
    """Per limit: its peer."""
    overflow_cap: I64
    """[group]: pods of the group the nodes not in play hold (each group alone)..."""
    overflow_cost: F64
    """[group]: ...and the cheapest of them: where pods the patterns leave out would go."""
    price: F64
    """[type, group]: real price per hour of one pod (what spend caps count)."""
    overflow_price: F64
    """[group]: real price of a pod overflowing (the cheapest peer it has room on outside)."""
    budget_groups: list[I64]
    """Per capped namespace: its groups (empty when none is in play)."""


def pattern_setting(problem: Problem, work: Work, relaxation: Relaxation, weights: Weights) -> PatternSetting | None:
    """The nodes with room for some group, grouped into types; the types the LP used are in play,
    the rest is overflow."""
    groups = relaxation.groups
    rep_class, left = representatives(work, groups)
    req = problem.req[rep_class]
    usable = problem.usable()[rep_class]
    slots = group_slots(req, work.free, left, usable)
    candidates = np.nonzero(slots.any(axis=0))[0]
    if candidates.size == 0:
        return None
    key = np.column_stack([problem.node_peer[candidates], problem.node_kind[candidates], work.free[candidates]])
    _, type_of = np.unique(key, axis=0, return_inverse=True)
    type_of = type_of.reshape(-1)
    used = np.zeros(problem.n_nodes, dtype=np.bool_)
    used[relaxation.node[relaxation.value > TOLERANCE]] = True
    keep = np.isin(type_of, np.unique(type_of[used[candidates]]))
    nodes = candidates[keep]
    if nodes.size == 0:
        return None
    _, first, type_of, count = np.unique(key[keep], axis=0, return_index=True, return_inverse=True, return_counts=True)
    rep = nodes[first]
    placement = weights.placement(problem)[rep_class]
    cap = np.where(usable[:, rep].T, slots[:, rep].T, 0)
    others = candidates[~keep]
    overflow_cap = slots[:, others].sum(axis=1)
    overflow_cost = np.where(slots[:, others] > 0, placement[:, problem.node_peer[others]], np.inf).min(
        axis=1, initial=np.inf
    )
    limit_groups = [
        np.asarray([g for g in range(len(groups)) if i in work.class_limits[groups[g][0]]], dtype=np.int64)
        for i in range(len(problem.limits))
    ]
    real = problem.cost[rep_class]
    overflow_price = np.where(slots[:, others] > 0, real[:, problem.node_peer[others]], np.inf).min(
        axis=1, initial=np.inf
    )
    budget_groups = [np.flatnonzero(problem.class_budget[rep_class] == b) for b in range(len(problem.budget_names))]
    return PatternSetting(
        groups,
        req,
        left,
        nodes,
        type_of.reshape(-1).astype(np.int64),
        count.astype(np.int64),
        rep,
        problem.node_peer[rep],
        work.free[rep],
        placement[:, problem.node_peer[rep]].T,
        cap,
        limit_groups,
        np.asarray([limit.peer for limit in problem.limits], dtype=np.int64),
        overflow_cap,
        np.where(np.isfinite(overflow_cost), overflow_cost, 0.0),
        real[:, problem.node_peer[rep]].T,
        np.where(np.isfinite(overflow_price), overflow_price, 0.0),
        budget_groups,
    )
