"""The ``filter`` verb: which of the nodes kube-scheduler found feasible may this pod use.

The scheduler has already run its own plugins over every node, virtual ones included, so a
virtual node reaching us means the peer's advertised summary looked big enough. Here we decide
what the scheduler cannot know: the pod's policy (home first or peers first), whether the peer is
healthy and allowed for the pod, and whether one real node of the peer fits the pod.

A pod of a namespace that is not opted in never passes a virtual node, whatever it carries (the
webhook prepares only opted-in pods; a pod that prepared itself, or whose namespace was opted out
since, is kept home), and neither does a pod the peer's Pod Security level would refuse.

Exclusions that preemption at home cannot cure (policy, health, namespace rules, hints) go in
FailedAndUnresolvableNodes; a peer without room goes in FailedNodes. Every rejected node has a
reason, because the scheduler prints them in the pod's FailedScheduling event.

This runs once per scheduling attempt with up to thousands of names, so the per-name work is a
dict lookup; everything about the pod (hints, requests, selectors) is computed once per call and
everything about a peer once per peer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from extender import labels, pod_security
from extender.capacity.fit import find_node
from extender.capacity.model import PeerState
from extender.hints import AVOID_CLUSTERS, CLUSTERS, MAX_COST, POLICY, HintError, Hints, Policy, parse_hints
from extender.pod_requests import pod_requests
from extender.pod_security import Level
from extender.resources import QuantityError, Resources
from extender.scheduling.prioritize import ranked_scores
from extender.scheduling.state import SchedulingState
from extender.wire.core import Pod
from extender.wire.extender import ExtenderFilterResult


class Outcome(enum.StrEnum):
    HOME = "home"
    """Only real nodes passed."""
    PEER = "peer"
    """Only virtual nodes passed."""
    NONE = "none"
    """Nothing passed: the pod stays pending (or preemption is tried)."""


@dataclass(frozen=True, slots=True)
class Filtered:
    result: ExtenderFilterResult
    outcome: Outcome


# --- metav1.LabelSelector over home namespace labels ----------------------------------------


class SelectorError(ValueError):
    pass


def selector_matches(selector: Mapping[str, object] | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: None or {} selects everything; raises SelectorError if malformed."""
    if not selector:
        return True
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels must be a map of strings")
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise SelectorError("matchExpressions must be a list")
    for expr in expressions:
        if not isinstance(expr, Mapping):
            raise SelectorError("each matchExpressions entry must be an object")
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if not isinstance(key, str) or not isinstance(values, list):
            raise SelectorError(f"matchExpressions entry {dict(expr)!r} needs a string key and a list of values")
        have = labels.get(key)
        if op == "In":
            if not values:
                raise SelectorError(f"operator In on {key!r} needs values")
            if have is None or have not in values:
                return False
        elif op == "NotIn":
            if not values:
                raise SelectorError(f"operator NotIn on {key!r} needs values")
            if have is not None and have in values:
                return False
        elif op == "Exists":
            if have is None:
                return False
        elif op == "DoesNotExist":
            if have is not None:
                return False
        else:
            raise SelectorError(f"operator {op!r} is not one of In, NotIn, Exists, DoesNotExist")
    return True


def namespace_refusal(peer: PeerState, namespace: str, namespace_labels: Mapping[str, str]) -> str | None:
    """Why PeerCluster allowedNamespaces keeps this home namespace's pods off the peer (None: it does not)."""
    try:
        allowed = selector_matches(peer.allowed_namespaces, namespace_labels)
    except SelectorError as exc:
        return f"peer {peer.name} has an invalid allowedNamespaces selector: {exc}"
    if not allowed:
        return f"peer {peer.name} does not allow namespace {namespace} (PeerCluster allowedNamespaces)"
    return None


def not_opted_in(namespace: str) -> str:
    return (
        f"namespace {namespace} is not opted in to Spillover (label {labels.ENABLED}=true): its pods never run on "
        "peers"
    )


def not_known(namespace: str) -> str:
    return (
        f"namespace {namespace} is not in Spillover's namespace cache yet (starting, or the namespace is brand "
        "new): the scheduler retries the pod"
    )


# --- per-call judgement of peers ------------------------------------------------------------


