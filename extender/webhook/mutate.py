"""What the webhook does to a pod at CREATE: validate its hints, then make it spillable.

Spillable means two things. The toleration lets the scheduler consider virtual nodes at all.
The ``spillover.io/spillable: 1`` extended resource on the first container is what the
scheduler's ``managedResources`` keys on, so only these pods are sent to the extender; kubelets
ignore it (``ignoredByScheduler``) and the delegate in the peer does not carry it.

``local-only`` pods get neither: they can then never be placed on a virtual node, whatever
happens later. Nor does a pod that names a scheduler other than the one consulting Spillover
(another scheduler would find no node with the marker resource, or bind it to a virtual node
behind Spillover's back): it is left as it is, with an annotation saying why. Every change is
conditional on its absence, so a reinvoked webhook (or a pod created already carrying them) yields
no operation, and nothing else in the pod is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from extender import labels
from extender.hints import HintError, Policy, parse_hints, unknown_keys
from extender.resources import SPILLABLE
from extender.webhook import responses
from extender.webhook.patches import Op, add, pointer
from extender.wire.admission import AdmissionRequest, AdmissionResponse
from extender.wire.core import Pod, ResourceRequirements, Toleration

MARKER_VALUE = "1"
DEFAULT_SCHEDULER = "default-scheduler"
VIRTUAL_TOLERATION: dict[str, Any] = {"key": labels.VIRTUAL, "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    scheduler_name: str | None = None
    """The scheduler that consults Spillover when it is not the cluster's default (the
    own-scheduler install): opted-in pods that asked for the default scheduler are given it."""

    @property
    def spillover_scheduler(self) -> str:
        return self.scheduler_name or DEFAULT_SCHEDULER


class BadReview(ValueError):
    """The AdmissionReview cannot be acted on (the object is not a readable Pod)."""


def _has_virtual_toleration(tolerations: list[Toleration] | None) -> bool:
    return any(
        t.key == labels.VIRTUAL and t.operator == "Exists" and t.effect == "NoSchedule" for t in tolerations or ()
    )


def _marker_ops(resources: ResourceRequirements | None) -> list[Op]:
    base = ("spec", "containers", 0, "resources")
    if resources is None:
        return [add(pointer(*base), {"requests": {SPILLABLE: MARKER_VALUE}, "limits": {SPILLABLE: MARKER_VALUE}})]
    ops = []
    for part, current in (("requests", resources.requests), ("limits", resources.limits)):
        if current is None:
            ops.append(add(pointer(*base, part), {SPILLABLE: MARKER_VALUE}))
        elif str(current.get(SPILLABLE)) != MARKER_VALUE:
            ops.append(add(pointer(*base, part, SPILLABLE), MARKER_VALUE))
    return ops


def pod_patch(pod: Pod, config: WebhookConfig) -> list[Op]:
    """The operations that make this pod spillable; raises HintError when its hints are invalid."""
    hints = parse_hints(pod.metadata.annotations)
    if hints.policy is Policy.LOCAL_ONLY or not pod.spec.containers:
        return []
    asked = pod.spec.scheduler_name or DEFAULT_SCHEDULER
    ours = config.spillover_scheduler
    if asked not in (ours, DEFAULT_SCHEDULER):
        return _skipped(
            pod,
            f"the pod names scheduler {asked!r}, which does not consult Spillover ({ours!r} does): "
            "it will not spill over",
        )
    ops: list[Op] = []
    tolerations = pod.spec.tolerations
    if tolerations is None:
        ops.append(add("/spec/tolerations", [VIRTUAL_TOLERATION]))
    elif not _has_virtual_toleration(tolerations):
        ops.append(add("/spec/tolerations/-", VIRTUAL_TOLERATION))
    ops.extend(_marker_ops(pod.spec.containers[0].resources))
    if asked != ours:
        ops.append(add("/spec/schedulerName", ours))
    return ops


def _skipped(pod: Pod, why: str) -> list[Op]:
    annotations = pod.metadata.annotations
    if annotations is None:
        return [add("/metadata/annotations", {labels.SKIPPED: why})]
    if annotations.get(labels.SKIPPED) == why:
        return []
    return [add(pointer("metadata", "annotations", labels.SKIPPED), why)]


def mutate(request: AdmissionRequest, config: WebhookConfig) -> AdmissionResponse:
    """Pods at CREATE are validated and patched; anything else is allowed untouched."""
    if not request.is_pod or request.operation != "CREATE":
        return responses.allowed(request.uid)
    try:
        pod = request.pod()
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadReview(f"request.object is not a readable Pod: {exc}") from exc
    try:
        ops = pod_patch(pod, config)
    except HintError as exc:
        return responses.denied(request.uid, str(exc), code=400)
    return responses.patched(request.uid, ops, unknown_keys(pod.metadata.annotations))
