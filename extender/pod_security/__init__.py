"""The Pod Security Standards, checked the way a peer's kube-apiserver checks them.

A PeerCluster declares the level the peer accepts (``spec.podSecurity``: privileged, baseline or
restricted). Spillover writes it as the ``pod-security.kubernetes.io/enforce`` label on the
namespaces it creates there, so the peer's own apiserver (its PodSecurity admission) refuses
what that level forbids: that is the control. These checks are the forecast: ``filter`` keeps at
home, with the reasons the peer would give, a pod the level would refuse, instead of sending it
to a bind the peer then refuses.

Every check is a transcription of k8s.io/pod-security-admission/policy at v0.36.2 (the staging
module of Kubernetes v1.36.2, `staging/src/k8s.io/pod-security-admission/policy/`), at the
newest version of each check (the enforce label carries no version: "latest"). Each function
names the file and Go function it follows. Reasons and details are worded as PodSecurity words
them, and run in its order (registry.go ``populate``: check IDs sorted, baseline before
restricted), so a message here reads like the apiserver's refusal. Restricted is every
baseline check but the four it overrides (``OverrideCheckIDs``) plus its own seven.

The pod is decoded into a model of its own (only the fields these checks read), from the JSON
the scheduler sent, and only when a peer's level is not privileged: the partial Pod model the
watches and the other verbs decode stays small.

Layout: ``model`` (levels, namespace labels, the fields read), ``walk`` (helpers.go and
visitor.go), ``baseline`` and ``restricted`` (the checks); here, the checks of each level run in
order and worded.
"""

from __future__ import annotations

from collections.abc import Sequence

from extender.pod_security.baseline import BASELINE
from extender.pod_security.model import (
    DEFAULT_LEVEL,
    ENFORCE_LABEL,
    MODE_LABELS,
    Level,
    SecurityPod,
    from_dict,
    from_json,
    namespace_labels,
)
from extender.pod_security.restricted import OVERRIDDEN, RESTRICTED_ONLY
from extender.pod_security.walk import Check, Violation, containers

__all__ = [
    "DEFAULT_LEVEL",
    "ENFORCE_LABEL",
    "MODE_LABELS",
    "Level",
    "SecurityPod",
    "Violation",
    "describe",
    "from_dict",
    "from_json",
    "namespace_labels",
    "refusal",
    "refusal_text",
    "violations",
]

CHECKS: dict[Level, tuple[Check, ...]] = {
    Level.PRIVILEGED: (),
    Level.BASELINE: tuple(check for _, check in BASELINE),
    Level.RESTRICTED: tuple(check for name, check in BASELINE if name not in OVERRIDDEN)
    + tuple(check for _, check in RESTRICTED_ONLY),
}


def violations(pod: SecurityPod, level: Level) -> list[Violation]:
    """Every check of ``level`` the pod fails, in PodSecurity's order (empty: it is admitted)."""
    found = []
    visited = tuple(containers(pod.spec))
    for check in CHECKS[level]:
        violation = check(pod, visited)
        if violation is not None:
            found.append(violation)
    return found


def describe(found: Sequence[Violation]) -> str:
    """checks.go AggregateCheckResult.ForbiddenDetail: "reason (detail), reason (detail)"."""
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in found)


def refusal_text(peer: str, level: Level, findings: str) -> str:
    return (
        f'peer {peer} enforces Pod Security "{level}" (PeerCluster spec.podSecurity) and would refuse the pod: '
        f"{findings}"
    )


def refusal(pod: SecurityPod, level: Level, peer: str) -> str | None:
    """Why ``peer``'s apiserver, enforcing ``level``, would refuse the pod (None: it would not)."""
    found = violations(pod, level)
    return refusal_text(peer, level, describe(found)) if found else None
