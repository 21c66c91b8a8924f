"""What the extender verbs read: an interface, so the logic never knows about watches or HTTP.

The live implementation (fed by watches on home and every peer) lives in
``extender.live_state``; tests and benchmarks pass the in-memory one in ``extender.scheduling.memory``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from extender.capacity.model import PeerState
from extender.wire.core import Pod


class BindError(Exception):
    """Binding failed; the message goes back to kube-scheduler, which retries the pod."""


class BindRefused(BindError):
    """A bind to a peer that will fail again for this pod (the peer holds a namespace or an object
    of that name that is not Spillover's): remembered, so filter keeps the pod off that peer with
    this reason, without I/O, rather than sending it back to the same failure."""


class SchedulingState(Protocol):
    def peer_for_node(self, node_name: str) -> PeerState | None:
        """The peer behind a virtual node name, or None for a real (home) node."""

    def is_virtual_node_name(self, node_name: str) -> bool:
        """True for names of the virtual-node form even if no peer currently backs them."""

    def home_node_exists(self, node_name: str) -> bool:
        """Whether a real home node of that name is in the home node cache."""

    async def confirm_home_node(self, node_name: str) -> bool:
        """Whether a node the cache does not know (yet) exists in home, asked of the apiserver:
        kube-scheduler's watch can be a moment ahead of Spillover's when a node joins. Raises
        BindError when the apiserver cannot say."""

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        """Labels of a home namespace (empty when unknown)."""

    def namespace_opted_in(self, namespace: str) -> bool | None:
        """Whether the admin opted the home namespace in (label spillover.io/enabled=true); None
        when the namespace cache does not know it (not synced yet, or it is brand new)."""

    def avoided(self, pod: Pod, peer: PeerState) -> str | None:
        """Why this pod's workload must stay away from the peer for now (it was withdrawn from
        there), or None. Without it a withdrawn pod would be sent straight back (ping-pong)."""

    def note_refusal(self, pod: Pod, peer: PeerState, reason: str) -> None:
        """Filter found that the peer would refuse the pod (Pod Security): the planner is told,
        so it holds no room for the pod there."""

    def note_spill_candidate(self, pod: Pod) -> None:
        """The pod has no home node left (or prefers peers): the planner should place it."""

    def remember_pod(self, pod: Pod, body: bytes) -> None:
        """The pod filter decoded and its JSON as the scheduler sent it, for a bind to a peer
        moments later (saves reading it back from the apiserver, and decoding it again)."""

    def gang_peer(self, pod: Pod, gang: str) -> str | None:
        """The peer the plan holds room on for the pod's whole gang; None while it holds none."""

    def gang_reason(self, pod: Pod, gang: str) -> str | None:
        """Why the plan holds no peer for the pod's gang ("2 of 5 members pending"), if it knows."""

    def plan_score(self, pod: Pod, peer: PeerState) -> int | None:
        """The planner's 0-10 score for this pod's class on that peer, if a plan exists."""

    def budget_refusal(self, pod: Pod, peer: PeerState, requests: Mapping[str, int]) -> str | None:
        """Why the pod would take its namespace over its spend cap on that peer (None: it would
        not, or the namespace has no cap), counting the binds in flight."""

    async def bind(self, pod_namespace: str, pod_name: str, pod_uid: str, node_name: str) -> None:
        """Bind the pod (to a real node: a Binding; to a virtual node: delegate, then Binding)."""
