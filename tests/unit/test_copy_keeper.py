"""Copies of home ConfigMaps and Secrets in peers follow home: changed at home, changed in every
peer holding one; missing, told on the pod and copied when it appears; deleted, deleted. Never an
object Spillover did not make, nor another home's copy; an immutable copy is replaced only when
its home object was; a follower writes nothing; a new leader writes only what is stale."""

from __future__ import annotations

from typing import Any

from extender.kube.api import CONFIGMAPS, PODS
from tests.unit.apiserver import Object
from tests.unit.fakes import Delegation, delegate_pod, proxy_pod, until

HOME_ID = "home-a"


def home_object(name: str, data: dict[str, str], immutable: bool = False) -> Object:
    body: Object = {"metadata": {"name": name, "namespace": "shop"}, "data": data}
    if immutable:
        body["immutable"] = True
    return body


def copy_in_peer(
    name: str, source_version: str, data: dict[str, str], home: str = HOME_ID, immutable: bool = False
) -> Object:
    found = {
        "app.kubernetes.io/managed-by": "spillover",
        "spillover.io/copy": "true",
        "spillover.io/home-namespace": "shop",
    }
    if home:
        found["spillover.io/home-cluster"] = home
    meta = {
        "name": name,
        "namespace": "shop",
        "labels": found,
        "annotations": {"spillover.io/source-resource-version": source_version},
    }
    body: Object = {"metadata": meta, "data": data}
    if immutable:
        body["immutable"] = True
    return body


def version(world: Delegation, name: str) -> str:
    return str((world.home.get_object(CONFIGMAPS, name, "shop") or {})["metadata"]["resourceVersion"])


def in_peer(world: Delegation, name: str) -> Object | None:
    return world.api().get_object(CONFIGMAPS, name, "shop")


async def spilled_with(world: Delegation, refs: str, name: str = "web-1") -> None:
    """A pod spilled to east whose delegate references ``refs`` (kind/name, comma-separated)."""
    proxy = world.home.add(PODS, proxy_pod(name))
    meta: dict[str, Any] = {"annotations": {"spillover.io/references": refs}}
    delegate = delegate_pod(proxy, home=HOME_ID, **meta)
    delegate["metadata"]["labels"]["spillover.io/home-namespace"] = "shop"
    world.api().add(PODS, delegate)


async def started(world: Delegation) -> None:
    world.join()
    await world.synced()
    await world.watch_home_copies()


async def test_a_change_at_home_reaches_the_copy_keys_removed_at_home_included() -> None:
    world = Delegation(cluster_id=HOME_ID)
    world.home.add(CONFIGMAPS, home_object("settings", {"mode": "blue", "old": "x"}))
    world.api().add(CONFIGMAPS, copy_in_peer("settings", version(world, "settings"), {"mode": "blue", "old": "x"}))
    await spilled_with(world, "ConfigMap/settings")
    await started(world)
    async with world.leading():
        await world.home.request(
            "PATCH", CONFIGMAPS.item("settings", "shop"), {"data": {"mode": "green", "old": None, "new": "y"}}
        )
        await until(lambda: (in_peer(world, "settings") or {}).get("data") == {"mode": "green", "new": "y"})

    copied = in_peer(world, "settings") or {}
    assert copied["metadata"]["annotations"]["spillover.io/source-resource-version"] == version(world, "settings")
    assert [c.method for c in world.api().writes()] == ["PATCH"], "one write: the copy, brought in step"
    await world.close()


async def test_a_reference_missing_at_home_is_told_on_the_pod_then_copied_when_it_appears() -> None:
    world = Delegation(cluster_id=HOME_ID)
    await spilled_with(world, "ConfigMap/late")
    await started(world)
    async with world.leading():
        await until(lambda: "ReferenceMissing" in world.events.reasons())
        world.home.add(CONFIGMAPS, home_object("late", {"late": "1"}))
        await until(lambda: (in_peer(world, "late") or {}).get("data") == {"late": "1"})
        await until(lambda: "ReferenceCopied" in world.events.reasons())

    assert world.events.reasons().count("ReferenceMissing") == 1, "told once"
    await world.close()


