"""In a peer, Spillover puts delegates only into namespaces it created (carrying the peer's Pod
Security level) or the one the PeerCluster maps, and mounts only objects it copied there from the
pod's own home namespace: anything else fails the bind, naming it, and nothing is written."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from extender.config import Config
from extender.delegation.delegator import Delegator, PeerDelegates
from extender.kube.raw import ApiError
from extender.pod_security import Level
from extender.scheduling.state import BindRefused
from extender.wire.core import Pod
from tests.unit.fakes import SyncedReflector, peer

MANAGED = {"app.kubernetes.io/managed-by": "spillover"}
BASELINE = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/audit": "baseline",
    "pod-security.kubernetes.io/warn": "baseline",
}


class Cluster:
    """An apiserver holding namespaces and namespaced objects by path; records every write."""

    def __init__(self, objects: dict[str, dict[str, Any]] | None = None) -> None:
        self.objects = dict(objects or {})
        self.writes: list[tuple[str, str]] = []

    async def get(self, path: str, query: Any = None) -> bytes:
        if path not in self.objects:
            raise ApiError(404, b'{"message": "not found"}', "GET", path)
        return msgspec.json.encode(self.objects[path])

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> bytes:
        self.writes.append((method, path))
        if method == "POST":
            meta = body["metadata"]
            target = f"{path}/{meta['name']}"
            if target in self.objects:
                raise ApiError(409, b'{"reason": "AlreadyExists"}', method, path)
            self.objects[target] = body
        elif method == "PATCH":
            found = self.objects[path]["metadata"].setdefault("labels", {})
            found.update((body.get("metadata") or {}).get("labels") or {})
        return b"{}"


def namespace(name: str, found: dict[str, str]) -> tuple[str, dict[str, Any]]:
    return f"/api/v1/namespaces/{name}", {"metadata": {"name": name, "labels": found}}


def secret(ns: str, name: str, found: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    body = {"kind": "Secret", "metadata": {"name": name, "namespace": ns, "labels": found or {}}, "data": {"k": "dg=="}}
    return f"/api/v1/namespaces/{ns}/secrets/{name}", body


def setup(
    peer_objects: dict[str, Any], home_objects: dict[str, Any] | None = None, remote_namespace: str | None = None
) -> tuple[Delegator, Cluster, Any]:
    peer_api = Cluster(peer_objects)
    home_api = Cluster(home_objects)
    delegator = Delegator(home=home_api, registry=None, config=Config(cluster_id="home-a"))  # type: ignore[arg-type]
    state = peer("east")
    state.remote_namespace = remote_namespace
    runtime: Any = type("Runtime", (), {"state": state, "raw": peer_api})()
    entry = PeerDelegates(runtime=runtime)
    entry.reflector = SyncedReflector()  # type: ignore[assignment]
    entry.proxy_reflector = SyncedReflector()  # type: ignore[assignment]
    delegator.peers["east"] = entry
    return delegator, peer_api, state


def mounting(secret_name: str) -> tuple[dict[str, Any], Pod]:
    raw = {
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"},
        "spec": {
            "containers": [{"name": "app", "volumeMounts": [{"name": "db", "mountPath": "/db"}]}],
            "volumes": [{"name": "db", "secret": {"secretName": secret_name}}],
        },
    }
    return raw, msgspec.convert(raw, Pod)


def delegates(peer_api: Cluster) -> list[str]:
    return [path for method, path in peer_api.writes if method == "POST" and path.endswith("/pods")]


async def test_a_namespace_spillover_creates_enforces_the_peers_pod_security_level() -> None:
    delegator, peer_api, state = setup({})
    state.pod_security = Level.RESTRICTED
    raw, pod = mounting("none")
    await delegator.create_delegate({**raw, "spec": {"containers": []}}, pod, state, "east-0")
    assert peer_api.objects["/api/v1/namespaces/shop"]["metadata"]["labels"] == {
        **MANAGED,
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    assert len(delegates(peer_api)) == 1


async def test_a_peer_teams_namespace_of_the_same_name_is_never_used() -> None:
    delegator, peer_api, state = setup(dict([namespace("shop", {"team": "payments"})]))
    raw, pod = mounting("none")
    with pytest.raises(BindRefused, match="namespace shop exists in peer east and Spillover did not create it"):
        await delegator.create_delegate(raw, pod, state, "east-0")
    assert peer_api.writes == [("POST", "/api/v1/namespaces")]  # the create that found it; nothing after
    assert peer_api.objects["/api/v1/namespaces/shop"]["metadata"]["labels"] == {"team": "payments"}


async def test_the_namespace_the_peercluster_maps_is_used_and_its_labels_left_to_its_owner() -> None:
    delegator, peer_api, state = setup(dict([namespace("burst", {"owner": "peer-admin"})]), remote_namespace="burst")
    raw, pod = mounting("none")
    await delegator.create_delegate({**raw, "spec": {"containers": []}}, pod, state, "east-0")
    assert peer_api.objects["/api/v1/namespaces/burst"]["metadata"]["labels"] == {"owner": "peer-admin"}
    assert delegates(peer_api) == ["/api/v1/namespaces/burst/pods"]


async def test_spillovers_own_namespace_labelled_before_is_relabelled_with_the_level_now_set() -> None:
    delegator, peer_api, state = setup(dict([namespace("shop", dict(MANAGED))]))
    raw, pod = mounting("none")
    await delegator.create_delegate({**raw, "spec": {"containers": []}}, pod, state, "east-0")
    assert peer_api.objects["/api/v1/namespaces/shop"]["metadata"]["labels"] == {**MANAGED, **BASELINE}
    state.pod_security = Level.PRIVILEGED  # the PeerCluster changed: the next bind relabels
    await delegator.create_delegate({**raw, "spec": {"containers": []}}, pod, state, "east-0")
    assert peer_api.objects["/api/v1/namespaces/shop"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "privileged"
    )


async def test_a_peer_teams_own_secret_of_the_referenced_name_is_never_mounted_or_overwritten() -> None:
    theirs = secret("shop", "db", {"team": "payments"})
    delegator, peer_api, state = setup(
        dict([namespace("shop", {**MANAGED, **BASELINE}), theirs]), dict([secret("shop", "db")])
    )
    raw, pod = mounting("db")
    with pytest.raises(BindRefused, match=r"Secret shop/db in peer east was not copied there by Spillover"):
        await delegator.create_delegate(raw, pod, state, "east-0")
    assert delegates(peer_api) == [] and not [w for w in peer_api.writes if w[0] == "PATCH"]
    assert peer_api.objects[theirs[0]]["metadata"]["labels"] == {"team": "payments"}


async def test_a_secret_home_lacks_is_not_looked_up_in_the_peer_instead() -> None:
    delegator, peer_api, state = setup(dict([namespace("shop", {**MANAGED, **BASELINE}), secret("shop", "db")]))
    raw, pod = mounting("db")
    with pytest.raises(BindRefused, match=r"references Secret db, which namespace shop lacks, and Secret shop/db"):
        await delegator.create_delegate(raw, pod, state, "east-0")
    assert delegates(peer_api) == []


async def test_a_secret_neither_home_nor_the_peer_has_is_left_for_the_delegate_to_wait_on_as_at_home() -> None:
    delegator, peer_api, state = setup(dict([namespace("shop", {**MANAGED, **BASELINE})]))
    raw, pod = mounting("db")
    await delegator.create_delegate(raw, pod, state, "east-0")
    assert len(delegates(peer_api)) == 1


async def test_a_copy_made_for_another_home_namespace_sharing_the_peer_namespace_is_not_mounted() -> None:
    copied = {**MANAGED, "spillover.io/copy": "true", "spillover.io/home-cluster": "home-a"}
    shops = secret("burst", "db", {**copied, "spillover.io/home-namespace": "shop"})
    delegator, peer_api, state = setup(
        dict([namespace("burst", {}), shops]), dict([secret("shop", "db")]), remote_namespace="burst"
    )
    raw, pod = mounting("db")
    raw["metadata"]["namespace"] = "intruder"
    pod.metadata.namespace = "intruder"
    delegator.home.objects["/api/v1/namespaces/intruder/secrets/db"] = secret("intruder", "db")[1]
    with pytest.raises(BindRefused, match="is a copy of home namespace shop's, not intruder's"):
        await delegator.create_delegate(raw, pod, state, "east-0")
    assert delegates(peer_api) == [] and not [w for w in peer_api.writes if w[0] == "PATCH"]


async def test_a_burst_of_binds_into_a_new_namespace_checks_it_once() -> None:
    delegator, peer_api, state = setup({})
    raw, pod = mounting("none")
    raw = {**raw, "spec": {"containers": []}}
    await asyncio.gather(*(delegator.create_delegate(raw, pod, state, "east-0") for _ in range(20)))
    assert [w for w in peer_api.writes if w[1] == "/api/v1/namespaces"] == [("POST", "/api/v1/namespaces")]


async def test_every_bind_waiting_on_a_refused_namespace_is_refused() -> None:
    delegator, peer_api, state = setup(dict([namespace("shop", {"team": "payments"})]))
    raw, pod = mounting("none")
    raw = {**raw, "spec": {"containers": []}}
    results = await asyncio.gather(
        *(delegator.create_delegate(raw, pod, state, "east-0") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, BindRefused) for r in results)
    assert peer_api.writes == [("POST", "/api/v1/namespaces")]
