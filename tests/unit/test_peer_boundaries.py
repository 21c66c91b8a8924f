"""In a peer, Spillover puts delegates only into namespaces it created (carrying the peer's Pod
Security level) or the one the PeerCluster maps, and mounts only objects it copied there from the
pod's own home namespace: anything else fails the bind, naming it, and nothing is written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from extender.capacity.model import PeerState
from extender.kube.api import NAMESPACES, SECRETS, Resource
from extender.pod_security import Level
from extender.scheduling.state import BindRefused
from extender.wire.core import Pod
from tests.unit.apiserver import FakeApiserver, Object
from tests.unit.fakes import Delegation

MANAGED = {"app.kubernetes.io/managed-by": "spillover"}
BASELINE = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/audit": "baseline",
    "pod-security.kubernetes.io/warn": "baseline",
}


def namespace(name: str, found: dict[str, str]) -> tuple[Resource, Object]:
    return NAMESPACES, {"metadata": {"name": name, "labels": found}}


def secret(ns: str, name: str, found: dict[str, str] | None = None) -> tuple[Resource, Object]:
    body = {"kind": "Secret", "metadata": {"name": name, "namespace": ns, "labels": found or {}}, "data": {"k": "dg=="}}
    return SECRETS, body


async def setup(
    peer_objects: list[tuple[Resource, Object]],
    home_objects: Sequence[tuple[Resource, Object]] = (),
    remote_namespace: str | None = None,
) -> tuple[Delegation, FakeApiserver, PeerState]:
    world = Delegation(cluster_id="home-a")
    for resource, obj in peer_objects:
        world.api().add(resource, obj)
    for resource, obj in home_objects:
        world.home.add(resource, obj)
    state = world.join()
    state.remote_namespace = remote_namespace
    await world.synced()
    return world, world.api(), state


def labels_of(api: FakeApiserver, resource: Resource, name: str, ns: str | None = None) -> dict[str, str]:
    found = api.get_object(resource, name, ns)
    assert found is not None
    labels: dict[str, str] = found["metadata"]["labels"]
    return labels


def writes(api: FakeApiserver) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in api.writes()]


def mounting(secret_name: str) -> tuple[dict[str, Any], Pod]:
    raw = {
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"},
        "spec": {
            "containers": [{"name": "app", "volumeMounts": [{"name": "db", "mountPath": "/db"}]}],
            "volumes": [{"name": "db", "secret": {"secretName": secret_name}}],
        },
    }
    return raw, msgspec.convert(raw, Pod)


def delegates(peer_api: FakeApiserver) -> list[str]:
    return [c.path for c in peer_api.writes("POST") if c.path.endswith("/pods")]


async def test_a_namespace_spillover_creates_enforces_the_peers_pod_security_level() -> None:
    world, peer_api, state = await setup([])
    state.pod_security = Level.RESTRICTED
    raw, pod = mounting("none")
    await world.creator.create_delegate({**raw, "spec": {"containers": []}}, pod, state, "east-0")
    assert labels_of(peer_api, NAMESPACES, "shop") == {
        **MANAGED,
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    assert len(delegates(peer_api)) == 1


async def test_a_peer_teams_namespace_of_the_same_name_is_never_used() -> None:
    world, peer_api, state = await setup([namespace("shop", {"team": "payments"})])
    raw, pod = mounting("none")
    with pytest.raises(BindRefused, match="namespace shop exists in peer east and Spillover did not create it"):
        await world.creator.create_delegate(raw, pod, state, "east-0")
    assert writes(peer_api) == [("POST", NAMESPACES.collection())]  # the create that found it; nothing after
    assert labels_of(peer_api, NAMESPACES, "shop") == {"team": "payments"}


async def test_the_namespace_the_peercluster_maps_is_used_and_its_labels_left_to_its_owner() -> None:
    world, peer_api, state = await setup([namespace("burst", {"owner": "peer-admin"})], remote_namespace="burst")
    raw, pod = mounting("none")
    await world.creator.create_delegate({**raw, "spec": {"containers": []}}, pod, state, "east-0")
    assert labels_of(peer_api, NAMESPACES, "burst") == {"owner": "peer-admin"}
    assert delegates(peer_api) == ["/api/v1/namespaces/burst/pods"]


async def test_spillovers_own_namespace_labelled_before_is_relabelled_with_the_level_now_set() -> None:
    world, peer_api, state = await setup([namespace("shop", dict(MANAGED))])
    raw, pod = mounting("none")
    await world.creator.create_delegate({**raw, "spec": {"containers": []}}, pod, state, "east-0")
    assert labels_of(peer_api, NAMESPACES, "shop") == {**MANAGED, **BASELINE}
    state.pod_security = Level.PRIVILEGED  # the PeerCluster changed: the next bind relabels
    await world.creator.create_delegate({**raw, "spec": {"containers": []}}, pod, state, "east-0")
    assert labels_of(peer_api, NAMESPACES, "shop")["pod-security.kubernetes.io/enforce"] == ("privileged")


async def test_a_peer_teams_own_secret_of_the_referenced_name_is_never_mounted_or_overwritten() -> None:
    theirs = secret("shop", "db", {"team": "payments"})
    world, peer_api, state = await setup([namespace("shop", {**MANAGED, **BASELINE}), theirs], [secret("shop", "db")])
    raw, pod = mounting("db")
    with pytest.raises(BindRefused, match=r"Secret shop/db in peer east was not copied there by Spillover"):
        await world.creator.create_delegate(raw, pod, state, "east-0")
    assert delegates(peer_api) == [] and not peer_api.writes("PATCH")
    assert labels_of(peer_api, SECRETS, "db", "shop") == {"team": "payments"}


async def test_a_secret_home_lacks_is_not_looked_up_in_the_peer_instead() -> None:
    world, peer_api, state = await setup([namespace("shop", {**MANAGED, **BASELINE}), secret("shop", "db")])
    raw, pod = mounting("db")
    with pytest.raises(BindRefused, match=r"references Secret db, which namespace shop lacks, and Secret shop/db"):
        await world.creator.create_delegate(raw, pod, state, "east-0")
    assert delegates(peer_api) == []


async def test_a_secret_neither_home_nor_the_peer_has_is_left_for_the_delegate_to_wait_on_as_at_home() -> None:
    world, peer_api, state = await setup([namespace("shop", {**MANAGED, **BASELINE})])
    raw, pod = mounting("db")
    await world.creator.create_delegate(raw, pod, state, "east-0")
    assert len(delegates(peer_api)) == 1


async def test_a_copy_made_for_another_home_namespace_sharing_the_peer_namespace_is_not_mounted() -> None:
    copied = {**MANAGED, "spillover.io/copy": "true", "spillover.io/home-cluster": "home-a"}
    shops = secret("burst", "db", {**copied, "spillover.io/home-namespace": "shop"})
    world, peer_api, state = await setup(
        [namespace("burst", {}), shops], [secret("shop", "db")], remote_namespace="burst"
    )
    raw, pod = mounting("db")
    raw["metadata"]["namespace"] = "intruder"
    pod.metadata.namespace = "intruder"
    world.home.add(*secret("intruder", "db"))
    with pytest.raises(BindRefused, match="is a copy of home namespace shop's, not intruder's"):
        await world.creator.create_delegate(raw, pod, state, "east-0")
    assert delegates(peer_api) == [] and not peer_api.writes("PATCH")


async def test_a_burst_of_binds_into_a_new_namespace_checks_it_once() -> None:
    world, peer_api, state = await setup([])
    raw, pod = mounting("none")
    raw = {**raw, "spec": {"containers": []}}
    await asyncio.gather(*(world.creator.create_delegate(raw, pod, state, "east-0") for _ in range(20)))
    assert [w for w in writes(peer_api) if w[1] == NAMESPACES.collection()] == [("POST", NAMESPACES.collection())]


async def test_every_bind_waiting_on_a_refused_namespace_is_refused() -> None:
    world, peer_api, state = await setup([namespace("shop", {"team": "payments"})])
    raw, pod = mounting("none")
    raw = {**raw, "spec": {"containers": []}}
    results = await asyncio.gather(
        *(world.creator.create_delegate(raw, pod, state, "east-0") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, BindRefused) for r in results)
    assert writes(peer_api) == [("POST", NAMESPACES.collection())]
