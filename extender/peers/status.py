"""PeerCluster status: Ready and Reachable with their reasons, capacity, last seen, scale-up advice.

Written every few seconds for every peer, and at once when a peer's caches first sync or its
kubeconfig cannot be used, so `kubectl get peerclusters` tells the truth soon.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from extender.capacity.model import PeerState
from extender.kube.api import Api, PatchType
from extender.kube.times import rfc3339
from extender.peers.directory import PeerDirectory, PeerRuntime
from extender.peers.model import PEERCLUSTERS, Condition

log = logging.getLogger("spillover.peers")
STATUS_EVERY = 10.0


class PeerStatusWriter:
    def __init__(
        self,
        home: Api,
        directory: PeerDirectory,
        detach_progress: Mapping[str, str],
        advice_for: Callable[[str], list[dict[str, Any]]],
    ) -> None:
        self.home = home
        self.directory = directory
        self.detach_progress = detach_progress
        """What the detacher still waits for before a deleted PeerCluster can go, by peer."""
        self.advice_for = advice_for
        """Scale-up advice per peer from the planner."""

    async def run(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY)
            for name in list(self.directory.specs):
                runtime = self.directory.peers.get(name)
                if runtime is None:
                    continue
                try:
                    await self.write(name, runtime, runtime.state.health_reason())
                except Exception as exc:
                    log.debug("status of PeerCluster %s not written: %s", name, exc)

    async def write(self, name: str, runtime: PeerRuntime | None, message: str) -> None:
        now = rfc3339()
        status: dict[str, Any] = {}
        if runtime is None:
            status["conditions"] = [
                _condition("Ready", False, "KubeconfigInvalid", message, now),
                _condition("Reachable", False, "KubeconfigInvalid", message, now),
            ]
        else:
            state = runtime.state
            free = state.free_total()
            status = {
                "conditions": [
                    _condition(
                        "Ready",
                        state.healthy,
                        "PeerReady" if state.healthy else "Detaching" if state.detaching else "PeerNotReady",
                        ready_message(state, self.detach_progress.get(name, ""), message),
                        now,
                    ),
                    _condition(
                        "Reachable",
                        state.reachable,
                        "Reachable" if state.reachable else "Unreachable",
                        state.unreachable_reason if not state.reachable else "apiserver answers",
                        now,
                    ),
                ],
                "capacity": {
                    "nodes": len(state.nodes),
                    "schedulableNodes": sum(1 for n in state.nodes.values() if n.schedulable),
                    "free": {
                        "cpu": f"{free.get('cpu', 0)}m",
                        "memory": f"{free.get('memory', 0) // 2**20}Mi",
                        "pods": free.get("pods", 0),
                    },
                },
                "virtualNode": state.virtual_node,
            }
            if runtime.last_seen:
                status["lastSeen"] = runtime.last_seen
            status["scaleUpAdvice"] = self.advice_for(name)
        path = PEERCLUSTERS.item(name, subresource="status")
        await self.home.request("PATCH", path, {"status": status}, content_type=PatchType.MERGE)


def ready_message(state: PeerState, progress: str, message: str) -> str:
    """The Ready condition's message: what is true of the peer now. "placing pods here" only
    while it is healthy; otherwise the detach's progress, the caller's reason or the peer's own."""
    if state.healthy:
        return "placing pods here"
    return progress or message or state.health_reason() or "not placing pods here"


def _condition(kind: str, ok: bool, reason: str, message: str, now: str) -> Condition:
    return Condition(kind, "True" if ok else "False", reason, message, now)
