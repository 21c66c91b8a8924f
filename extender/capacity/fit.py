"""Whether a pod would fit one real node of a peer, judged the way the peer's scheduler judges it.

Summed free capacity never decides: a peer with 4 free CPUs spread over four nodes cannot run a
3-CPU pod, so every check here is per node. The checks mirror the kube-scheduler Filter plugins
that matter for a pod we are about to hand over (NodeUnschedulable, NodeName-free NodeAffinity,
TaintToleration, NodeResourcesFit); anything the peer judges differently surfaces as a delegate
that stays Pending, which the delegator handles.

The marker resource ``spillover.io/spillable`` is ignored: peer nodes never advertise it and the
delegate created in the peer does not request it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from extender.capacity.model import NodeCapacity, PeerState
from extender.resources import PODS, SPILLABLE, Resources, fits_within
from extender.wire.core import NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration

_HARD_EFFECTS = ("NoSchedule", "NoExecute")
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
"""kube-scheduler lets a pod onto a cordoned node only if it tolerates this taint."""


@dataclass(frozen=True, slots=True)
class FitResult:
    """The node chosen (None when no node fits) and, when none fits, why, summed over the nodes."""

    node: str | None
    reason: str = ""

    @property
    def fits(self) -> bool:
        return self.node is not None


# --- tolerations and taints (k8s.io/api/core/v1 Toleration.ToleratesTaint) ---------------------


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """The Kubernetes rule: empty effect matches all effects, empty key with Exists matches all keys."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    operator = toleration.operator or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return toleration.value == taint.value
    return False


def untolerated_taint(tolerations: Sequence[Toleration], taints: Iterable[Taint]) -> Taint | None:
    """The first NoSchedule/NoExecute taint no toleration matches (PreferNoSchedule never blocks)."""
    for taint in taints:
        if taint.effect not in _HARD_EFFECTS:
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _taint_text(taint: Taint) -> str:
    value = f"={taint.value}" if taint.value else ""
    return f"untolerated taint {taint.key}{value}:{taint.effect}"


# --- node selectors and required node affinity ----------------------------------------------


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def requirement_matches(req: NodeSelectorRequirement, value: str | None) -> bool:
    """One matchExpressions/matchFields requirement against a label (None when the label is absent)."""
    op = req.operator
    values = req.values or ()
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        have, bound = _parse_int(value), _parse_int(values[0])
        if have is None or bound is None:
            return False
        return have > bound if op == "Gt" else have < bound
    return False  # an unknown operator selects nothing, as in Kubernetes


def term_matches(term: NodeSelectorTerm, labels: Mapping[str, str], node_name: str) -> bool:
    """Requirements within a term are ANDed; a term with no requirements selects no node."""
    expressions = term.match_expressions or ()
    fields = term.match_fields or ()
    if not expressions and not fields:
        return False
    for req in expressions:
        if not requirement_matches(req, labels.get(req.key)):
            return False
    # metadata.name is the only field Kubernetes supports in matchFields.
    return all(req.key == "metadata.name" and requirement_matches(req, node_name) for req in fields)


def _required_terms(pod: Pod) -> list[NodeSelectorTerm] | None:
    affinity = pod.spec.affinity
    if affinity is None or affinity.node_affinity is None:
        return None
    selector = affinity.node_affinity.required_during_scheduling_ignored_during_execution
    if selector is None:
        return None
    return selector.node_selector_terms or []


# --- the checks -----------------------------------------------------------------------------


class _Placement:
    """A pod's placement constraints, read once so scanning a thousand nodes stays cheap."""

    __slots__ = ("node_selector", "terms", "tolerates_unschedulable", "tolerations")

    def __init__(self, pod: Pod) -> None:
        self.node_selector = pod.spec.node_selector or None
        self.terms = _required_terms(pod)
        self.tolerations: Sequence[Toleration] = pod.spec.tolerations or ()
        cordon = Taint(key=UNSCHEDULABLE_TAINT, effect="NoSchedule")
        self.tolerates_unschedulable = any(tolerates(t, cordon) for t in self.tolerations)

    def reject(self, node: NodeCapacity) -> str | None:
        if not node.ready:
            return "node not ready"
        if node.unschedulable and not self.tolerates_unschedulable:
            return "node unschedulable"
        if self.node_selector is not None:
            labels = node.labels
            for key, value in self.node_selector.items():
                if labels.get(key) != value:
                    return "node selector mismatch"
        if self.terms is not None and not any(term_matches(t, node.labels, node.name) for t in self.terms):
            return "node affinity mismatch"
        if node.taints:
            taint = untolerated_taint(self.tolerations, node.taints)
            if taint is not None:
                return _taint_text(taint)
        return None


