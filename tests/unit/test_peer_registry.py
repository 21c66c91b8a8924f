"""The peer registry: a deleted PeerCluster leaves no healthy-looking peer behind."""

from __future__ import annotations

from typing import Any

from extender.capacity.tracker import Reservations
from extender.peers.registry import PeerRegistry
from tests.unit.fakes import peer


class Closable:
    async def close(self) -> None:
        pass


class FakeVirtualNodes:
    def __init__(self) -> None:
        self.removed: list[str] = []

    async def remove(self, name: str) -> None:
        self.removed.append(name)


async def test_a_deleted_peer_is_dropped_from_what_filter_the_planner_and_the_status_page_see() -> None:
    reservations = Reservations()
    virtual_nodes = FakeVirtualNodes()
    registry = PeerRegistry(home=None, virtual_nodes=virtual_nodes, reservations=reservations)  # type: ignore[arg-type]
    east = peer("east")
    runtime: Any = type("Runtime", (), {"state": east, "tasks": [], "raw": Closable(), "api": Closable()})()
    registry.peers["east"] = runtime
    registry.by_virtual_node[east.virtual_node] = east
    reservations.peers["east"] = east

    await registry._remove("east")

    assert "east" not in registry.peers and east.virtual_node not in registry.by_virtual_node
    assert "east" not in reservations.peers and not east.healthy
    assert virtual_nodes.removed == ["east"]
