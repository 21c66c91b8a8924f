"""What is known of the peers now: PeerCluster specs, and each joined peer's client, watches and state.

The registry writes it as PeerClusters change; the binder, the planner, the status writer, the
detacher, the delegation controllers and the status page read it. Sharing this one object (rather
than the registry itself) is what lets each of them be built before the registry, with every
dependency given in its constructor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from extender.capacity.model import PeerState
from extender.capacity.tracker import PeerTracker
from extender.kube.api import Client
from extender.kube.reflector import Reflector
from extender.peers.model import FINALIZER, PeerCluster
from extender.wire.core import PeerNode, PeerPod

DEFAULT_GRACE_PERIOD = 60.0


@dataclass
class PeerRuntime:
    state: PeerState
    raw: Client
    tracker: PeerTracker
    kubeconfig_hash: str
    node_reflector: Reflector[PeerNode]
    pod_reflector: Reflector[PeerPod]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    last_seen: str = ""
    told_unreachable: bool = False
    """A PeerUnreachable Event was recorded and no PeerReachable since."""
    peer_reflectors: list[Reflector[Any]] = field(default_factory=list)
    """Other watches on this peer (delegation's), woken with ours when the peer is back."""

    def reflectors(self) -> list[Reflector[Any]]:
        return [self.node_reflector, self.pod_reflector, *self.peer_reflectors]


class PeerDirectory:
    def __init__(self) -> None:
        self.specs: dict[str, PeerCluster] = {}
        """Every PeerCluster, by name, as last seen."""
        self.peers: dict[str, PeerRuntime] = {}
        """The peers joined now (a usable kubeconfig), by name."""
        self.by_virtual_node: dict[str, PeerState] = {}
        self.unusable: dict[str, str] = {}
        """Peers whose kubeconfig Secret cannot be read or used, and why."""

    def states(self) -> list[PeerState]:
        return [runtime.state for runtime in self.peers.values()]

    def peer_of_node(self, node_name: str) -> str | None:
        """The peer behind a virtual node name (None for a home node)."""
        state = self.by_virtual_node.get(node_name)
        return state.name if state is not None else None

    def grace_period(self, name: str) -> float:
        """Seconds a peer may be unreachable before its controller-owned pods are recreated elsewhere."""
        pc = self.specs.get(name)
        return float(pc.spec.grace_period_seconds) if pc is not None else DEFAULT_GRACE_PERIOD

    def repatriate_after(self, name: str) -> float | None:
        """The peer's PeerCluster spec.repatriateAfterSeconds, if set."""
        pc = self.specs.get(name)
        seconds = pc.spec.repatriate_after_seconds if pc is not None else None
        return float(seconds) if seconds is not None else None

    def deleting(self) -> list[str]:
        """PeerClusters deleted but held by Spillover's finalizer: their peers are to be detached."""
        return [
            name
            for name, pc in self.specs.items()
            if pc.metadata.deletion_timestamp is not None and FINALIZER in (pc.metadata.finalizers or ())
        ]

    def capacity_changed(self, names: Iterable[str]) -> None:
        """Have these peers' virtual nodes rewritten: kube-scheduler re-queues the pods it could
        not place on any node update, so pods waiting for them (gang members) are retried at once."""
        for name in names:
            runtime = self.peers.get(name)
            if runtime is not None:
                runtime.tracker.changed()
