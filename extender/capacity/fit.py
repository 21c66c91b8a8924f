"""Whether a pod would fit one real node of a peer, judged the way the peer's scheduler judges it.

Summed free capacity never decides: a peer with 4 free CPUs spread over four nodes cannot run a
3-CPU pod, so every check here is per node. The checks are kube-scheduler v1.36's Filter plugins
that judge a pod against a node by the node alone, rule for rule: NodeUnschedulable, NodeAffinity
(nodeSelector and required node affinity), TaintToleration and NodeResourcesFit (pkg/scheduler/
framework/plugins/...). Like the scheduler, the fit reads no node condition: a node that is not
ready is kept off by the taints the node lifecycle controller gives it (node.kubernetes.io/not-ready,
node.kubernetes.io/unreachable), as any untolerated taint. What the peer judges by other pods or
volumes (pod (anti-)affinity, topology spread, host ports, volume limits) or by its own scheduler
configuration surfaces as a delegate that stays Pending, which the delegator handles.

The marker resource ``spillover.io/spillable`` is ignored: peer nodes never advertise it and the
delegate created in the peer does not request it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.resources import PODS, SPILLABLE, Resources, fits_within, is_qualified_name
from extender.wire.core import NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration

_HARD_EFFECTS = ("NoSchedule", "NoExecute")
_encode = msgspec.json.Encoder().encode
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


# --- tolerations and taints ---------------------------------------------------------------------


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """k8s.io/api core/v1 toleration.go ``Toleration.ToleratesTaint``: an empty effect matches all
    effects, an empty key all keys; operator "" or Equal compares values, Exists matches any value.
    Lt and Gt need the TaintTolerationComparisonOperators gate (alpha, off in v1.36): no match."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    operator = toleration.operator
    if operator in ("", "Equal"):
        return toleration.value == taint.value
    return operator == "Exists"


def untolerated_taint(tolerations: Sequence[Toleration], taints: Iterable[Taint]) -> Taint | None:
    """The first NoSchedule/NoExecute taint no toleration matches (PreferNoSchedule never blocks):
    TaintToleration ``Filter`` with ``DoNotScheduleTaintsFilterFunc`` (component-helpers
    scheduling/corev1 ``FindMatchingUntoleratedTaint``)."""
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
# component-helpers scheduling/corev1/nodeaffinity/nodeaffinity.go (``GetRequiredNodeAffinity``,
# ``LazyErrorNodeSelector``) over apimachinery labels.NewRequirement / Requirement.Matches.

