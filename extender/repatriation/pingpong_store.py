"""The ping-pong memory kept in a ConfigMap, so the next leader knows the strikes this one counted.

Repatriation runs on the leader only. Without this, a failover forgot every hold: a workload
that had ping-ponged was brought home at once by the next leader, and evicted from its peer for
nothing again. The ConfigMap (``spillover-repatriation`` in Spillover's namespace, written at
most once a pass and only when something changed) is read when a replica takes the lead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from extender import labels
from extender.kube.api import CONFIGMAPS, Api, PatchType
from extender.kube.raw import ApiError
from extender.repatriation.pingpong import PingPong

log = logging.getLogger("spillover.repatriation")

NAME = "spillover-repatriation"
KEY = "ping-pong.json"


class PingPongStore:
    def __init__(self, home: Api, namespace: str) -> None:
        self.home = home
        self.namespace = namespace
        self._saved: int | None = None
        """``PingPong.changes`` as last written (None: nothing written by this process yet)."""

    async def load(self, memory: PingPong, now: float, wall: float) -> None:
        """Take in what the last leader wrote; a missing or unreadable ConfigMap leaves the
        memory as it is (the cost: one more trip home for a workload that ping-ponged)."""
        try:
            raw = await self.home.get(CONFIGMAPS.item(NAME, self.namespace))
        except ApiError as exc:
            if exc.status != 404:
                log.warning("ping-pong memory not read (ConfigMap %s/%s): %s", self.namespace, NAME, exc)
            return
        except OSError as exc:
            log.warning("ping-pong memory not read (ConfigMap %s/%s): %s", self.namespace, NAME, exc)
            return
        try:
            exported = json.loads(json.loads(raw).get("data", {}).get(KEY) or "{}")
            if not isinstance(exported, dict):
                raise ValueError(f"{KEY} holds a {type(exported).__name__}, not an object")
        except ValueError as exc:
            log.warning("ping-pong memory in ConfigMap %s/%s unreadable, started afresh: %s", self.namespace, NAME, exc)
            return
        taken = memory.restore(exported, now, wall)
        self._saved = memory.changes
        if taken:
            log.info("ping-pong memory of %d workload(s) taken over from the last leader", taken)

    async def save(self, memory: PingPong, now: float, wall: float) -> None:
        """Write the memory if it changed since the last write; a failure is retried next pass."""
        changes = memory.changes
        if changes == self._saved:
            return
        data = {KEY: json.dumps(memory.export(now, wall), sort_keys=True)}
        try:
            try:
                await self.home.request(
                    "PATCH", CONFIGMAPS.item(NAME, self.namespace), {"data": data}, content_type=PatchType.MERGE
                )
            except ApiError as exc:
                if exc.status != 404:
                    raise
                await self.home.request("POST", CONFIGMAPS.collection(self.namespace), self._body(data))
        except (ApiError, OSError) as exc:
            log.warning("ping-pong memory not written (ConfigMap %s/%s), retried: %s", self.namespace, NAME, exc)
            return
        self._saved = changes

    def _body(self, data: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": NAME,
                "namespace": self.namespace,
                "labels": {labels.MANAGED_BY: labels.MANAGED_BY_VALUE},
            },
            "data": data,
        }
