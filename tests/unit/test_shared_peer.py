"""Homes sharing a peer: each Spillover labels what it makes there with its home's id and
watches, sweeps, detaches and reuses only its own; older unlabelled objects of its own are adopted."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from extender.config import ConfigError, load
from extender.delegation.adoption import adopt_unlabelled
from extender.delegation.delegate_spec import copy_body, delegate_body
from extender.kube.api import CONFIGMAPS, NAMESPACES, PODS
from extender.kube.identity import kube_system_uid
from extender.scheduling.state import BindError
from extender.wire.core import Pod
from tests.unit.apiserver import FakeApiserver, Object
from tests.unit.fakes import OLD, Delegation

HOME = "spillover.io/home-cluster"


def _delegate(name: str, home: str | None, proxy_uid: str = "uid-x", copies: str = "") -> Object:
    found = {"app.kubernetes.io/managed-by": "spillover", "spillover.io/proxy-uid": proxy_uid}
    found |= {"spillover.io/home-namespace": "shop", "spillover.io/home-name": name}
    if home:
        found[HOME] = home
    meta = {"namespace": "shop", "name": name, "labels": found, "creationTimestamp": OLD}
    return {"metadata": meta | {"annotations": {"spillover.io/copies": copies}}}


def _copy(name: str, home: str | None) -> Object:
    found = {"app.kubernetes.io/managed-by": "spillover", "spillover.io/copy": "true"}
    if home:
        found[HOME] = home
    return {
        "kind": "ConfigMap",
        "metadata": {"namespace": "shop", "name": name, "labels": found, "creationTimestamp": OLD},
    }


def names(api: FakeApiserver, resource: Any) -> list[str]:
    return [o["metadata"]["name"] for o in api.objects(resource)]


async def home_a() -> Delegation:
    """Home "home-a" with peer east joined and watched."""
    world = Delegation(cluster_id="home-a")
    world.join()
    await world.synced()
    return world


def test_delegates_and_copies_name_the_home_that_made_them() -> None:
    proxy = {"metadata": {"name": "web", "namespace": "shop", "uid": "u1"}, "spec": {"containers": []}}
    assert delegate_body(proxy, "east", "shop", [], "home-a")["metadata"]["labels"][HOME] == "home-a"
    original = {"kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}}
    assert copy_body(original, "shop", "shop", "home-a")["metadata"]["labels"][HOME] == "home-a"


async def test_the_sweep_and_the_detach_never_touch_another_homes_delegates_or_copies() -> None:
    world = await home_a()
    east = world.api()
    for name, home in (("ours", "home-a"), ("theirs", "home-b")):
        east.add(PODS, _delegate(name, home))
        east.add(CONFIGMAPS, _copy(name, home))

    assert await world.sweeper.sweep("east") == 2  # our orphaned delegate and unneeded copy
    east.add(PODS, _delegate("ours-too", "home-a"))
    assert await world.sweeper.sweep("east", everything=True) == 1

    assert names(east, PODS) == ["theirs"] and names(east, CONFIGMAPS) == ["theirs"]
    await world.close()


def _referencing_settings() -> tuple[Object, Pod]:
    raw = {
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"},
        "spec": {"containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "settings"}}]}]},
    }
    return raw, msgspec.convert(raw, Pod)


async def test_a_copy_another_home_made_under_the_same_name_fails_the_bind_with_what_to_do() -> None:
    world = await home_a()
    world.home.add(CONFIGMAPS, {"metadata": {"namespace": "shop", "name": "settings"}, "data": {"a": "1"}})
    world.api().add(CONFIGMAPS, _copy("settings", "home-b"))
    raw, pod = _referencing_settings()

    with pytest.raises(BindError, match=r"another home cluster \(home-b\).*spec.namespace"):
        await world.creator.create_delegate(raw, pod, world.directory.peers["east"].state, "east-0")

    assert not world.api().writes("PATCH"), "their copy's data is left as it was"
    assert not world.api().objects(PODS), "and no delegate was made"
    await world.close()


async def test_unlabelled_delegates_whose_pod_is_here_are_adopted_with_their_copies_and_others_left_alone() -> None:
    home, east = FakeApiserver(), FakeApiserver()
    east.add(PODS, _delegate("web-1", None, proxy_uid="u1", copies="ConfigMap/settings"))
    east.add(PODS, _delegate("web-2", None, proxy_uid="u2"))  # same name here, another pod: another home's
    east.add(PODS, _delegate("web-3", None, proxy_uid="u3"))  # no such pod here
    east.add(CONFIGMAPS, _copy("settings", None))
    for name, uid in (("web-1", "u1"), ("web-2", "other-uid")):
        home.add(PODS, {"metadata": {"namespace": "shop", "name": name, "uid": uid}})

    assert await adopt_unlabelled(home, east, "home-a") == 1

    homes = {o["metadata"]["name"]: o["metadata"]["labels"].get(HOME) for o in east.objects(PODS)}
    assert homes == {"web-1": "home-a", "web-2": None, "web-3": None}
    assert east.objects(CONFIGMAPS)[0]["metadata"]["labels"][HOME] == "home-a"
    assert not east.writes("DELETE")


async def test_the_home_cluster_id_is_kube_systems_uid_read_once_the_apiserver_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    home = FakeApiserver((NAMESPACES, {"metadata": {"name": "kube-system", "uid": "0d5c-77"}}))
    home.fail("GET", NAMESPACES.item("kube-system"), 503)  # not serving yet
    assert await kube_system_uid(home) == "0d5c-77"
    assert len(home.calls) == 2


async def test_an_unreadable_home_cluster_id_says_how_to_fix_it() -> None:
    home = FakeApiserver((NAMESPACES, {"metadata": {"name": "kube-system"}}))
    home.fail("GET", NAMESPACES.item("kube-system"), 403, "forbidden")
    with pytest.raises(RuntimeError, match="grant `get` on namespaces or set --cluster-id"):
        await kube_system_uid(home, wait=0)


def test_a_cluster_id_that_is_not_a_label_value_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="cluster-id"):
        load(None, {"cluster_id": "home a!"})


async def _no_sleep(_: float) -> None:
    return None


async def test_a_bind_racing_the_peerclusters_deletion_creates_no_delegate_there() -> None:
    world = await home_a()
    state = world.directory.peers["east"].state
    state.detaching = "its PeerCluster is being deleted"  # seen after this bind's own checks passed
    raw = {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"}, "spec": {"containers": []}}

    with pytest.raises(BindError, match="being detached"):
        await world.creator.create_delegate(raw, msgspec.convert(raw, Pod), state, "east-node-1")

    assert not world.api().objects(PODS)
    await world.close()
