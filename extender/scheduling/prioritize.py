"""The ``prioritize`` verb: 0-10 scores that steer the scheduler among the peers that passed filter.

Real nodes all get the same score, so among them the scheduler's own plugins decide as if we were
not there. Virtual nodes take the planner's score when it has one (it sees every pending pod at
once); otherwise the planner's model for this one pod (``ranked_scores``: tier, then price with
the ``spillover.io/prefer`` discount), with more headroom as the tiebreaker.

Headroom is read from the peer's running totals (kept by every capacity change), so scoring
never walks a peer's nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from extender.capacity.fit import without_marker
from extender.capacity.model import PeerState
from extender.hints import DEFAULT, HintError, Hints, parse_hints
from extender.planner.pricing import placement_key
from extender.pod_requests import pod_requests
from extender.resources import QuantityError
from extender.scheduling.state import SchedulingState
from extender.wire.core import Pod
from extender.wire.extender import MAX_EXTENDER_PRIORITY, MIN_EXTENDER_PRIORITY, HostPriority

REAL_NODE_SCORE = 0

def headroom(peer: PeerState) -> float:
    """Free share (0-1) of the peer's schedulable CPU and memory, averaged."""
    return peer.headroom()


def _clamp(score: float) -> int:
    return max(MIN_EXTENDER_PRIORITY, min(MAX_EXTENDER_PRIORITY, round(score)))


def ranked_scores(pod: Pod, hints: Hints, peers: Iterable[PeerState]) -> dict[str, int]:
    """Scores when no plan covers the pod, from the planner's own model (``placement_key``: tier,
    then price with the ``prefer`` discount), so a pod goes where ``spillover simulate`` and the
    plan would send it: the best peer scores 10, the next 9, ... (not below 1); more headroom
    breaks a tie."""
    try:
        requests = without_marker(pod_requests(pod))
    except QuantityError:
        requests = {}  # filter refused these nodes already, with the message
    keys = {}
    for peer in peers:
        tier, price = placement_key(requests, hints, peer)
        keys[peer.name] = (tier, round(price, 9), -round(headroom(peer), 6))
    ranks = {key: rank for rank, key in enumerate(sorted(set(keys.values())))}
    return {name: max(MIN_EXTENDER_PRIORITY + 1, MAX_EXTENDER_PRIORITY - ranks[key]) for name, key in keys.items()}


def prioritize(state: SchedulingState, pod: Pod, node_names: Sequence[str]) -> list[HostPriority]:
    """One score per name, in the order given (the scheduler sums them by host)."""
    peer_for_node = state.peer_for_node
    peers: dict[str, PeerState] = {}
    for name in node_names:
        peer = peer_for_node(name)
        if peer is not None:
            peers[name] = peer
    if not peers:
        return [HostPriority(Host=name, Score=REAL_NODE_SCORE) for name in node_names]
    try:
        hints = parse_hints(pod.metadata.annotations)
    except HintError:
        hints = DEFAULT  # filter already refused these nodes with the message
    fallback: dict[str, int] | None = None
    by_peer: dict[str, int] = {}
    for peer in peers.values():
        if peer.name not in by_peer:
            planned = state.plan_score(pod, peer)
            if planned is None and fallback is None:
                fallback = ranked_scores(pod, hints, peers.values())
            by_peer[peer.name] = _clamp(planned) if planned is not None else (fallback or {})[peer.name]
    return [
        HostPriority(Host=name, Score=by_peer[peer.name] if (peer := peers.get(name)) else REAL_NODE_SCORE)
        for name in node_names
    ]
