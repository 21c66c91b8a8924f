"""Peers a workload was withdrawn from recently, kept away from for a while.

A delegate that stays unschedulable in its peer is withdrawn and its pod recreated; without this
list the recreated pod would be sent straight back (ping-pong). Filter, bind and the planner's
veto all ask it.
"""

from __future__ import annotations

from cachetools import TTLCache

from extender.wire.core import Pod

MAX_ENTRIES = 100_000


class AvoidList:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._reasons: TTLCache[tuple[str, str], str] = TTLCache(maxsize=MAX_ENTRIES, ttl=seconds)
        """(owner uid, peer) -> reason."""

    def avoid(self, owner_uid: str, peer: str, reason: str) -> None:
        self._reasons[(owner_uid, peer)] = reason

    def avoided(self, pod: Pod, peer: str) -> str | None:
        """Why this pod's workload must not go to ``peer`` now (withdrawn from it recently)."""
        for ref in pod.metadata.owner_references or ():
            reason = self._reasons.get((ref.uid, peer))
            if reason:
                return reason
        return None
