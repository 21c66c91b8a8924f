"""Pods on their way home: evicted from a peer, not yet replaced at home.

A move starts with the eviction of the proxy (the delegate goes with it, as with any deleted
proxy) and ends when the proxy is gone and a new pod of the same workload, created after the
eviction, runs on a home node: that pod is the one that came home (told when it is bound). A new pod of the
workload bound to a virtual node instead spilled again (home's room was gone): ping-pong. While
a move lasts, its room at home stays held (``HomeCapacity.hold``), so it is not promised twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from extender.hints import WRITTEN_BY_SPILLOVER
from extender.kube.times import parse_rfc3339
from extender.labels import DELETION_COST
from extender.resources import Resources
from extender.wire.core import Pod

CREATED_SLACK = 2.0
"""Seconds of clock difference allowed between Spillover and the apiserver when telling a pod
made after an eviction from one made before it."""


@dataclass(slots=True)
class Move:
    uid: str
    namespace: str
    name: str
    workload: str
    """What the new pod is recognised by (``planner.types.workload_of``: its controller, or a bare
    pod by name, which one recreated at home keeps)."""
    unit: str
    """What moves together and is counted against the in-flight limit: the workload, or the gang."""
    peer: str
    price: float
    """Its price per hour in the peer: what coming home saves."""
    node: str
    """The home node that had room for it (its room is held there)."""
    requests: Resources
    started: float
    """clock() at the eviction."""
    started_wall: float
    """time.time() at the eviction, to compare with creation timestamps."""
    recreate: dict[str, Any] | None = None
    """The bare pod as it was, for Spillover to create again once it is gone."""
    recreated: bool = False
    gone: bool = False
    replacement: str = ""
    """UID of the pod that took its place (at home, or spilled again)."""
    home_node: str = ""
    arrived: bool = False
    """Its replacement runs (at home), or spilled again: either way this move is over once the
    old pod is gone, and the workload's next pod may move."""

    @property
    def done(self) -> bool:
        return self.gone and self.arrived


def created_at(pod: Pod) -> float | None:
    """The pod's creation time (seconds since the epoch), None when unknown."""
    when = parse_rfc3339(pod.metadata.creation_timestamp)
    return when.timestamp() if when is not None else None


def made_after(pod: Pod, move: Move) -> bool:
    created = created_at(pod)
    return created is not None and created >= move.started_wall - CREATED_SLACK


def age(pod: Pod, now_wall: float) -> float:
    created = created_at(pod)
    return now_wall - created if created is not None else 0.0


def recreated_pod(raw: dict[str, Any]) -> dict[str, Any]:
    """A bare pod to create again at home: its name, labels, annotations (less what Spillover
    wrote when it spilled) and spec (less the node it was bound to); a new UID and status."""
    meta = raw.get("metadata") or {}
    annotations = {
        key: value
        for key, value in (meta.get("annotations") or {}).items()
        if key not in WRITTEN_BY_SPILLOVER and key != DELETION_COST
    }
    spec = dict(raw.get("spec") or {})
    spec.pop("nodeName", None)
    metadata: dict[str, Any] = {"name": meta.get("name", ""), "namespace": meta.get("namespace", "")}
    if meta.get("labels"):
        metadata["labels"] = dict(meta["labels"])
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def seconds_text(seconds: float) -> str:
    """90 -> 1m30s, 300 -> 5m, 7200 -> 2h."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text