class _Judge:
    """Decides once per peer for one pod; verdicts are (reason, resolvable) or None for a pass."""

    __slots__ = ("_labels", "_pod_json", "_requests", "_security", "hints", "pod", "state", "verdicts")

    def __init__(self, state: SchedulingState, pod: Pod, hints: Hints, pod_json: bytes | None) -> None:
        self.state = state
        self.pod = pod
        self.hints = hints
        self.verdicts: dict[str, tuple[str, bool] | None] = {}
        self._labels: Mapping[str, str] | None = None
        self._requests: Resources | QuantityError | None = None
        self._pod_json = pod_json
        self._security: dict[Level, str] = {}
        """Pod Security findings per level ("" when admitted): one judgement per level per call."""

    def namespace_labels(self) -> Mapping[str, str]:
        if self._labels is None:
            self._labels = self.state.namespace_labels(self.pod.metadata.namespace)
        return self._labels

    def requests(self) -> Resources | QuantityError:
        if self._requests is None:
            try:
                self._requests = pod_requests(self.pod)
            except QuantityError as exc:
                self._requests = exc
        return self._requests

    def security_findings(self, level: Level) -> str:
        """What a peer enforcing ``level`` would refuse the pod for ("" for nothing), decoded from
        the scheduler's JSON at most once per call and judged once per level."""
        found = self._security.get(level)
        if found is None:
            body = self._pod_json if self._pod_json is not None else msgspec.json.encode(self.pod)
            try:
                found = pod_security.describe(pod_security.violations(pod_security.from_json(body), level))
            except msgspec.MsgspecError as exc:
                found = f"the pod's security settings do not decode: {exc}"
            self._security[level] = found
        return found

    def verdict(self, peer: PeerState) -> tuple[str, bool] | None:
        if peer.name in self.verdicts:
            return self.verdicts[peer.name]
        verdict = self._judge(peer)
        self.verdicts[peer.name] = verdict
        return verdict

    def _judge(self, peer: PeerState) -> tuple[str, bool] | None:
        if not peer.healthy:
            return peer.health_reason(), False
        hints = self.hints
        if not hints.allows(peer.name):
            if peer.name in hints.avoid_clusters:
                return f"{AVOID_CLUSTERS} excludes peer {peer.name}", False
            return f"{CLUSTERS} does not include peer {peer.name}", False
        if not hints.allows_cost(peer.cost):
            return f"peer {peer.name} costs {peer.cost:g}, above {MAX_COST}={hints.max_cost:g}", False
        if refused := namespace_refusal(peer, self.pod.metadata.namespace, self.namespace_labels()):
            return refused, False
        if peer.pod_security is not Level.PRIVILEGED and (found := self.security_findings(peer.pod_security)):
            refusal = pod_security.refusal_text(peer.name, peer.pod_security, found)
            self.state.note_refusal(self.pod, peer, refusal)
            return refusal, False
        if (avoided := self.state.avoided(self.pod, peer)) is not None:
            return avoided, False
        if hints.gang is not None:
            held = self.state.gang_peer(self.pod, hints.gang)
            if held is None:
                reason = self.state.gang_reason(self.pod, hints.gang)
                if reason is None:
                    size = f" of {hints.gang_size} members" if hints.gang_size else ""
                    reason = f"gang {hints.gang}: waiting for the planner to place the whole gang{size}"
                return reason, True
            if held != peer.name:
                return f"gang {hints.gang}: the plan holds room for the whole gang on peer {held}", False
        requests = self.requests()
        if isinstance(requests, QuantityError):
            return f"the pod's resource requests do not parse: {requests}", False
        fit = find_node(self.pod, requests, peer, tightest=False)
        if fit.node is None:
            return fit.reason, True
        if (over := self.state.budget_refusal(self.pod, peer, requests)) is not None:
            return over, False  # preempting pods at home frees no budget
        return None


def _keep_best(state: SchedulingState, pod: Pod, hints: Hints, passing: list[str], failed: dict[str, str]) -> list[str]:
    """Pass only the best-ranked peer; the others fail with the ranking as their reason.

    With one feasible node left the scheduler skips scoring, so no prioritize round trip sits in
    its (serial) scheduling cycle: the peer ranking is made here, from the same scores.
    """
    peers = {name: peer for name in passing if (peer := state.peer_for_node(name)) is not None}
    if len(peers) < 2:
        return passing
    fallback: dict[str, int] | None = None
    scores = {}
    for name, peer in peers.items():
        planned = state.plan_score(pod, peer)
        if planned is None and fallback is None:
            fallback = ranked_scores(pod, hints, peers.values())
        scores[name] = planned if planned is not None else (fallback or {})[peer.name]
    best = max(passing, key=lambda name: (scores.get(name, -1), name == passing[0]))
    for name in passing:
        if name != best:
            failed[name] = (
                f"fits, but ranked below {best} (score {scores.get(name, 0)} < {scores.get(best, 0)}: "
                "tier, price with the prefer discount, headroom)"
            )
    return [best]


def _exclude(names: Sequence[str], reason: str) -> dict[str, str]:
    return dict.fromkeys(names, reason)


