"""`spillover join` asks the peer what its identity may do, and names what is missing."""

from __future__ import annotations

from typing import Any

import msgspec

from extender.peers.access import NEEDED, missing


class Peer:
    """A peer apiserver answering SelfSubjectAccessReviews from a set of (resource, verb) allowed."""

    def __init__(self, allowed: set[tuple[str, str]]) -> None:
        self.allowed = allowed
        self.asked = 0

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> bytes:
        self.asked += 1
        attributes = body["spec"]["resourceAttributes"]
        resource = attributes["resource"] + (f"/{attributes['subresource']}" if "subresource" in attributes else "")
        ok = (resource, attributes["verb"]) in self.allowed
        return msgspec.json.encode({"status": {"allowed": ok}})


async def test_every_needed_permission_is_asked_and_the_missing_ones_named() -> None:
    peer = Peer({pair for pair in NEEDED if pair not in {("pods", "create"), ("secrets", "delete")}})
    assert await missing(peer) == ["create pods", "delete secrets"]  # type: ignore[arg-type]
    assert peer.asked == len(NEEDED)


async def test_an_identity_with_everything_lacks_nothing() -> None:
    assert await missing(Peer(set(NEEDED))) == []  # type: ignore[arg-type]
