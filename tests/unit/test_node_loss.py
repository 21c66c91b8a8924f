"""Spilled pods tolerate the node-lifecycle taints without a time limit once bound, so no
Spillover outage gets them evicted; the patch is the one a pod update allows (tolerationSeconds
changed, nothing else), guarded against concurrent changes, written by the leader only and only
on pods Spillover bound."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from extender.delegation.tolerations import forever_patch, lacking_patch
from extender.kube.api import PODS
from extender.wire.core import Pod
from tests.unit.apiserver import json_patch as apply
from tests.unit.fakes import Delegation, proxy_pod, until

VIRTUAL = {"key": "spillover.io/virtual", "operator": "Exists", "effect": "NoSchedule"}
NOT_READY = {
    "key": "node.kubernetes.io/not-ready",
    "operator": "Exists",
    "effect": "NoExecute",
    "tolerationSeconds": 300,
}
UNREACHABLE = {**NOT_READY, "key": "node.kubernetes.io/unreachable"}


def proxy(tolerations: list[dict[str, Any]] | None, bound: bool = True, uid: str = "u1") -> dict[str, Any]:
    """A pod as the apiserver shows it once bound to a virtual node (defaults admitted)."""
    annotations = {"spillover.io/delegate": "shop/web-1-abc", "spillover.io/cluster": "east"} if bound else {}
    spec: dict[str, Any] = {"nodeName": "spillover-east", "containers": [{"name": "app", "image": "app:1"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "uid": uid,
            "resourceVersion": "7",
            "annotations": annotations,
        },
        "spec": spec,
    }


def pod(raw: dict[str, Any]) -> Pod:
    return msgspec.convert(raw, Pod)


def forever(raw: dict[str, Any]) -> dict[str, Any]:
    return apply(raw, forever_patch(pod(raw)))


def test_the_default_300s_tolerations_lose_their_limit_and_nothing_else_changes() -> None:
    raw = proxy([VIRTUAL, NOT_READY, UNREACHABLE])

    after = forever(raw)

    assert after["spec"]["tolerations"] == [
        VIRTUAL,
        {k: v for k, v in NOT_READY.items() if k != "tolerationSeconds"},
        {k: v for k, v in UNREACHABLE.items() if k != "tolerationSeconds"},
    ]
    assert forever_patch(pod(after)) == [], "done once: nothing more to write"


def test_a_pod_without_them_gets_both_added() -> None:
    assert forever(proxy([VIRTUAL]))["spec"]["tolerations"][1:] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    ]
    assert len(forever(proxy(None))["spec"]["tolerations"]) == 2


def test_the_first_toleration_that_matches_is_the_one_eviction_reads() -> None:
    """The taint-eviction controller takes the first matching toleration per taint: a user's own
    60 s toleration before the defaults must lose its limit, not a later one."""
    own = {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 60,
    }
    raw = proxy([VIRTUAL, own, NOT_READY, UNREACHABLE])

    after = forever(raw)["spec"]["tolerations"]

    assert "tolerationSeconds" not in after[1] and "tolerationSeconds" not in after[2]
    assert after[3] == UNREACHABLE, "a later match never decides: left as it was"


def test_a_pod_that_tolerates_everything_for_ever_is_left_alone() -> None:
    assert forever_patch(pod(proxy([{"operator": "Exists"}]))) == []
    assert forever_patch(pod(proxy([VIRTUAL, {"operator": "Exists", "effect": "NoExecute"}]))) == []


def test_each_removal_is_guarded_by_the_toleration_as_read() -> None:
    ops = forever_patch(pod(proxy([VIRTUAL, NOT_READY, UNREACHABLE])))

    assert ops[0] == {"op": "test", "path": "/spec/tolerations/1", "value": NOT_READY}
    changed = proxy([VIRTUAL, UNREACHABLE, NOT_READY])  # the list as it is now differs
    with pytest.raises(AssertionError):
        apply(changed, ops)


def test_only_a_live_pod_spillover_bound_lacks_it() -> None:
    assert lacking_patch(pod(proxy([VIRTUAL, NOT_READY, UNREACHABLE])))
    assert lacking_patch(pod(proxy([VIRTUAL, NOT_READY], bound=False))) == [], "bound by hand: left alone"
    deleting = proxy([VIRTUAL, NOT_READY])
    deleting["metadata"]["deletionTimestamp"] = "2026-11-30T12:00:00Z"
    assert lacking_patch(pod(deleting)) == []


def spilled(name: str, bound: bool = True) -> dict[str, Any]:
    """A proxy with the apiserver's default tolerations, bound by Spillover (its Binding's annotation) or not."""
    body = proxy_pod(name, annotations={"spillover.io/delegate": f"shop/{name}-x"} if bound else {})
    body["spec"]["tolerations"] = [VIRTUAL, NOT_READY, UNREACHABLE]
    return body


def tolerations_of(world: Delegation, name: str) -> list[Any]:
    return list(((world.home.get_object(PODS, name, "shop") or {}).get("spec") or {}).get("tolerations") or [])


async def test_the_leader_patches_each_pod_spillover_bound_and_a_follower_none() -> None:
    world = Delegation()
    world.home.add(PODS, spilled("web-1"))
    world.home.add(PODS, spilled("by-hand", bound=False))
    world.join()
    await world.synced()
    assert not world.home.writes("PATCH"), "a follower writes nothing"

    async with world.leading():
        await until(lambda: world.tolerations.patched == 1)
        await until(lambda: not world.state.proxies["uid-web-1"].node_loss_patch)  # its watch shows it done

    assert all("tolerationSeconds" not in t for t in tolerations_of(world, "web-1")[1:])
    assert tolerations_of(world, "by-hand")[2] == UNREACHABLE, "a pod bound some other way is left alone"
    assert [c.path for c in world.home.writes("PATCH")] == [PODS.item("web-1", "shop")]
    await world.close()


async def test_a_patch_refused_is_tried_again_later_not_in_a_loop() -> None:
    world = Delegation()
    world.home.add(PODS, spilled("web-1"))
    world.home.fail("PATCH", PODS.item("web-1", "shop"), 503)
    world.join()
    await world.synced()

    async with world.leading():
        await until(lambda: len(world.home.writes("PATCH")) == 1)
        await asyncio.sleep(0.2)
        assert len(world.home.writes("PATCH")) == 1, "not retried at once"
        assert world.tolerations.patched == 0
    await world.close()