def filter_nodes(
    state: SchedulingState, pod: Pod, node_names: Sequence[str], pod_json: bytes | None = None
) -> Filtered:
    """Split the scheduler's feasible nodes into passing, failed and unresolvable, by the pod's policy.

    ``pod_json`` is the pod as the scheduler sent it: the Pod Security checks read fields the
    partial ``Pod`` model leaves out. Without it (unit tests, benchmarks) they see only that model.
    """
    peer_for_node = state.peer_for_node
    is_virtual = state.is_virtual_node_name
    real: list[str] = []
    virtual: list[tuple[str, PeerState | None]] = []
    for name in node_names:
        peer = peer_for_node(name)
        if peer is not None:
            virtual.append((name, peer))
        elif is_virtual(name):
            virtual.append((name, None))
        else:
            real.append(name)

    if not virtual:
        annotations = pod.metadata.annotations
        if real and annotations and annotations.get(POLICY) == Policy.REMOTE_ONLY:
            # kube-scheduler stops looking once it has found percentageOfNodesToScore worth of
            # feasible nodes (at least 100), from a start that moves on each attempt: a window
            # without the virtual nodes says nothing about the peers, so the pod waits for the next.
            why = "remote-only: no peer was among the nodes the scheduler examined in this attempt; retrying"
            return Filtered(ExtenderFilterResult(NodeNames=[], FailedNodes=_exclude(real, why)), Outcome.NONE)
        return Filtered(ExtenderFilterResult(NodeNames=real), Outcome.HOME if real else Outcome.NONE)
    virtual_names = [name for name, _ in virtual]
    home_outcome = Outcome.HOME if real else Outcome.NONE

    try:
        hints = parse_hints(pod.metadata.annotations)
    except HintError as exc:
        unresolvable = _exclude(virtual_names, str(exc))
        return Filtered(ExtenderFilterResult(NodeNames=real, FailedAndUnresolvableNodes=unresolvable), home_outcome)
    policy = hints.policy
    if policy is Policy.LOCAL_ONLY:
        unresolvable = _exclude(virtual_names, "local-only: the pod never leaves the home cluster")
        return Filtered(ExtenderFilterResult(NodeNames=real, FailedAndUnresolvableNodes=unresolvable), home_outcome)
    if policy is Policy.LOCAL_FIRST and real:
        unresolvable = _exclude(virtual_names, "local-first: the home cluster has room")
        return Filtered(ExtenderFilterResult(NodeNames=real, FailedAndUnresolvableNodes=unresolvable), Outcome.HOME)

    namespace = pod.metadata.namespace
    opted_in = state.namespace_opted_in(namespace)
    if opted_in is None:  # an error: the scheduler retries the pod after a backoff, by then we know
        return Filtered(ExtenderFilterResult(NodeNames=[], Error=not_known(namespace)), Outcome.NONE)
    if not opted_in:
        unresolvable = _exclude(virtual_names, not_opted_in(namespace))
        return Filtered(ExtenderFilterResult(NodeNames=real, FailedAndUnresolvableNodes=unresolvable), home_outcome)

    state.note_spill_candidate(pod)
    judge = _Judge(state, pod, hints, pod_json)
    passing: list[str] = []
    failed: dict[str, str] = {}
    unresolvable = {}
    for name, peer in virtual:
        if peer is None:
            unresolvable[name] = f"virtual node {name} has no peer behind it (PeerCluster removed or not loaded)"
            continue
        verdict = judge.verdict(peer)
        if verdict is None:
            passing.append(name)
        elif verdict[1]:
            failed[name] = verdict[0]
        else:
            unresolvable[name] = verdict[0]

    if len(passing) > 1:
        passing = _keep_best(state, pod, hints, passing, failed)
    if policy is Policy.REMOTE_ONLY or (policy is Policy.REMOTE_FIRST and passing):
        why = (
            "remote-only: the pod runs only on peers"
            if policy is Policy.REMOTE_ONLY
            else "remote-first: a peer has room"
        )
        unresolvable.update(_exclude(real, why))
        outcome = Outcome.PEER if passing else Outcome.NONE
        return Filtered(
            ExtenderFilterResult(NodeNames=passing, FailedNodes=failed, FailedAndUnresolvableNodes=unresolvable),
            outcome,
        )
    if real:  # remote-first with no peer that fits: home it is
        return Filtered(
            ExtenderFilterResult(NodeNames=real, FailedNodes=failed, FailedAndUnresolvableNodes=unresolvable),
            Outcome.HOME,
        )
    outcome = Outcome.PEER if passing else Outcome.NONE
    return Filtered(
        ExtenderFilterResult(NodeNames=passing, FailedNodes=failed, FailedAndUnresolvableNodes=unresolvable), outcome
    )
