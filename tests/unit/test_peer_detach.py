"""Deleting a PeerCluster: held by Spillover's finalizer until nothing of Spillover's is left in
that peer (no orphans), its pods failed over; never held for a peer no kubeconfig can reach."""

from __future__ import annotations

from typing import Any

import msgspec

from extender.capacity.tracker import Reservations
from extender.config import Config
from extender.delegation.delegator import Delegator, PeerDelegates, Proxy
from extender.peers.model import FINALIZER, PeerCluster
from extender.peers.registry import PeerRegistry
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


class FakeRegistry:
    def __init__(self, runtime: Any, unusable: dict[str, str] | None = None) -> None:
        self.peers = {"east": runtime} if runtime is not None else {}
        self.unusable = unusable or {}
        self.detach_progress: dict[str, str] = {}
        self.released: list[str] = []

    def deleting(self) -> list[str]:
        return ["east"]

    async def release(self, name: str) -> bool:
        self.released.append(name)
        return True


def _proxy(uid: str, controlled: bool, phase: str = "Running") -> Proxy:
    return spilled_proxy(uid, f"web-{uid}", controlled, phase)


def _detaching_east(reachable: bool = True) -> tuple[Delegator, FakeRegistry, Recorder, PeerApi]:
    home = Recorder()
    state = peer("east")
    state.detaching = "its PeerCluster is being deleted"
    state.set_reachable(reachable, "" if reachable else "connection refused")
    pods = [
        _obj(f"web-{uid}-x", {"app.kubernetes.io/managed-by": "spillover", "spillover.io/proxy-uid": uid})
        for uid in ("a", "b", "c")
    ]
    peer_api = PeerApi({"pods": pods, "configmaps": [_obj("settings", {"spillover.io/copy": "true"})]})
    runtime: Any = type("Runtime", (), {"state": state, "raw": peer_api})()
    registry = FakeRegistry(runtime)
    delegator = Delegator(home=home, registry=registry, config=Config())  # type: ignore[arg-type]
    delegator.leader.leading = True
    entry = PeerDelegates(runtime=runtime)
    entry.reflector = SyncedReflector()  # type: ignore[assignment]
    entry.proxy_reflector = SyncedReflector()  # type: ignore[assignment]
    delegator.peers["east"] = entry
    for proxy in (_proxy("a", controlled=True), _proxy("b", controlled=False), _proxy("c", False, "Succeeded")):
        delegator.proxies[proxy.uid] = proxy
    return delegator, registry, home, peer_api


async def test_a_deleted_peerclusters_pods_are_failed_over_and_its_peer_emptied_before_the_finalizer_goes() -> None:
    delegator, registry, home, peer_api = _detaching_east()

    await delegator._detach_deleted_peers()

    failed = [path for method, path, body in home.calls if method == "PATCH" and body["status"]["phase"] == "Failed"]
    assert failed == ["/api/v1/namespaces/shop/pods/web-a/status", "/api/v1/namespaces/shop/pods/web-b/status"]
    deleted_proxies = [path for method, path, _ in home.calls if method == "DELETE"]
    assert deleted_proxies == ["/api/v1/namespaces/shop/pods/web-a"]  # its Deployment recreates it elsewhere
    assert not peer_api.objects["pods"] and not peer_api.objects["configmaps"]
    assert registry.released == []  # this pass still found objects: the next one confirms
    assert "deleting" in registry.detach_progress["east"]

    await delegator._detach_deleted_peers()

    assert registry.released == ["east"]
    assert len(failed) == 2 and sum(1 for m, *_ in home.calls if m == "PATCH") == 2  # no pod failed twice
    assert "east" not in delegator.peers and not delegator.proxies  # nothing left to remember


async def test_a_deleted_peercluster_whose_peer_is_unreachable_is_held_and_says_how_to_let_it_go() -> None:
    delegator, registry, home, peer_api = _detaching_east(reachable=False)

    await delegator._detach_deleted_peers()

    assert registry.released == [] and not home.calls and not [c for c in peer_api.calls if c[0] == "DELETE"]
    progress = registry.detach_progress["east"]
    assert "connection refused" in progress and "remove the finalizer" in progress


async def test_a_deleted_peercluster_with_an_unusable_kubeconfig_is_let_go() -> None:
    registry = FakeRegistry(None, unusable={"east": "cannot read the kubeconfig Secret: 404"})
    delegator = Delegator(home=Recorder(), registry=registry, config=Config())  # type: ignore[arg-type]

    await delegator._detach_deleted_peers()

    assert registry.released == ["east"]


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


async def test_a_live_peercluster_gets_the_finalizer_without_losing_anothers() -> None:
    home = Recorder()
    registry = PeerRegistry(home=home, virtual_nodes=FakeVirtualNodes(), reservations=Reservations())  # type: ignore[arg-type]

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
    home = Recorder()
    virtual_nodes = FakeVirtualNodes()
    registry = PeerRegistry(home=home, virtual_nodes=virtual_nodes, reservations=Reservations())  # type: ignore[arg-type]
    registry.specs["east"] = _peercluster(["example.com/keep", FINALIZER], deleting=True)

    assert registry.deleting() == ["east"]
    assert await registry.release("east")

    assert virtual_nodes.removed == ["east"]
    assert home.calls[-1][2] == {"metadata": {"finalizers": ["example.com/keep"], "resourceVersion": "41"}}


async def test_a_detaching_peer_takes_no_pods_and_says_why() -> None:
    state = peer("east")
    assert state.healthy
    state.detaching = "its PeerCluster is being deleted"
    assert not state.healthy
    assert "being detached" in state.health_reason()


async def test_failures_and_peer_state_show_in_the_metrics() -> None:
    from extender.server.metrics import Metrics

    delegator, registry, _, _ = _detaching_east()
    metrics = Metrics()
    delegator.metrics = metrics
    east = registry.peers["east"].state
    metrics.watch(lambda: [east], lambda: [("east", "Running"), ("east", "Running"), ("east", "Pending")])

    await delegator._detach_deleted_peers()

    value = metrics.registry.get_sample_value
    assert value("spillover_delegates_lost_total", {"peer": "east", "reason": "PeerDetached"}) == 2
    assert value("spillover_peer_ready", {"peer": "east"}) == 0  # being detached
    assert value("spillover_peer_free", {"peer": "east", "resource": "cpu"}) == east.free_total()["cpu"] / 1000 > 0
    assert value("spillover_delegates", {"peer": "east", "phase": "Running"}) == 2
