"""Deleting a PeerCluster: held by Spillover's finalizer until nothing of Spillover's is left in
that peer (no orphans), its pods failed over; never held for a peer no kubeconfig can reach."""

from __future__ import annotations

from typing import Any

import msgspec

from extender.capacity.tracker import Reservations
from extender.delegation.evacuation import Evacuation
from extender.delegation.sweep import OrphanSweeper
from extender.delegation.view import Delegations, PeerDelegates, Proxy
from extender.delegation.writer import ProxyWriter
from extender.peers.detach import PeerDetacher
from extender.peers.directory import PeerDirectory
from extender.peers.model import FINALIZER, PeerCluster
from extender.peers.registry import PeerRegistry
from extender.peers.status import PeerStatusWriter
from extender.server.metrics import Metrics
from tests.unit.fakes import SyncedReflector, peer, spilled_proxy


class Recorder:
    """An apiserver that answers every write with {} and records it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> bytes:
        self.calls.append((method, path, body))
        return b"{}"


class PeerApi(Recorder):
    """A peer apiserver holding Spillover's delegates and copies; DELETE removes them."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__()
        self.objects = objects

    async def get(self, path: str, query: Any = None) -> bytes:
        plural = path.rsplit("/", 1)[-1]
        return msgspec.json.encode({"items": self.objects.get(plural, [])})

    async def request(self, method: str, path: str, body: Any = None, **kw: Any) -> bytes:
        await super().request(method, path, body, **kw)
        if method == "DELETE":
            parts = path.split("/")  # /api/v1/namespaces/<ns>/<plural>/<name>
            ns, plural, name = parts[4], parts[5], parts[6]
            kept = [
                o
                for o in self.objects.get(plural, [])
                if (o["metadata"]["namespace"], o["metadata"]["name"]) != (ns, name)
            ]
            self.objects[plural] = kept
        return b"{}"


def _obj(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": name, "labels": labels, "creationTimestamp": "2099-01-01T00:00:00Z"}
    }


class FakeVirtualNodes:
    def __init__(self) -> None:
        self.removed: list[str] = []

    async def remove(self, name: str) -> None:
        self.removed.append(name)


def _peercluster(finalizers: list[str] | None, deleting: bool = False) -> PeerCluster:
    meta: dict[str, Any] = {"name": "east", "resourceVersion": "41", "finalizers": finalizers}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-26T12:00:00Z"
    return msgspec.convert({"metadata": meta, "spec": {"kubeconfigSecretRef": {"name": "east"}}}, PeerCluster)


def _proxy(uid: str, controlled: bool, phase: str = "Running") -> Proxy:
    return spilled_proxy(uid, f"web-{uid}", controlled, phase)


class Detaching:
    """East's PeerCluster deleted: the detacher and delegation's side of it, on recording apiservers."""

    def __init__(self, reachable: bool = True, unusable: str = "") -> None:
        self.home = Recorder()
        self.metrics = Metrics()
        self.directory = PeerDirectory()
        self.directory.specs["east"] = _peercluster([FINALIZER], deleting=True)
        self.state = Delegations()
        self.virtual_nodes = FakeVirtualNodes()
        writer = ProxyWriter(self.home, self.state, Events(), self.metrics)  # type: ignore[arg-type]
        sweeper = OrphanSweeper(self.state, writer, self.metrics, "", every=60)
        self.detacher = PeerDetacher(
            self.home,  # type: ignore[arg-type]
            self.directory,
            self.virtual_nodes,  # type: ignore[arg-type]
            Evacuation(self.state, writer, sweeper),
        )
        pods = [
            _obj(f"web-{uid}-x", {"app.kubernetes.io/managed-by": "spillover", "spillover.io/proxy-uid": uid})
            for uid in ("a", "b", "c")
        ]
        self.peer_api = PeerApi({"pods": pods, "configmaps": [_obj("settings", {"spillover.io/copy": "true"})]})
        if unusable:
            self.directory.unusable["east"] = unusable
            return
        self.east = peer("east")
        self.east.detaching = "its PeerCluster is being deleted"
        self.east.set_reachable(reachable, "" if reachable else "connection refused")
        runtime: Any = type("Runtime", (), {"state": self.east, "raw": self.peer_api})()
        self.directory.peers["east"] = runtime
        entry = PeerDelegates(runtime=runtime)
        entry.reflector = SyncedReflector()  # type: ignore[assignment]
        entry.proxy_reflector = SyncedReflector()  # type: ignore[assignment]
        self.state.peers["east"] = entry
        for proxy in (_proxy("a", controlled=True), _proxy("b", controlled=False), _proxy("c", False, "Succeeded")):
            self.state.proxies[proxy.uid] = proxy

    def released(self) -> bool:
        return any(m == "PATCH" and p == "/apis/spillover.io/v1alpha1/peerclusters/east" for m, p, _ in self.home.calls)


