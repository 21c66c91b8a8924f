"""The peer registry: a deleted PeerCluster leaves no healthy-looking peer behind."""

from __future__ import annotations

from typing import Any

from extender.capacity.tracker import Reservations
from extender.peers.directory import PeerDirectory
from extender.peers.registry import PeerRegistry
from extender.peers.status import PeerStatusWriter
from tests.unit.fakes import peer


class Closable:
    async def close(self) -> None:
        pass


class FakeVirtualNodes:
    def __init__(self) -> None:
        self.removed: list[str] = []

    async def remove(self, name: str) -> None:
        self.removed.append(name)


class Told:
    """Records the Events the registry tells."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str, bool]] = []

    def record(self, ref: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        self.told.append((ref["kind"], reason, warning))


def registry_for(
    virtual_nodes: FakeVirtualNodes, reservations: Reservations | None = None, told: Told | None = None
) -> PeerRegistry:
    directory = PeerDirectory()
    status = PeerStatusWriter(None, directory, {}, lambda name: [])  # type: ignore[arg-type]
    return PeerRegistry(
        None,  # type: ignore[arg-type]
        directory,
        virtual_nodes,  # type: ignore[arg-type]
        Reservations() if reservations is None else reservations,
        status,
        Told() if told is None else told,
    )


async def test_a_deleted_peer_is_dropped_from_what_filter_the_planner_and_the_status_page_see() -> None:
    reservations = Reservations()
    virtual_nodes = FakeVirtualNodes()
    registry = registry_for(virtual_nodes, reservations)
    east = peer("east")
    runtime: Any = type("Runtime", (), {"state": east, "tasks": [], "raw": Closable(), "api": Closable()})()
    registry.directory.peers["east"] = runtime
    registry.directory.by_virtual_node[east.virtual_node] = east
    reservations.peers["east"] = east

    await registry._remove("east")

    assert "east" not in registry.directory.peers and east.virtual_node not in registry.directory.by_virtual_node
    assert "east" not in reservations.peers and not east.healthy
    assert virtual_nodes.removed == ["east"]


class FlakyPeer:
    """A peer apiserver that refuses ``down`` probes, then answers."""

    def __init__(self, down: int) -> None:
        self.down = down

    async def request(self, *args: Any, **kwargs: Any) -> bytes:
        if self.down > 0:
            self.down -= 1
            raise ConnectionRefusedError("connection refused")
        return b"ok"


async def test_a_peer_lost_and_back_is_told_once_each_way_on_its_peercluster(monkeypatch: Any) -> None:
    import asyncio

    import msgspec

    from extender.peers import registry as registry_module
    from extender.peers.model import PeerCluster

    monkeypatch.setattr(registry_module, "PROBE_EVERY", 0.001)
    events = Told()
    registry = registry_for(FakeVirtualNodes(), told=events)
    told = events.told
    registry.directory.specs["east"] = msgspec.convert({"metadata": {"name": "east", "uid": "pc-1"}}, PeerCluster)
    east = peer("east")
    tracker: Any = type("Tracker", (), {"changed": lambda self: None})()
    runtime: Any = type(
        "Runtime",
        (),
        {"state": east, "raw": FlakyPeer(down=3), "tracker": tracker, "told_unreachable": False, "last_seen": ""},
    )()
    runtime.reflectors = lambda: []
    probe = asyncio.create_task(registry._probe(runtime))
    try:
        for _ in range(500):
            if len(told) == 2:
                break
            await asyncio.sleep(0.002)
    finally:
        probe.cancel()
    assert told == [("PeerCluster", "PeerUnreachable", True), ("PeerCluster", "PeerReachable", False)]


async def test_a_deleted_peercluster_is_told_detaching_once() -> None:
    import msgspec

    from extender.peers.model import PeerCluster

    events = Told()
    registry = registry_for(FakeVirtualNodes(), told=events)
    registry._pending.accepting = False  # no reconcile here
    meta = {"name": "east", "uid": "pc-1", "deletionTimestamp": "2026-11-26T12:00:00Z"}
    for _ in range(3):  # the MODIFIED events of the detach
        registry.upsert(msgspec.convert({"metadata": meta}, PeerCluster))
    assert [reason for _, reason, _ in events.told] == ["Detaching"]


class RecordingHome:
    """The home apiserver: serves the kubeconfig Secret, records every write."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str, Any]] = []

    async def get(self, path: str, query: Any = None) -> bytes:
        import base64

        import msgspec

        return msgspec.json.encode({"data": {"kubeconfig": base64.b64encode(b"kc").decode()}})

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> bytes:
        self.writes.append((method, path, body))
        return b"{}"


async def test_pausing_a_peer_tells_its_peercluster_at_once_and_never_says_placing_pods_here() -> None:
    """Right after a pause, `kubectl get peerclusters` and `spillover status` said "placing pods
    here" until the next periodic status write."""
    import hashlib

    import msgspec

    from extender.peers.model import PeerCluster
    from extender.peers.status import ready_message

    home = RecordingHome()
    virtual_nodes: Any = FakeVirtualNodes()
    virtual_nodes.touch = lambda state: None
    directory = PeerDirectory()
    status = PeerStatusWriter(home, directory, {}, lambda name: [])  # type: ignore[arg-type]
    registry = PeerRegistry(home, directory, virtual_nodes, Reservations(), status, Told())  # type: ignore[arg-type]
    east = peer("east")
    assert east.healthy
    runtime: Any = type("Runtime", (), {"state": east, "kubeconfig_hash": hashlib.sha256(b"kc").hexdigest()})()
    runtime.last_seen = ""
    directory.peers["east"] = runtime
    spec = {"kubeconfigSecretRef": {"name": "peer-east-kubeconfig"}, "paused": True}
    meta = {"name": "east", "uid": "pc-1", "finalizers": ["spillover.io/detach"]}
    directory.specs["east"] = msgspec.convert({"metadata": meta, "spec": spec}, PeerCluster)

    await registry._reconcile("east")

    status_writes = [body for method, path, body in home.writes if path.endswith("/east/status")]
    assert len(status_writes) == 1
    ready = status_writes[0]["status"]["conditions"][0]
    assert ready["type"] == "Ready" and ready["status"] == "False"
    assert ready["message"] == "peer east is paused (PeerCluster spec.paused)"

    await registry._reconcile("east")  # nothing changed: no second write
    assert len([w for w in home.writes if w[1].endswith("/east/status")]) == 1

    assert ready_message(east, "", "") == "peer east is paused (PeerCluster spec.paused)"
    east.paused = False
    assert ready_message(east, "", "") == "placing pods here"
    east.detaching = "its PeerCluster is being deleted"
    assert ready_message(east, "deleting 2 objects", "") == "deleting 2 objects"
    assert "placing pods here" not in ready_message(east, "", "")
