"""The planning problem as arrays: what every solver reads.

Nodes become rows of integer matrices (free and allocatable per resource), classes rows of a
request matrix; which class may use which node is decided once per (constraint signature, node
kind) because a thousand nodes usually come in a handful of label/taint combinations. Everything
downstream is numpy arithmetic, which is what lets the flow network for 5,000 pods on 10,000
nodes be built in bulk well inside the one-second budget.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from extender.capacity.fit import placement_rejection
from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.planner.classes import PodClass, constraint_signature, gangs_of, group
from extender.planner.pricing import cost_per_hour, effective_price, hint_rejection
from extender.planner.types import PlanInput
from extender.resources import PODS

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]

_UNLIMITED = np.iinfo(np.int64).max // 4


@dataclass(slots=True)
class Limit:
    """A per-peer cap on a workload: the classes it covers may put at most ``cap`` pods on the peer."""

    peer: int
    workload: str
    classes: list[int]
    cap: int


@dataclass(slots=True)
class Problem:
    input: PlanInput
    peers: list[PeerState]
    """Healthy peers only; their index is the ``p`` in every array."""
    dims: tuple[str, ...]
    node_names: list[str]
    node_peer: I64
    peer_nodes: list[I64]
    """Per peer: its node indices, in the peer's node order."""
    alloc: I64
    free: I64
    """Free room per node and resource before the plan (may be negative on an overcommitted node)."""
    classes: list[PodClass]
    req: I64
    count: I64
    allowed: Bool
    """[class, peer]: hints, health and the caller's veto allow it."""
    deny: dict[tuple[int, int], str]
    eligible: Bool
    """[class, node]: selectors, affinity, taints, readiness allow it (resources not considered)."""
    kind_reason: list[dict[int, str]]
    """Per class: node kind -> why nodes of that kind are not eligible."""
    node_kind: I64
    cost: F64
    """[class, peer]: real price per pod-hour."""
    eff: F64
    """[class, peer]: weight * price * prefer discount: what the optimiser minimises."""
    tier_rank: I64
    limits: list[Limit]
    gangs: dict[tuple[str, str], list[int]]
    arrival: I64
    """Class index of every pending pod, in input order (the order a per-pod greedy sees them)."""
    unhealthy: dict[str, str] = field(default_factory=dict)
    budget_names: list[str] = field(default_factory=list)
    """Namespaces with a spend cap that have pods in the backlog; their index is the ``b`` below."""
    budget: F64 = field(default_factory=lambda: np.zeros(0))
    """[budget]: what the namespace's planned pods may cost per hour, all together (real prices)."""
    class_budget: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """[class]: the budget its namespace is held to, -1 for none."""

    def budget_classes(self, b: int) -> I64:
        classes: I64 = np.flatnonzero(self.class_budget == b)
        return classes

    def spend(self, x: I64) -> F64:
        """[budget]: what the assignment ``x`` [class, node] costs each capped namespace per hour."""
        out = np.zeros(len(self.budget_names))
        if out.size:
            per_peer = np.zeros((self.n_classes, len(self.peers)), dtype=np.int64)
            np.add.at(per_peer.T, self.node_peer, x.T)
            capped = self.class_budget >= 0
            np.add.at(out, self.class_budget[capped], (per_peer[capped] * self.cost[capped]).sum(axis=1))
        return out

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_nodes(self) -> int:
        return len(self.node_names)

    def usable(self) -> Bool:
        """[class, node]: eligible and on a peer the class is allowed on."""
        usable: Bool = self.eligible & self.allowed[:, self.node_peer]
        return usable

    def slots(self, free: I64, cap: I64, usable: Bool | None = None) -> I64:
        """[class, node]: how many pods of the class fit on the node alone, given ``free``, at most
        ``cap`` [class] each."""
        c, n = self.n_classes, self.n_nodes
        out = np.full((c, n), _UNLIMITED, dtype=np.int64)
        room = np.maximum(free, 0)
        for r in range(len(self.dims)):
            need = self.req[:, r]
            rows = np.nonzero(need > 0)[0]
            if rows.size:
                out[rows] = np.minimum(out[rows], room[None, :, r] // need[rows, None])
        out = np.minimum(out, cap[:, None])
        out[~(self.usable() if usable is None else usable)] = 0
        return out

    def sliver(self, free: I64, slots: I64) -> F64:
        """[class, node]: mean share of the node left unusable after filling it with the class alone.

        The fragmentation penalty: a class that packs a node snugly leaves no slivers, one that
        fills half its CPU but all its memory strands the other half.
        """
        alloc = np.maximum(self.alloc, 1).astype(np.float64)
        total = np.zeros(slots.shape, dtype=np.float64)
        dims = 0
        for r, name in enumerate(self.dims):
            if name == PODS:
                continue
            left = np.maximum(free[None, :, r] - slots * self.req[:, r, None], 0)
            total += left / alloc[None, :, r]
            dims += 1
        share: F64 = total / max(dims, 1)
        return share


def _node_kind_key(node: NodeCapacity) -> Hashable:
    taints = tuple((t.key, t.value, t.effect) for t in node.taints)
    labels = tuple(sorted(node.labels.items())) if node.labels else ()
    return (node.unschedulable, labels, taints)


def build(plan_input: PlanInput) -> Problem:
    classes, arrival = group(plan_input.pods)
    peers = [peer for peer in plan_input.peers if peer.healthy]
    unhealthy = {peer.name: peer.health_reason() for peer in plan_input.peers if not peer.healthy}

    dim_set = {PODS}
    for cls in classes:
        dim_set.update(name for name, amount in cls.example.requests.items() if amount > 0)
    dims = tuple(sorted(dim_set))
    r_index = {name: r for r, name in enumerate(dims)}

    nodes: list[NodeCapacity] = []
    node_peer_list: list[int] = []
    for p, peer in enumerate(peers):
        nodes.extend(peer.nodes.values())
        node_peer_list.extend([p] * len(peer.nodes))
    n = len(nodes)
    alloc = np.zeros((n, len(dims)), dtype=np.int64)
    free = np.zeros((n, len(dims)), dtype=np.int64)
    for i, node in enumerate(nodes):
        row_alloc, row_free = alloc[i], free[i]
        node_free = node.free()
        for name, amount in node.allocatable.items():
            if (r := r_index.get(name)) is not None:
                row_alloc[r] = amount
        for name, amount in node_free.items():
            if (r := r_index.get(name)) is not None:
                row_free[r] = amount

    # Node kinds: eligibility is decided once per (constraint signature, kind).
    kinds: dict[Hashable, int] = {}
    kind_nodes: list[NodeCapacity] = []
    node_kind = np.empty(n, dtype=np.int64)
    for i, node in enumerate(nodes):
        key = _node_kind_key(node)
        k = kinds.get(key)
        if k is None:
            k = kinds[key] = len(kind_nodes)
            kind_nodes.append(node)
        node_kind[i] = k
    c = len(classes)
    eligible = np.zeros((c, n), dtype=np.bool_)
    kind_reason: list[dict[int, str]] = []
    by_signature: dict[bytes, tuple[Bool, dict[int, str]]] = {}
    for ci, cls in enumerate(classes):
        signature = constraint_signature(cls.example.pod)
        known = by_signature.get(signature)
        if known is None:
            kind_ok = np.zeros(len(kind_nodes), dtype=np.bool_)
            reasons: dict[int, str] = {}
            for k, rep in enumerate(kind_nodes):
                reason = placement_rejection(cls.example.pod, rep)
                if reason is None:
                    kind_ok[k] = True
                else:
                    reasons[k] = reason
            known = by_signature[signature] = (kind_ok, reasons)
        eligible[ci] = known[0][node_kind]
        kind_reason.append(known[1])

    req = np.zeros((c, len(dims)), dtype=np.int64)
    count = np.zeros(c, dtype=np.int64)
    allowed = np.zeros((c, len(peers)), dtype=np.bool_)
    cost = np.zeros((c, len(peers)), dtype=np.float64)
    eff = np.zeros((c, len(peers)), dtype=np.float64)
    deny: dict[tuple[int, int], str] = {}
    veto = plan_input.veto
    for ci, cls in enumerate(classes):
        example = cls.example
        for name, amount in example.requests.items():
            if amount > 0:
                req[ci, r_index[name]] = amount
        count[ci] = cls.count
        for p, peer in enumerate(peers):
            reason = hint_rejection(example.hints, peer)
            if reason is None and veto is not None:
                reason = veto(example.pod, peer)
            if reason is None:
                allowed[ci, p] = True
            else:
                deny[(ci, p)] = reason
            cost[ci, p] = cost_per_hour(example.requests, peer)
            eff[ci, p] = effective_price(example.requests, example.hints, peer, example.weight)

    tiers = sorted({peer.tier for peer in peers})
    tier_rank = np.array([tiers.index(peer.tier) for peer in peers], dtype=np.int64)

    peer_index = {peer.name: p for p, peer in enumerate(peers)}
    workload_classes: dict[str, list[int]] = {}
    for ci, cls in enumerate(classes):
        workload_classes.setdefault(cls.example.workload, []).append(ci)
    limits: list[Limit] = []
    for limit in plan_input.limits:
        if (p_limit := peer_index.get(limit.peer)) is None:
            continue
        names = [limit.workload] if limit.workload is not None else list(workload_classes)
        for workload in names:
            members = workload_classes.get(workload)
            if members:
                total = int(count[members].sum())
                limits.append(Limit(p_limit, workload, members, limit.cap(total)))

    budget_index: dict[str, int] = {}
    class_budget = np.full(c, -1, dtype=np.int64)
    for ci, cls in enumerate(classes):
        namespace = cls.example.pod.metadata.namespace
        if namespace in plan_input.budgets:
            class_budget[ci] = budget_index.setdefault(namespace, len(budget_index))
    budget = np.asarray([max(float(plan_input.budgets[ns]), 0.0) for ns in budget_index], dtype=np.float64)

    node_peer = np.asarray(node_peer_list, dtype=np.int64)
    return Problem(
        input=plan_input,
        peers=peers,
        dims=dims,
        node_names=[node.name for node in nodes],
        node_peer=node_peer,
        peer_nodes=[np.nonzero(node_peer == p)[0] for p in range(len(peers))],
        alloc=alloc,
        free=free,
        classes=classes,
        req=req,
        count=count,
        allowed=allowed,
        deny=deny,
        eligible=eligible,
        kind_reason=kind_reason,
        node_kind=node_kind,
        cost=cost,
        eff=eff,
        tier_rank=tier_rank,
        limits=limits,
        gangs=gangs_of(classes),
        arrival=np.asarray(arrival, dtype=np.int64),
        unhealthy=unhealthy,
        budget_names=list(budget_index),
        budget=budget,
        class_budget=class_budget,
    )
