"""What Spillover needs in a peer, asked of the peer itself before it is joined.

The same list as `manifests/peer`'s ClusterRole (a unit test keeps them together): a peer joined
with less would fail later, pod by pod, at bind time, far from the cause.
"""

from __future__ import annotations

import asyncio

import msgspec

from extender.kube.api import SELF_SUBJECT_ACCESS_REVIEWS, Api

NEEDED: tuple[tuple[str, str], ...] = (
    ("nodes", "list"),
    ("nodes", "watch"),
    ("pods", "get"),
    ("pods", "list"),
    ("pods", "watch"),
    ("pods", "create"),
    ("pods", "patch"),
    ("pods", "delete"),
    ("pods/log", "get"),  # `kubectl logs` on a spilled pod reads its delegate's log
    ("namespaces", "get"),
    ("namespaces", "create"),
    ("namespaces", "patch"),
    *((kind, verb) for kind in ("configmaps", "secrets") for verb in ("get", "list", "create", "patch", "delete")),
)
"""(resource[/subresource], verb) in the core API group, cluster-wide."""


class _Allowed(msgspec.Struct):
    allowed: bool = False


class _Review(msgspec.Struct):
    status: _Allowed = msgspec.field(default_factory=_Allowed)


async def missing(peer: Api) -> list[str]:
    """Each permission the peer's identity lacks, as "verb resource" (SelfSubjectAccessReviews,
    which every authenticated identity may create)."""

    async def allowed(resource: str, verb: str) -> bool:
        name, _, subresource = resource.partition("/")
        attributes = {"group": "", "resource": name, "verb": verb}
        if subresource:
            attributes["subresource"] = subresource
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        answer = await peer.request("POST", SELF_SUBJECT_ACCESS_REVIEWS.collection(), body)
        return msgspec.json.decode(answer, type=_Review).status.allowed

    results = await asyncio.gather(*(allowed(resource, verb) for resource, verb in NEEDED))
    return [f"{verb} {resource}" for (resource, verb), ok in zip(NEEDED, results, strict=True) if not ok]