_INT64 = re.compile(r"[+-]?[0-9]+")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _go_int64(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64): optional sign, ASCII digits, within int64."""
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def _valid_requirement(req: NodeSelectorRequirement) -> bool:
    """``labels.NewRequirement`` accepts it: a qualified key, the number of values its operator
    wants (Gt/Lt: one integer), every value a valid label value. A term with an invalid
    requirement matches no node (the parse error is swallowed by the NodeAffinity filter)."""
    values = req.values or ()
    op = req.operator
    if not is_qualified_name(req.key):
        return False
    if op in ("In", "NotIn"):
        ok = len(values) > 0
    elif op in ("Exists", "DoesNotExist"):
        ok = len(values) == 0
    elif op in ("Gt", "Lt"):
        ok = len(values) == 1 and _go_int64(values[0]) is not None
    else:
        return False
    return ok and all(len(v) <= 63 and _LABEL_VALUE.fullmatch(v) for v in values)


def requirement_matches(req: NodeSelectorRequirement, value: str | None) -> bool:
    """``Requirement.Matches`` for one valid requirement against a label (None when absent)."""
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
        have, bound = _go_int64(value), _go_int64(values[0])
        if have is None or bound is None:
            return False
        return have > bound if op == "Gt" else have < bound
    return False  # an unknown operator selects nothing, as in Kubernetes


class _Term:
    """One nodeSelectorTerm, parsed once per pod (``newNodeSelectorTerm``)."""

    __slots__ = ("expressions", "fields", "valid")

    def __init__(self, term: NodeSelectorTerm) -> None:
        self.expressions = term.match_expressions or ()
        self.fields = term.match_fields or ()
        # matchFields: In and NotIn with exactly one value (fields.OneTermEqualSelector and
        # OneTermNotEqualSelector); anything else is a parse error of the whole term.
        self.valid = all(_valid_requirement(r) for r in self.expressions) and all(
            r.operator in ("In", "NotIn") and len(r.values or ()) == 1 for r in self.fields
        )

    def needs_missing_label(self, peer: PeerState) -> bool:
        """Whether the term cannot match any node of the peer for want of a label none carries."""
        if not self.valid:
            return True
        for req in self.expressions:
            if req.operator == "Exists" and peer.label_count(req.key) == 0:
                return True
            if req.operator == "In" and all(peer.label_count(req.key, v) == 0 for v in req.values or ()):
                return True
        return False

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        if not self.valid:
            return False
        for req in self.expressions:
            if not requirement_matches(req, labels.get(req.key)):
                return False
        for req in self.fields:
            # A node's only field is metadata.name (``extractNodeFields``); any other reads as "".
            have = node_name if req.key == "metadata.name" else ""
            if (have == (req.values or ("",))[0]) != (req.operator == "In"):
                return False
        return True


def _required_terms(pod: Pod) -> list[_Term] | None:
    """The required node affinity's terms (None: the pod has none). Empty terms are dropped, as
    ``NewLazyErrorNodeSelector`` drops them: they select nothing, and no terms match no node."""
    affinity = pod.spec.affinity
    if affinity is None or affinity.node_affinity is None:
        return None
    selector = affinity.node_affinity.required_during_scheduling_ignored_during_execution
    if selector is None:
        return None
    return [_Term(t) for t in selector.node_selector_terms or () if t.match_expressions or t.match_fields]


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

    def matches_no_labels(self, peer: PeerState) -> bool:
        """True when no node of the peer can match the pod's nodeSelector or required affinity,
        judged from how many nodes carry each label: a label value no node has, or every term
        needing (In, Exists) a label no node has. False means "maybe": check node by node."""
        if self.selector_matches_none(peer):
            return True
        if self.terms is None:
            return False
        return all(term.needs_missing_label(peer) for term in self.terms)

    def selector_matches_none(self, peer: PeerState) -> bool:
        return self.node_selector is not None and any(
            peer.label_count(k, v) == 0 for k, v in self.node_selector.items()
        )

    def reject(self, node: NodeCapacity) -> str | None:
        """The first plugin that turns the node down, in kube-scheduler's default order
        (pkg/scheduler/apis/config/v1/default_plugins.go): NodeUnschedulable, TaintToleration,
        NodeAffinity; NodeResourcesFit comes after, in the callers."""
        # NodeUnschedulable: a cordoned node takes pods that tolerate its would-be taint.
        if node.unschedulable and not self.tolerates_unschedulable:
            return "node unschedulable"
        if node.taints:
            taint = untolerated_taint(self.tolerations, node.taints)
            if taint is not None:
                return _taint_text(taint)
        # NodeAffinity: the nodeSelector (labels.SelectorFromSet: each label present and equal)...
        if self.node_selector is not None:
            labels = node.labels
            for key, value in self.node_selector.items():
                if labels.get(key) != value:
                    return "node selector mismatch"
        # ... and the required terms, ORed.
        if self.terms is not None and not any(t.matches(node.labels, node.name) for t in self.terms):
            return "node affinity mismatch"
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

    Cost, for peers of thousands of nodes: the per-resource bounds refuse a pod bigger than any
    node's free room at once; a selector no node's labels can match likewise; the nodes with room
    for every resource the pod asks are found in one vectorized pass (``Columns``), and only those
    go through the Python placement checks; a pod shape found to fit nowhere is afterwards
    re-checked against just the nodes that gained room since.
    """
    if not peer.nodes:
        return FitResult(None, f"no node of {peer.name} fits: the peer has no nodes")
    wanted = without_marker(requests)
    placement = _Placement(pod)
    # Most pods have no selector or affinity and most nodes no taints: skip the call for those.
    unconstrained = placement.node_selector is None and placement.terms is None
    bounds = peer.free_bounds()
    if short := _short_of(wanted, bounds.largest):
        return FitResult(None, f"no node of {peer.name} fits: {len(peer.nodes)} {_shortfall_text(short)}")
    wanted_items = tuple(wanted.items())
    shape: tuple[bytes, tuple[tuple[str, int], ...]] | None = None
    if not tightest:
        # A pod of this shape found to fit nowhere is re-checked against the nodes that gained
        # room since, not against every node: a no-fit answer costs O(changes), not O(nodes).
        spec = pod.spec
        shape = (_encode((spec.node_selector, spec.affinity, spec.tolerations)), wanted_items)
        known = peer.misfit(shape)
        if known is not None:
            why, loosened = known
            for node in loosened:
                if peer.nodes.get(node.name) is node and _fits(placement, wanted_items, node):
                    peer.forget_misfit(shape)
                    return FitResult(node.name)
            return FitResult(None, why)
    columns = peer.columns()
    if unconstrained and not tightest and (first := columns.first_open_with_room(wanted_items)) is not None:
        return FitResult(first.name)  # the usual answer, from one vectorized pass and no list
    if unconstrained or not placement.matches_no_labels(peer):
        by_row = columns.by_row
        best: str | None = None
        best_slack = 0.0
        for row in columns.with_room(wanted_items):
            node = by_row[row]
            assert node is not None
            # node.is_open, inlined (hot): an open node takes an unconstrained pod by resources alone
            if (not unconstrained or node.unschedulable or node.taints) and placement.reject(node) is not None:
                continue
            if not tightest:
                return FitResult(node.name)
            slack = _slack(wanted, node)
            if slack is not None and (best is None or slack < best_slack or (slack == best_slack and node.name < best)):
                best, best_slack = node.name, slack
        if best is not None:
            return FitResult(best)
    why = f"no node of {peer.name} fits: {_why_not(placement, unconstrained, wanted_items, peer)}"
    if shape is not None:
        peer.remember_misfit(shape, why)
    return FitResult(None, why)


