"""Scale-up advice: the fewest nodes, of shapes a cluster already runs, that would take the pods
that fit nowhere.

Per cluster (home and every peer) the pods that cluster may run are bin-packed onto fresh nodes of
each existing node shape. A greedy cover (open the shape that takes the most pods, repeat the same
pattern while it still applies) gives a quick answer; when it is small enough, CP-SAT minimises
the node count exactly (then the price) starting from it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from extender.capacity.fit import placement_rejection
from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.hints import Policy
from extender.planner.classes import PodClass
from extender.planner.pricing import GPU, cost_per_hour, hint_rejection
from extender.planner.problem import I64
from extender.planner.types import Advice
from extender.resources import CPU, MEMORY, format_resources

INSTANCE_TYPE = "node.kubernetes.io/instance-type"
_PER_NODE_LABELS = ("kubernetes.io/hostname",)
MAX_EXACT_BINS = 60
EXACT_TIME_LIMIT = 0.5


@dataclass(slots=True)
class Shape:
    name: str
    node: NodeCapacity
    price: float


def shape_name(node: NodeCapacity) -> str:
    if kind := node.labels.get(INSTANCE_TYPE):
        return kind
    shown = {k: v for k, v in node.allocatable.items() if k in (CPU, MEMORY, GPU)}
    return format_resources(shown) or "empty"


def shapes_of(cluster: PeerState) -> list[Shape]:
    seen: dict[Hashable, Shape] = {}
    for node in cluster.nodes.values():
        labels = tuple(sorted((k, v) for k, v in node.labels.items() if k not in _PER_NODE_LABELS))
        taints = tuple((t.key, t.value, t.effect) for t in node.taints)
        key = (tuple(sorted(node.allocatable.items())), labels, taints)
        if key not in seen:
            fresh = NodeCapacity(
                name=f"new-{shape_name(node)}",
                allocatable=dict(node.allocatable),
                labels=dict(labels),
                taints=node.taints,
            )
            seen[key] = Shape(shape_name(node), fresh, cost_per_hour(node.allocatable, cluster))
    return list(seen.values())


def _fit_matrix(req: I64, cap: I64) -> I64:
    """[class, shape]: pods of the class one fresh node of the shape holds alone."""
    out = np.full((req.shape[0], cap.shape[0]), np.iinfo(np.int64).max // 4, dtype=np.int64)
    for r in range(req.shape[1]):
        need = req[:, r]
        rows = np.flatnonzero(need > 0)
        if rows.size:
            out[rows] = np.minimum(out[rows], cap[None, :, r] // need[rows, None])
    return out


def _greedy_cover(req: I64, cap: I64, fit: I64, counts: I64) -> list[tuple[int, I64]]:
    """Nodes as (shape, pods per class), opened one pattern at a time."""
    left = counts.copy()
    size = (req / np.maximum(cap.max(axis=0), 1)).max(axis=1)
    order = np.argsort(-size, kind="stable")
    nodes: list[tuple[int, I64]] = []
    while left.any():
        best: tuple[int, I64] | None = None
        for s in range(cap.shape[0]):
            room = cap[s].copy()
            take = np.zeros_like(left)
            for c in order:
                if left[c] == 0 or fit[c, s] == 0:
                    continue
                need = req[c]
                positive = need > 0
                k = min(int(left[c]), int((room[positive] // need[positive]).min()))
                if k > 0:
                    take[c] = k
                    room -= need * k
            if take.sum() and (best is None or take.sum() > best[1].sum()):
                best = (s, take)
        if best is None:
            break
        used = best[1] > 0
        repeat = int((left[used] // best[1][used]).min())
        nodes.extend([best] * repeat)
        left -= best[1] * repeat
    return nodes


def _exact(
    req: I64, cap: I64, fit: I64, counts: I64, prices: Sequence[float], start: list[tuple[int, I64]]
) -> list[tuple[int, I64]] | None:
    """CP-SAT: fewest nodes (then cheapest) placing every pod; None when it found nothing better."""
    per_shape = [sum(1 for s, _ in start if s == shape) for shape in range(cap.shape[0])]
    bound = len(start)
    bins = [(s, b) for s in range(cap.shape[0]) for b in range(min(bound, max(per_shape[s], 1) + bound // 2 + 1))]
    if len(bins) > MAX_EXACT_BINS * 2:
        return None
    model = cp_model.CpModel()
    top = max(prices) if prices else 0.0
    use = [model.new_bool_var(f"u{i}") for i in range(len(bins))]
    x = {
        (c, i): model.new_int_var(0, int(min(counts[c], fit[c, s])), f"x{c}_{i}")
        for i, (s, _) in enumerate(bins)
        for c in range(req.shape[0])
        if fit[c, s] > 0 and counts[c] > 0
    }
    for c in range(req.shape[0]):
        model.add(sum(v for (cc, _), v in x.items() if cc == c) == int(counts[c]))
    for i, (s, _) in enumerate(bins):
        members = [(c, v) for (c, j), v in x.items() if j == i]
        for r in range(req.shape[1]):
            terms = [(v, int(req[c, r])) for c, v in members if req[c, r] > 0]
            if terms:
                model.add(sum(v * k for v, k in terms) <= int(cap[s, r]) * use[i])
        if i > 0 and bins[i - 1][0] == s:
            model.add(use[i] <= use[i - 1])
    price_weight = [round(1000 * prices[s] / top) if top > 0 else 0 for s, _ in bins]
    model.minimize(sum(u * (10_000 + w) for u, w in zip(use, price_weight, strict=True)))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = EXACT_TIME_LIMIT
    solver.parameters.num_workers = 1
    if solver.solve(model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    out = []
    for i, (s, _) in enumerate(bins):
        if solver.value(use[i]):
            take = np.zeros_like(counts)
            for c in range(req.shape[0]):
                if (c, i) in x:
                    take[c] = solver.value(x[(c, i)])
            out.append((s, take))
    return out if len(out) <= len(start) else None


def advise_cluster(cluster: PeerState, classes: Sequence[PodClass], counts: Sequence[int], home: bool) -> list[Advice]:
    wanted = []
    for cls, k in zip(classes, counts, strict=True):
        if k <= 0:
            continue
        hints = cls.example.hints
        if home:
            if hints.policy is Policy.REMOTE_ONLY:
                continue
        elif hint_rejection(hints, cluster) is not None:
            continue
        wanted.append((cls, k))
    shapes = shapes_of(cluster)
    if not wanted or not shapes:
        return []
    dims = sorted({name for cls, _ in wanted for name, amount in cls.example.requests.items() if amount > 0})
    req = np.array([[cls.example.requests.get(d, 0) for d in dims] for cls, _ in wanted], dtype=np.int64)
    cap = np.array([[shape.node.allocatable.get(d, 0) for d in dims] for shape in shapes], dtype=np.int64)
    counts_arr = np.array([k for _, k in wanted], dtype=np.int64)
    fit = _fit_matrix(req, cap)
    for c, (cls, _) in enumerate(wanted):
        for s, shape in enumerate(shapes):
            if fit[c, s] and placement_rejection(cls.example.pod, shape.node) is not None:
                fit[c, s] = 0
    fit = np.minimum(fit, counts_arr[:, None])
    counts_arr[fit.max(axis=1) == 0] = 0  # fits no shape of this cluster: nothing to advise
    if not counts_arr.any():
        return []
    nodes = _greedy_cover(req, cap, fit, counts_arr)
    if len(nodes) <= MAX_EXACT_BINS:
        better = _exact(req, cap, fit, counts_arr, [shape.price for shape in shapes], nodes)
        if better is not None:
            nodes = better
    rows = []
    for s, shape in enumerate(shapes):
        mine = [take for ss, take in nodes if ss == s]
        if mine:
            rows.append(
                Advice(
                    cluster.name, shape.name, len(mine), int(sum(int(t.sum()) for t in mine)), len(mine) * shape.price
                )
            )
    return rows
