"""`spillover join` asks the peer what its identity may do, and names what is missing."""

from __future__ import annotations

from typing import Any

from extender.kube.api import SELF_SUBJECT_ACCESS_REVIEWS
from extender.peers.access import NEEDED, missing
from tests.unit.apiserver import FakeApiserver


def peer_allowing(allowed: set[tuple[str, str]]) -> FakeApiserver:
    """A peer apiserver answering SelfSubjectAccessReviews from a set of (resource, verb) allowed."""

    def review(body: Any) -> Any:
        attributes = body["spec"]["resourceAttributes"]
        resource = attributes["resource"] + (f"/{attributes['subresource']}" if "subresource" in attributes else "")
        return {"status": {"allowed": (resource, attributes["verb"]) in allowed}}

    peer = FakeApiserver()
    peer.answer("POST", SELF_SUBJECT_ACCESS_REVIEWS.collection(), review)
    return peer


async def test_every_needed_permission_is_asked_and_the_missing_ones_named() -> None:
    peer = peer_allowing({pair for pair in NEEDED if pair not in {("pods", "create"), ("secrets", "delete")}})
    assert await missing(peer) == ["create pods", "delete secrets"]
    assert len(peer.calls) == len(NEEDED)


async def test_an_identity_with_everything_lacks_nothing() -> None:
    assert await missing(peer_allowing(set(NEEDED))) == []
