"""Kubernetes Events: on proxy pods (where a pod was spilled and why, what its delegate did) and
on PeerClusters (the peer lost and back, detaching), for `kubectl describe`."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Protocol

from extender.kube.api import EVENTS, Api
from extender.kube.times import rfc3339

log = logging.getLogger("spillover.events")
COMPONENT = "spillover"


QUEUE = 2000
WRITERS = 4


class EventSink(Protocol):
    def record(self, ref: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        """Record an Event on the object ``ref`` names; never blocks or fails the caller."""


class EventRecorder:
    """Best effort, as client-go's event broadcaster: a bounded queue drained by a few writers.

    A burst of spills records two Events a pod; posted at once they crowded the home apiserver
    just when the Bindings and status writes that make pods run needed it. Queued, they trail
    behind by a moment; when the queue is full they are dropped (and counted in the log).
    """

    def __init__(self, home: Api) -> None:
        self.home = home
        self.instance = os.environ.get("POD_NAME") or os.uname().nodename
        self._queue: asyncio.Queue[tuple[dict[str, Any], str, str, bool]] = asyncio.Queue(QUEUE)
        self.dropped = 0

    def record(self, ref: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        """Never blocks or fails the action it reports."""
        try:
            self._queue.put_nowait((ref, reason, message, warning))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("event queue full: %s on %s/%s dropped", reason, ref.get("namespace"), ref.get("name"))

    async def run(self) -> None:
        await asyncio.gather(*(self._write() for _ in range(WRITERS)))

    async def _write(self) -> None:
        while True:
            ref, reason, message, warning = await self._queue.get()
            await self._post(ref, reason, message, warning)

    async def _post(self, ref: dict[str, Any], reason: str, message: str, warning: bool) -> None:
        """``ref`` is a reference: namespace, name, uid, and kind/apiVersion when not a Pod (an
        object without a namespace, such as a PeerCluster, gets its Events in ``default``)."""
        namespace = ref.get("namespace") or "default"
        now = rfc3339()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.get('name', 'pod')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": ref.get("apiVersion", "v1"),
                "kind": ref.get("kind", "Pod"),
                "namespace": ref.get("namespace", ""),
                "name": ref.get("name", ""),
                "uid": ref.get("uid", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.home.request("POST", EVENTS.collection(namespace), body)
        except Exception as exc:
            log.debug("event %s on %s/%s not recorded: %s", reason, namespace, ref.get("name"), exc)
