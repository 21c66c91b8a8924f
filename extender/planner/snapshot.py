"""Snapshot files for ``spillover simulate``: clusters, nodes, prices and pending pods, no cluster needed.

Every error names its place in the file (``clusters[1].nodes[0].capacity.cpu: ...``), whether the
file does not parse, has a field of the wrong type or an unknown one (typos are caught, not
ignored), or contradicts itself (a node using more than it has, a hint naming a cluster the file
does not define, two clusters with one name).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import msgspec
import yaml

from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.hints import HintError, parse_hints
from extender.planner.types import PeerLimit, PendingPod, PlanInput
from extender.resources import PODS, QuantityError, canonical
from extender.wire.core import Affinity, Container, ObjectMeta, Pod, PodSpec, ResourceRequirements, Taint, Toleration

Quantities = dict[str, str | int | float]


class SnapshotError(ValueError):
    """A snapshot that cannot be planned; the message starts with the place in the file."""


NOT_READY = Taint(key="node.kubernetes.io/not-ready", effect="NoSchedule")


class _Strict(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    pass


class SnapNode(_Strict):
    name: str
    capacity: Quantities
    used: Quantities = msgspec.field(default_factory=dict)
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    taints: list[Taint] = msgspec.field(default_factory=list)
    count: int = 1
    ready: bool = True
    unschedulable: bool = False


class SnapCluster(_Strict):
    name: str
    home: bool = False
    cost: float = 1.0
    cost_per_gib: float = msgspec.field(default=0.0, name="costPerGiB")
    cost_per_gpu: float = msgspec.field(default=0.0, name="costPerGPU")
    tier: int = 0
    healthy: bool = True
    nodes: list[SnapNode] = msgspec.field(default_factory=list)


class SnapPod(_Strict):
    name: str
    requests: Quantities
    namespace: str = "default"
    count: int = 1
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    node_selector: dict[str, str] | None = None
    tolerations: list[Toleration] | None = None
    affinity: Affinity | None = None
    workload: str | None = None
    weight: float = 1.0


class SnapLimit(_Strict):
    cluster: str
    workload: str | None = None
    max_pods: int | None = None
    max_share: float | None = None


class SnapBudget(_Strict):
    namespace: str
    max_spend_per_hour: float
    """The namespace's spillover.io/max-spend-per-hour."""
    spend_per_hour: float = 0.0
    """What it spends in peers already (its pods running there now)."""


class Snapshot(_Strict):
    clusters: list[SnapCluster]
    pods: list[SnapPod] = msgspec.field(default_factory=list)
    limits: list[SnapLimit] = msgspec.field(default_factory=list)
    budgets: list[SnapBudget] = msgspec.field(default_factory=list)


_AT = re.compile(r"^(.*) - at `\$\.?(.*)`$")


def _place_of(exc: msgspec.ValidationError) -> str:
    match = _AT.match(str(exc))
    if not match:
        return f"snapshot: {exc}"
    message, place = match.groups()
    return f"{place or 'snapshot'}: {message[0].lower()}{message[1:]}"


def _quantities(raw: Quantities, place: str) -> dict[str, int]:
    out = {}
    for name, value in raw.items():
        try:
            amount = canonical(name, value)
        except QuantityError as exc:
            raise SnapshotError(f"{place}.{name}: {exc}") from None
        if amount < 0:
            raise SnapshotError(f"{place}.{name}: {value!r} is negative")
        out[name] = amount
    return out


