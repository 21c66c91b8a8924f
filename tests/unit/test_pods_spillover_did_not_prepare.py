"""A pod on a virtual node that Spillover did not prepare (no marker resource) is no proxy.

The case that makes them: a DaemonSet whose pods tolerate every taint. Its controller creates a
pod for every node that passes its predicates (pkg/controller/daemon/daemon_controller.go
``NodeShouldRunDaemonPod``: node name, required node affinity, NoSchedule/NoExecute taints), the
virtual nodes included, and the default binder binds it there without calling the extender. Failed
as a proxy without delegate, it would be deleted and recreated by its DaemonSet forever.
"""

from __future__ import annotations

from typing import Any

import pytest

from extender.delegation import lifecycle
from extender.delegation.lifecycle import NOT_PREPARED
from extender.kube.api import PODS, PatchType
from extender.kube.times import rfc3339
from tests.unit.fakes import Delegation, proxy_pod, until

AGENT = PODS.item("agent-x2v", "monitoring")


def daemonset_pod(node: str = "spillover-east", **meta: Any) -> dict[str, Any]:
    """A DaemonSet's pod as the apiserver shows it once the default binder bound it to ``node``:
    tolerating everything, pinned to its node by the DaemonSet controller's matchFields affinity,
    no marker resource (its namespace is not opted in), Pending (no kubelet runs it)."""
    pin = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    required = {"nodeSelectorTerms": [pin]}
    return {
        "metadata": {
            "namespace": "monitoring",
            "name": "agent-x2v",
            "uid": "uid-agent",
            "ownerReferences": [{"kind": "DaemonSet", "name": "agent", "uid": "ds-agent", "controller": True}],
            **meta,
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "agent", "image": "agent:1", "resources": {"requests": {"cpu": "50m"}}}],
            "tolerations": [{"operator": "Exists"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}},
        },
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
    }


async def test_a_daemonset_pod_on_a_virtual_node_is_never_failed_and_is_told_once_why_it_does_not_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lifecycle, "MISSING_DELEGATE_SECONDS", 0.0)
    world = Delegation()
    world.home.add(PODS, daemonset_pod())
    world.home.add(PODS, proxy_pod("web-1"))  # a real proxy with no delegate: failed, for contrast
    world.join()
    await world.synced()  # seen while following: the Event comes when the lead is taken
    assert "uid-agent" not in world.state.proxies and "uid-agent" in world.state.unprepared
    async with world.leading():
        await until(lambda: NOT_PREPARED in world.events.reasons())
        for _ in range(2):  # the first pass notes both missing their delegate, the second fails proxies
            await world.lifecycle.check()
        assert "DelegateMissing" in world.events.reasons()  # the check did run
        patch = {"metadata": {"annotations": {"spillover.io/failover": "never"}}}  # any change: seen again
        await world.home.request("PATCH", AGENT, patch, content_type=PatchType.MERGE)
        await until(lambda: world.state.unprepared["uid-agent"].failover_never and not world.lifecycle.reactions)
    assert world.events.reasons().count(NOT_PREPARED) == 1
    message = dict(world.events.told)[NOT_PREPARED]
    assert "spillover.io/spillable" in message and "spillover.io/virtual, operator: DoesNotExist" in message
    spillovers = [c for c in world.home.writes() if c.path.startswith(AGENT) and c.body != patch]
    assert spillovers == []  # neither failed, nor mirrored, nor deleted: only the test's own patch
    await world.close()


async def test_a_deletion_asked_of_such_a_pod_is_confirmed_as_a_kubelet_would_for_a_pod_that_never_started() -> None:
    world = Delegation()
    # Its DaemonSet let go of it (given the affinity that keeps it off virtual nodes): the
    # apiserver marked it for deletion and waits for a kubelet that does not exist.
    world.home.add(PODS, daemonset_pod(deletionTimestamp=rfc3339(), deletionGracePeriodSeconds=30))
    world.join()
    await world.synced()
    async with world.leading():
        await until(lambda: world.home.writes("DELETE") != [])
    deletes = world.home.writes("DELETE")
    assert [c.path for c in deletes] == [AGENT]
    assert deletes[0].body["gracePeriodSeconds"] == 0 and deletes[0].body["preconditions"] == {"uid": "uid-agent"}
    assert NOT_PREPARED not in world.events.reasons()
    await world.close()