def placement_rejection(pod: Pod, node: NodeCapacity) -> str | None:
    """Why the pod may not go on this node regardless of resources (None: it may)."""
    return _Placement(pod).reject(node)


def _shortfall_text(resource: str) -> str:
    if resource == PODS:
        return "too many pods"
    return f"too little {resource}"


def without_marker(requests: Mapping[str, int]) -> Resources:
    """Requests as the peer sees them: without the marker resource, and without zero amounts."""
    return {name: amount for name, amount in requests.items() if amount > 0 and name != SPILLABLE}


def node_fit_rejection(pod: Pod, requests: Mapping[str, int], node: NodeCapacity) -> str | None:
    """Why the pod with these effective requests does not fit this node (None: it fits)."""
    reason = placement_rejection(pod, node)
    if reason is not None:
        return reason
    short = fits_within(without_marker(requests), node.free())
    return None if short is None else _shortfall_text(short)


def _slack(requests: Mapping[str, int], node: NodeCapacity) -> float | None:
    """Free fraction left after placing the pod (summed over its resources), None if it does not fit.

    Inlined free() arithmetic: this runs for every node of every candidate peer on the filter path.
    """
    alloc, used, held = node.allocatable, node.requested, node.reserved
    slack = 0.0
    for name, amount in requests.items():
        total = alloc.get(name, 0)
        left = total - used.get(name, 0) - held.get(name, 0) - amount
        if left < 0:
            return None
        slack += left / total if total else 0.0
    return slack


def _first_short(requests: Mapping[str, int], node: NodeCapacity) -> str:
    alloc, used, held = node.allocatable, node.requested, node.reserved
    for name, amount in requests.items():
        if amount > alloc.get(name, 0) - used.get(name, 0) - held.get(name, 0):
            return name
    return ""  # unreachable when called after _slack returned None


def _short_of(wanted: Mapping[str, int], bound: Mapping[str, int]) -> str:
    """The first resource the pod wants more of than ``bound`` ("" when none)."""
    for name, amount in wanted.items():
        if amount > bound.get(name, 0):
            return name
    return ""


def find_node(pod: Pod, requests: Mapping[str, int], peer: PeerState, *, tightest: bool = True) -> FitResult:
    """A node of ``peer`` where the pod fits, or a summary of why none does.

    ``tightest`` picks the node left with the least free room (bin packing, so big holes stay
    for big pods); without it the first fitting node is returned, which is all filter needs.
    """
    if not peer.nodes:
        return FitResult(None, f"no node of {peer.name} fits: the peer has no nodes")
    wanted = without_marker(requests)
    placement = _Placement(pod)
    # Most pods have no selector or affinity and most nodes no taints: skip the call for those.
    unconstrained = placement.node_selector is None and placement.terms is None
    nodes: Iterable[NodeCapacity] = peer.nodes.values()
    reasons: dict[str, int] = {}
    # The bounds are only consulted while current and only computed after a scan that found
    # nothing, so a scan that finds a node early (the usual case while capacity churns) never
    # pays for them; a pod that fits nowhere is then refused without a scan until capacity moves.
    bounds = peer.known_free_bounds()
    if bounds is not None:
        if short := _short_of(wanted, bounds.largest):
            return FitResult(None, f"no node of {peer.name} fits: {len(peer.nodes)} {_shortfall_text(short)}")
        if unconstrained and (short := _short_of(wanted, bounds.largest_open)):
            if skipped := len(peer.nodes) - len(bounds.restricted):
                reasons[_shortfall_text(short)] = skipped
            nodes = bounds.restricted
    wanted_items = tuple(wanted.items())
    best: str | None = None
    best_slack = 0.0
    for node in nodes:
        if unconstrained and node.ready and not node.unschedulable and not node.taints:  # node.is_open, inlined: hot
            reason = None
        else:
            reason = placement.reject(node)
        if reason is None:
            if not tightest:
                alloc, used, held = node.allocatable, node.requested, node.reserved
                for name, amount in wanted_items:
                    if amount > alloc.get(name, 0) - used.get(name, 0) - held.get(name, 0):
                        short = _shortfall_text(name)
                        reasons[short] = reasons.get(short, 0) + 1
                        break
                else:
                    return FitResult(node.name)
                continue
            slack = _slack(wanted, node)
            if slack is not None:
                if best is None or slack < best_slack or (slack == best_slack and node.name < best):
                    best, best_slack = node.name, slack
                continue
            reason = _shortfall_text(_first_short(wanted, node))
        reasons[reason] = reasons.get(reason, 0) + 1
    if best is not None:
        return FitResult(best)
    if bounds is None:
        peer.free_bounds()  # for the calls that follow, until capacity moves
    ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    summary = ", ".join(f"{count} {reason}" for reason, count in ranked)
    return FitResult(None, f"no node of {peer.name} fits: {summary}")
