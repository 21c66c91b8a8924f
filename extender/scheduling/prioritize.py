"""The ``prioritize`` verb: 0-10 scores that steer the scheduler among the peers that passed filter.

Real nodes all get the same score, so among them the scheduler's own plugins decide as if we were
not there. Virtual nodes take the planner's score when it has one (it sees every pending pod at
once); otherwise a local blend: cheaper is better, relative to the cheapest candidate, the pod's
``spillover.io/prefer`` weights count when given, and more headroom is a tiebreaker.

Headroom is the only figure that needs a walk over a peer's nodes, so it is cached per peer
capacity generation (bumped by the watches whenever free capacity changes); a score computed from
a generation-old figure is still a fine score.
"""

from __future__ import annotations

from collections.abc import Sequence

from extender.capacity.model import PeerState
from extender.hints import DEFAULT, HintError, Hints, parse_hints
from extender.resources import CPU, MEMORY
from extender.scheduling.state import SchedulingState
from extender.wire.core import Pod
from extender.wire.extender import MAX_EXTENDER_PRIORITY, MIN_EXTENDER_PRIORITY, HostPriority

REAL_NODE_SCORE = 0
_COST_EPSILON = 0.01
"""Keeps ratios finite when a peer is free (cost 0)."""

_headroom_cache: dict[int, tuple[PeerState, int, int, float]] = {}
"""id(peer) -> (peer, generation, node count, headroom); holding the peer keeps its id from being reused."""


def headroom(peer: PeerState) -> float:
    """Free share (0-1) of the peer's schedulable CPU and memory, averaged."""
    cached = _headroom_cache.get(id(peer))
    if cached is not None and cached[0] is peer and cached[1] == peer.generation and cached[2] == len(peer.nodes):
        return cached[3]
    shares = []
    for resource in (CPU, MEMORY):
        total = free = 0
        for node in peer.nodes.values():
            if not node.schedulable:
                continue
            alloc = node.allocatable.get(resource, 0)
            total += alloc
            free += max(0, alloc - node.requested.get(resource, 0) - node.reserved.get(resource, 0))
        shares.append(free / total if total else 0.0)
    value = sum(shares) / len(shares)
    if len(_headroom_cache) > 1024:
        _headroom_cache.clear()
    _headroom_cache[id(peer)] = (peer, peer.generation, len(peer.nodes), value)
    return value


def _clamp(score: float) -> int:
    return max(MIN_EXTENDER_PRIORITY, min(MAX_EXTENDER_PRIORITY, round(score)))


def blended_score(peer: PeerState, cheapest: float, hints: Hints) -> int:
    cost_share = (cheapest + _COST_EPSILON) / (max(peer.cost, 0.0) + _COST_EPSILON)
    room = headroom(peer)
    if hints.prefer:
        top = max(hints.prefer.values()) or 1
        preference = hints.prefer.get(peer.name, 0) / top
        return _clamp(MAX_EXTENDER_PRIORITY * (0.4 * preference + 0.4 * cost_share + 0.2 * room))
    return _clamp(MAX_EXTENDER_PRIORITY * (0.7 * cost_share + 0.3 * room))


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
    cheapest = min(max(peer.cost, 0.0) for peer in peers.values())
    by_peer: dict[str, int] = {}
    for peer in peers.values():
        if peer.name not in by_peer:
            planned = state.plan_score(pod, peer)
            by_peer[peer.name] = _clamp(planned) if planned is not None else blended_score(peer, cheapest, hints)
    return [
        HostPriority(Host=name, Score=by_peer[peer.name] if (peer := peers.get(name)) else REAL_NODE_SCORE)
        for name in node_names
    ]