async def test_a_home_object_deleted_has_its_copy_deleted() -> None:
    world = Delegation(cluster_id=HOME_ID)
    world.home.add(CONFIGMAPS, home_object("settings", {"mode": "blue"}))
    world.api().add(CONFIGMAPS, copy_in_peer("settings", version(world, "settings"), {"mode": "blue"}))
    await spilled_with(world, "ConfigMap/settings")
    await started(world)
    async with world.leading():
        await world.home.request("DELETE", CONFIGMAPS.item("settings", "shop"))
        await until(lambda: in_peer(world, "settings") is None)
    await world.close()


async def test_objects_spillover_did_not_make_and_another_homes_copies_are_never_touched() -> None:
    world = Delegation(cluster_id=HOME_ID)
    world.home.add(CONFIGMAPS, home_object("settings", {"mode": "green"}))
    world.home.add(CONFIGMAPS, home_object("theirs", {"a": "2"}))
    world.api().add(CONFIGMAPS, {"metadata": {"name": "settings", "namespace": "shop"}, "data": {"mode": "peer's"}})
    world.api().add(CONFIGMAPS, copy_in_peer("theirs", "1", {"a": "1"}, home="home-b"))
    await spilled_with(world, "ConfigMap/settings,ConfigMap/theirs")
    await started(world)
    async with world.leading():
        await until(lambda: len(world.copies.ignored) == 2)
        await world.home.request("PATCH", CONFIGMAPS.item("settings", "shop"), {"data": {"mode": "red"}})
        await until(lambda: world.copies.caught_up)

    assert world.api().writes() == []
    assert (in_peer(world, "settings") or {})["data"] == {"mode": "peer's"}
    await world.close()


async def test_an_immutable_copy_is_replaced_only_when_its_home_object_was() -> None:
    world = Delegation(cluster_id=HOME_ID)
    world.home.add(CONFIGMAPS, home_object("settings", {"mode": "green"}, immutable=True))
    world.api().add(CONFIGMAPS, copy_in_peer("settings", "4", {"mode": "blue"}, immutable=True))
    await spilled_with(world, "ConfigMap/settings")
    await started(world)
    async with world.leading():
        await until(lambda: (in_peer(world, "settings") or {}).get("data") == {"mode": "green"})

    assert [c.method for c in world.api().writes()] == ["DELETE", "POST"]
    await world.close()


async def test_a_follower_writes_nothing_and_a_new_leader_writes_only_what_is_stale() -> None:
    world = Delegation(cluster_id=HOME_ID)
    world.home.add(CONFIGMAPS, home_object("settings", {"mode": "green"}))
    world.home.add(CONFIGMAPS, home_object("fresh", {"a": "1"}))
    world.api().add(CONFIGMAPS, copy_in_peer("settings", "stale", {"mode": "blue"}))
    world.api().add(CONFIGMAPS, copy_in_peer("fresh", version(world, "fresh"), {"a": "1"}))
    await spilled_with(world, "ConfigMap/settings")
    await spilled_with(world, "ConfigMap/fresh", name="web-2")
    await started(world)
    await world.home.request("PATCH", CONFIGMAPS.item("fresh", "shop"), {"metadata": {"labels": {"x": "y"}}})
    await until(lambda: world.copies.versions[("ConfigMap", "shop", "fresh")] == version(world, "fresh"))
    world.api().add(CONFIGMAPS, copy_in_peer("fresh", version(world, "fresh"), {"a": "1"}))  # in step again
    assert world.api().writes() == [], "a follower writes nothing"

    async with world.leading():
        await until(lambda: (in_peer(world, "settings") or {}).get("data") == {"mode": "green"})

    assert [c.path for c in world.api().writes()] == [CONFIGMAPS.item("settings", "shop")], "only the stale copy"
    await world.close()


async def test_a_delegate_gone_stops_its_copies_being_followed() -> None:
    world = Delegation(cluster_id=HOME_ID)
    await spilled_with(world, "ConfigMap/settings")
    await spilled_with(world, "ConfigMap/settings", name="web-2")
    await started(world)
    key = ("ConfigMap", "shop", "settings")
    assert world.copies.users[key] == {("east", "shop"): {"uid-web-1", "uid-web-2"}}

    await world.api().request("DELETE", PODS.item("web-1-x", "shop"))
    await until(lambda: world.copies.users[key] == {("east", "shop"): {"uid-web-2"}})
    await world.api().request("DELETE", PODS.item("web-2-x", "shop"))
    await until(lambda: key not in world.copies.users)
    await world.close()
