"""Equivalence classes: pending pods that are interchangeable for the planner.

Pods with the same requests, placement constraints, hints, weight, workload and gang are placed
the same way, so the solvers work on (class, count) instead of pods: a 5,000-pod backlog of a few
Deployments is a few dozen classes, which is what keeps the flow network and the CP-SAT model
small. The key is also how ``prioritize`` finds a live pod's row in the plan.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import msgspec
from cachetools import LRUCache

from extender.hints import HintError, Hints
from extender.planner.types import PendingPod
from extender.wire.core import Pod

ClassKey = tuple[Hashable, ...]

_encoder = msgspec.json.Encoder(order="sorted")


def constraint_signature(pod: Pod) -> bytes:
    """The parts of a pod that decide which nodes it may use, in one comparable value."""
    spec = pod.spec
    if spec.node_selector is None and spec.affinity is None and not spec.tolerations:
        return b""
    return _encoder.encode((spec.node_selector, spec.affinity, spec.tolerations))


def hints_signature(hints: Hints) -> tuple[Hashable, ...]:
    return (
        hints.policy.value,
        hints.clusters,
        hints.avoid_clusters,
        tuple(sorted(hints.prefer.items())),
        hints.max_cost,
        hints.gang,
        hints.gang_size,
    )


def class_key(pending: PendingPod) -> ClassKey:
    return (
        pending.pod.metadata.namespace,
        tuple(sorted(pending.requests.items())),
        constraint_signature(pending.pod),
        hints_signature(pending.hints),
        pending.weight,
        pending.workload,
    )


_live_keys: LRUCache[str, ClassKey] = LRUCache(maxsize=65536)


def class_key_of_pod(pod: Pod) -> ClassKey | None:
    """The class key of a live pod, cached by UID (a pod's spec and annotations do not change while
    it is pending); None when its hints do not parse."""
    uid = pod.metadata.uid
    if uid and (key := _live_keys.get(uid)) is not None:
        return key
    try:
        key = class_key(PendingPod.from_pod(pod))
    except HintError:
        return None
    if uid:
        _live_keys[uid] = key
    return key


@dataclass(slots=True)
class PodClass:
    key: ClassKey
    example: PendingPod
    members: list[str] = field(default_factory=list)
    """Pod names, in input order."""

    @property
    def count(self) -> int:
        return len(self.members)

    @property
    def gang(self) -> tuple[str, str] | None:
        hints = self.example.hints
        if hints.gang is None:
            return None
        return (self.example.pod.metadata.namespace, hints.gang)


def group(pods: Iterable[PendingPod]) -> tuple[list[PodClass], list[int]]:
    """Classes in order of their first member (so equal inputs give equal plans), and the class
    index of every pod in input order."""
    classes: dict[ClassKey, int] = {}
    out: list[PodClass] = []
    index: list[int] = []
    for pending in pods:
        key = class_key(pending)
        c = classes.get(key)
        if c is None:
            c = classes[key] = len(out)
            out.append(PodClass(key, pending))
        out[c].members.append(pending.name)
        index.append(c)
    return out, index


def gangs_of(classes: Sequence[PodClass]) -> dict[tuple[str, str], list[int]]:
    """Gang (namespace, name) -> indices of its classes."""
    out: dict[tuple[str, str], list[int]] = {}
    for index, cls in enumerate(classes):
        if (gang := cls.gang) is not None:
            out.setdefault(gang, []).append(index)
    return out
