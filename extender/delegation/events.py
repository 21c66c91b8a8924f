"""Kubernetes Events on proxy pods: where a pod was spilled and why, and what its delegate did."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from typing import Any

from extender.kube.raw import RawClient

log = logging.getLogger("spillover.events")
COMPONENT = "spillover"


class EventRecorder:
    def __init__(self, home: RawClient) -> None:
        self.home = home
        self.instance = os.environ.get("POD_NAME") or os.uname().nodename
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, pod: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        """Fire and forget: an Event must never slow down or fail the action it reports."""
        task = asyncio.ensure_future(self._post(pod, reason, message, warning))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, pod: dict[str, Any], reason: str, message: str, warning: bool) -> None:
        namespace = pod.get("namespace", "default")
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{pod.get('name', 'pod')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": namespace,
                "name": pod.get("name", ""),
                "uid": pod.get("uid", ""),
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
            await self.home.request("POST", f"/api/v1/namespaces/{namespace}/events", body)
        except Exception as exc:
            log.debug("event %s on %s/%s not recorded: %s", reason, namespace, pod.get("name"), exc)