def _why_not(
    placement: _Placement, unconstrained: bool, wanted: tuple[tuple[str, int], ...], peer: PeerState
) -> str:
    """Every node's first reason for refusing the pod, summed ("3 too little cpu, 1 node unschedulable").

    Only the cordoned and tainted nodes need a look for an unconstrained pod; the others are short
    of some resource, counted in one vectorized pass.
    """
    reasons: dict[str, int] = {}
    nodes: Iterable[NodeCapacity] = peer.nodes.values()
    restricted = peer.free_bounds().restricted
    if unconstrained:
        for name, count in peer.columns().first_short(wanted, rows_open=True).items():
            reasons[_shortfall_text(name)] = count
        nodes = restricted
    elif placement.matches_no_labels(peer):  # every open node fails on its labels
        mismatch = "node selector mismatch" if placement.selector_matches_none(peer) else "node affinity mismatch"
        reasons[mismatch] = len(peer.nodes) - len(restricted)
        nodes = restricted
    for node in nodes:
        reason = placement.reject(node)
        if reason is None:
            reason = _shortfall_text(_first_short(dict(wanted), node))
        reasons[reason] = reasons.get(reason, 0) + 1
    ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{count} {reason}" for reason, count in ranked)


def _fits(placement: _Placement, wanted_items: tuple[tuple[str, int], ...], node: NodeCapacity) -> bool:
    if placement.reject(node) is not None:
        return False
    alloc, used, held = node.allocatable, node.requested, node.reserved
    return all(amount <= alloc.get(name, 0) - used.get(name, 0) - held.get(name, 0) for name, amount in wanted_items)