class Events:
    def record(self, ref: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        pass


async def test_a_deleted_peerclusters_pods_are_failed_over_and_its_peer_emptied_before_the_finalizer_goes() -> None:
    east = Detaching()

    await east.detacher.detach_deleted()

    home, peer_api = east.home, east.peer_api
    failed = [
        path for method, path, body in home.calls if path.endswith("/status") and body["status"]["phase"] == "Failed"
    ]
    assert failed == ["/api/v1/namespaces/shop/pods/web-a/status", "/api/v1/namespaces/shop/pods/web-b/status"]
    deleted_proxies = [path for method, path, _ in home.calls if method == "DELETE"]
    assert deleted_proxies == ["/api/v1/namespaces/shop/pods/web-a"]  # its Deployment recreates it elsewhere
    assert not peer_api.objects["pods"] and not peer_api.objects["configmaps"]
    assert not east.released()  # this pass still found objects: the next one confirms
    assert "deleting" in east.detacher.progress["east"]

    await east.detacher.detach_deleted()

    assert east.released() and east.virtual_nodes.removed == ["east"]
    assert len(failed) == 2 and sum(1 for m, p, _ in home.calls if p.endswith("/status")) == 2  # no pod failed twice
    assert "east" not in east.state.peers and not east.state.proxies  # nothing left to remember


async def test_a_deleted_peercluster_whose_peer_is_unreachable_is_held_and_says_how_to_let_it_go() -> None:
    east = Detaching(reachable=False)

    await east.detacher.detach_deleted()

    assert not east.home.calls and not [c for c in east.peer_api.calls if c[0] == "DELETE"]
    progress = east.detacher.progress["east"]
    assert "connection refused" in progress and "remove the finalizer" in progress


async def test_a_deleted_peercluster_with_an_unusable_kubeconfig_is_let_go() -> None:
    east = Detaching(unusable="cannot read the kubeconfig Secret: 404")

    await east.detacher.detach_deleted()

    assert east.released()


def _registry(home: Recorder) -> PeerRegistry:
    directory = PeerDirectory()
    status = PeerStatusWriter(home, directory, {}, lambda name: [])  # type: ignore[arg-type]
    return PeerRegistry(home, directory, FakeVirtualNodes(), Reservations(), status, Events())  # type: ignore[arg-type]


async def test_a_live_peercluster_gets_the_finalizer_without_losing_anothers() -> None:
    home = Recorder()
    registry = _registry(home)

    await registry._ensure_finalizer(_peercluster(["example.com/keep"]))
    await registry._ensure_finalizer(_peercluster(["example.com/keep", FINALIZER]))
    await registry._ensure_finalizer(_peercluster(None, deleting=True))

    assert home.calls == [
        (
            "PATCH",
            "/apis/spillover.io/v1alpha1/peerclusters/east",
            {"metadata": {"finalizers": ["example.com/keep", FINALIZER], "resourceVersion": "41"}},
        )
    ]


async def test_releasing_a_detached_peer_removes_its_virtual_node_and_only_spillovers_finalizer() -> None:
    east = Detaching(unusable="n/a")
    east.directory.specs["east"] = _peercluster(["example.com/keep", FINALIZER], deleting=True)
    home = east.home

    assert east.directory.deleting() == ["east"]
    assert await east.detacher.release("east")

    assert east.virtual_nodes.removed == ["east"]
    assert home.calls[-1][2] == {"metadata": {"finalizers": ["example.com/keep"], "resourceVersion": "41"}}


async def test_a_detaching_peer_takes_no_pods_and_says_why() -> None:
    state = peer("east")
    assert state.healthy
    state.detaching = "its PeerCluster is being deleted"
    assert not state.healthy
    assert "being detached" in state.health_reason()


async def test_failures_and_peer_state_show_in_the_metrics() -> None:
    detaching = Detaching()
    metrics = detaching.metrics
    east = detaching.east
    metrics.watch(lambda: [east], lambda: [("east", "Running"), ("east", "Running"), ("east", "Pending")])

    await detaching.detacher.detach_deleted()

    value = metrics.registry.get_sample_value
    assert value("spillover_delegates_lost_total", {"peer": "east", "reason": "PeerDetached"}) == 2
    assert value("spillover_peer_ready", {"peer": "east"}) == 0  # being detached
    assert value("spillover_peer_free", {"peer": "east", "resource": "cpu"}) == east.free_total()["cpu"] / 1000 > 0
    assert value("spillover_delegates", {"peer": "east", "phase": "Running"}) == 2