def parse(data: Any) -> PlanInput:
    """Validate decoded YAML/JSON and build the planner's input from it."""
    if not isinstance(data, dict):
        raise SnapshotError("snapshot: expected a mapping with `clusters` (and `pods`, `limits`, `budgets`)")
    try:
        snap = msgspec.convert(data, Snapshot)
    except msgspec.ValidationError as exc:
        raise SnapshotError(_place_of(exc)) from None

    names: dict[str, int] = {}
    home: PeerState | None = None
    peers: list[PeerState] = []
    for ci, cluster in enumerate(snap.clusters):
        place = f"clusters[{ci}]"
        if cluster.name in names:
            raise SnapshotError(f"{place}.name: {cluster.name!r} is already clusters[{names[cluster.name]}]")
        names[cluster.name] = ci
        for field in ("cost", "cost_per_gib", "cost_per_gpu"):
            if getattr(cluster, field) < 0:
                raise SnapshotError(f"{place}: prices may not be negative")
        state = PeerState(
            name=cluster.name,
            virtual_node=f"spillover-{cluster.name}",
            cost=cluster.cost,
            cost_per_gib=cluster.cost_per_gib,
            cost_per_gpu=cluster.cost_per_gpu,
            tier=cluster.tier,
            reachable=cluster.healthy,
            synced=True,
            unreachable_reason="marked unhealthy in the snapshot",
        )
        for ni, node in enumerate(cluster.nodes):
            npl = f"{place}.nodes[{ni}]"
            if node.count < 1:
                raise SnapshotError(f"{npl}.count: must be at least 1, got {node.count}")
            capacity = _quantities(node.capacity, f"{npl}.capacity")
            capacity.setdefault(PODS, 110)
            used = _quantities(node.used, f"{npl}.used")
            for name, amount in used.items():
                if amount > capacity.get(name, 0):
                    raise SnapshotError(
                        f"{npl}.used.{name}: {node.used.get(name, amount)!r} is more than the node's capacity"
                        f" ({node.capacity.get(name, 0)!r})"
                    )
            for i in range(node.count):
                node_name = node.name if node.count == 1 else f"{node.name}-{i}"
                if node_name in state.nodes:
                    raise SnapshotError(f"{npl}.name: node {node_name!r} appears twice in cluster {cluster.name}")
                state.nodes[node_name] = NodeCapacity(
                    name=node_name,
                    allocatable=dict(capacity),
                    requested=dict(used),
                    labels=node.labels,
                    # As in a cluster: a node that is not ready carries the node lifecycle
                    # controller's taint, which is what schedulers look at.
                    taints=tuple(node.taints) + (() if node.ready else (NOT_READY,)),
                    unschedulable=node.unschedulable,
                )
        if cluster.home:
            if home is not None:
                raise SnapshotError(f"{place}.home: only one cluster can be home ({home.name} already is)")
            home = state
        else:
            peers.append(state)

    pods: list[PendingPod] = []
    seen_pods: dict[str, int] = {}
    workloads: set[str] = set()
    for pi, spec in enumerate(snap.pods):
        place = f"pods[{pi}]"
        if spec.count < 0:
            raise SnapshotError(f"{place}.count: may not be negative, got {spec.count}")
        if spec.weight <= 0:
            raise SnapshotError(f"{place}.weight: must be positive, got {spec.weight}")
        _quantities(spec.requests, f"{place}.requests")
        try:
            hints = parse_hints(spec.annotations)
        except HintError as exc:
            raise SnapshotError(f"{place}.annotations: {exc}") from None
        named = set(hints.clusters or ()) | set(hints.avoid_clusters) | set(hints.prefer)
        for name in sorted(named - {c.name for c in snap.clusters}):
            raise SnapshotError(f"{place}.annotations: hints name cluster {name!r}, which the snapshot does not define")
        workload = spec.workload or f"{spec.namespace}/{spec.name}"
        workloads.add(workload)
        for i in range(spec.count):
            name = spec.name if spec.count == 1 else f"{spec.name}-{i}"
            full = f"{spec.namespace}/{name}"
            if full in seen_pods:
                raise SnapshotError(f"{place}.name: pod {full!r} is already defined by pods[{seen_pods[full]}]")
            seen_pods[full] = pi
            pod = Pod(
                metadata=ObjectMeta(
                    name=name, namespace=spec.namespace, uid=f"snapshot-{full}", annotations=spec.annotations or None
                ),
                spec=PodSpec(
                    containers=[Container(name="main", resources=ResourceRequirements(requests=spec.requests))],
                    node_selector=spec.node_selector,
                    affinity=spec.affinity,
                    tolerations=spec.tolerations,
                ),
            )
            pods.append(PendingPod.from_pod(pod, weight=spec.weight, workload=workload))

    limits = []
    for li, limit in enumerate(snap.limits):
        place = f"limits[{li}]"
        if limit.cluster not in names or (home is not None and limit.cluster == home.name):
            raise SnapshotError(f"{place}.cluster: {limit.cluster!r} is not a peer cluster of the snapshot")
        if limit.workload is not None and limit.workload not in workloads:
            raise SnapshotError(f"{place}.workload: no pods belong to workload {limit.workload!r}")
        if limit.max_pods is None and limit.max_share is None:
            raise SnapshotError(f"{place}: set maxPods or maxShare")
        if limit.max_pods is not None and limit.max_pods < 0:
            raise SnapshotError(f"{place}.maxPods: may not be negative")
        if limit.max_share is not None and not 0 <= limit.max_share <= 1:
            raise SnapshotError(f"{place}.maxShare: must be between 0 and 1, got {limit.max_share}")
        limits.append(PeerLimit(limit.cluster, limit.workload, limit.max_pods, limit.max_share))
    return PlanInput(peers=peers, pods=pods, home=home, limits=limits, budgets=_budgets(snap, pods))


def _budgets(snap: Snapshot, pods: list[PendingPod]) -> dict[str, float]:
    """Namespace -> what its pending pods may cost per hour: the cap less the spend now."""
    namespaces = {p.pod.metadata.namespace for p in pods}
    out: dict[str, float] = {}
    for bi, budget in enumerate(snap.budgets):
        place = f"budgets[{bi}]"
        if budget.namespace in out:
            raise SnapshotError(f"{place}.namespace: {budget.namespace!r} has a budget already")
        if budget.namespace not in namespaces:
            raise SnapshotError(f"{place}.namespace: no pods belong to namespace {budget.namespace!r}")
        for field, value in (("maxSpendPerHour", budget.max_spend_per_hour), ("spendPerHour", budget.spend_per_hour)):
            if not math.isfinite(value) or value < 0:
                raise SnapshotError(f"{place}.{field}: must be a non-negative number, got {value!r}")
        out[budget.namespace] = max(budget.max_spend_per_hour - budget.spend_per_hour, 0.0)
    return out


def load_snapshot(path: str | Path) -> PlanInput:
    """Read a YAML or JSON snapshot; SnapshotError (with the place) for anything wrong in it."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SnapshotError(f"{path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SnapshotError(f"{path}: {where}: {problem}") from None
    return parse(data)
