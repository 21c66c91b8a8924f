"""The apiserver calls of a move home: the Eviction of a spilled pod, which its
PodDisruptionBudget decides (a 429 is the budget saying no, in its own words), and reading a bare
pod to create it again at home."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from extender.kube.api import PODS, Api
from extender.kube.raw import ApiError
from extender.wire.core import Pod

log = logging.getLogger("spillover.repatriation")


def eviction(pod: Pod) -> dict[str, Any]:
    """A policy/v1 Eviction of this very pod (the UID precondition: never its successor)."""
    meta = pod.metadata
    return {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": meta.name, "namespace": meta.namespace},
        "deleteOptions": {"preconditions": {"uid": meta.uid}},
    }


async def evict(home: Api, pod: Pod, dry_run: bool = False) -> str | None:
    """None when evicted (or would be); the budget's refusal; "" when the pod is gone."""
    meta = pod.metadata
    query = [("dryRun", "All")] if dry_run else []
    try:
        await home.request("POST", PODS.item(meta.name, meta.namespace, "eviction"), eviction(pod), query)
    except ApiError as exc:
        if exc.status == 429:
            return _causes(exc.body) or exc.message
        if exc.status in (404, 409):
            return ""
        log.warning("eviction of %s/%s failed: %s", meta.namespace, meta.name, exc)
        return ""
    return None


async def read_bare_pod(home: Api, pod: Pod) -> dict[str, Any] | None:
    """The pod as stored (to create it again at home once it is gone); None when it cannot be read
    or is not that pod any more."""
    meta = pod.metadata
    try:
        raw: dict[str, Any] = msgspec.json.decode(await home.get(PODS.item(meta.name, meta.namespace)))
    except (ApiError, msgspec.DecodeError, OSError) as exc:
        log.warning("cannot read %s/%s to create it again at home: %s", meta.namespace, meta.name, exc)
        return None
    if (raw.get("metadata") or {}).get("uid") != pod.metadata.uid:
        return None
    return raw


class _Details(msgspec.Struct):
    causes: list[dict[str, Any]] = msgspec.field(default_factory=list)


class _Status(msgspec.Struct):
    message: str = ""
    details: _Details | None = None


def _causes(body: bytes) -> str:
    """The budget's own words from a 429 (``The disruption budget web needs 5 healthy pods and
    has 5 currently``), after the apiserver's message."""
    try:
        status = msgspec.json.decode(body, type=_Status)
    except msgspec.DecodeError:
        return ""
    causes = [str(c.get("message", "")) for c in (status.details.causes if status.details else []) if c.get("message")]
    return "; ".join([status.message, *causes]) if status.message else "; ".join(causes)
