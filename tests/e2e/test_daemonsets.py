"""A DaemonSet whose pods tolerate every taint, against the real DaemonSet controller and binder.

Its controller creates a pod for each node its predicates pass (kube-controller-manager v1.36:
pkg/controller/daemon/daemon_controller.go ``NodeShouldRunDaemonPod``), Spillover's virtual nodes
included, and the default binder binds them there. Those pods carry no marker resource (their
namespace is not opted in): no proxies. They must be left alone, not failed (the controller would
delete and recreate them forever), and say why they do not run; the pods on home's real nodes run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from spillover_lab import lab as lablib

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import IMAGE, delete_daemonset, ensure_namespace, events_for, pods, unique

PLAIN = "plain-daemons"
"""Not labelled spillover.io/enabled: the webhook leaves its pods as they are."""
LEFT_ALONE_FOR = 40.0
"""Past Spillover's 30 s limit for a proxy with no delegate: the pods must still be the same ones."""


@pytest_asyncio.fixture(scope="module")
async def home(clusters: dict[str, Cluster], spillover: lablib.State) -> AsyncIterator[Cluster]:
    await ensure_namespace(clusters["home"], PLAIN, enabled=False)
    yield clusters["home"]


def daemonset(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "tolerations": [{"operator": "Exists"}],  # every taint, the virtual nodes' too
                    "containers": [{"name": "agent", "image": IMAGE, "resources": {"requests": {"cpu": "10m"}}}],
                },
            },
        },
    }


async def test_a_daemonset_tolerating_every_taint_runs_at_home_and_its_pods_on_virtual_nodes_are_left_alone(
    home: Cluster,
) -> None:
    virtual = {n.metadata.name for n in (await home.core.list_node(label_selector="spillover.io/virtual=true")).items}
    real = {n.metadata.name for n in (await home.core.list_node()).items} - virtual
    assert virtual and real, (virtual, real)
    name = unique("agent")
    await home.apps.create_namespaced_daemon_set(PLAIN, daemonset(name))
    try:

        async def one_per_node() -> dict[str, Any] | None:
            by_node = {p.spec.node_name: p for p in await pods(home, PLAIN, name) if p.spec.node_name}
            running_home = all(by_node.get(n) is not None and by_node[n].status.phase == "Running" for n in real)
            return by_node if running_home and virtual <= by_node.keys() else None

        by_node = await eventually(one_per_node, 60, f"{name}'s pods Running on {sorted(real)} and bound to {virtual}")
        started = time.monotonic()
        stranded = {n: (by_node[n].metadata.name, by_node[n].metadata.uid) for n in virtual}

        async def told() -> bool:
            for pod_name, _ in stranded.values():
                events = await events_for(home, PLAIN, pod_name)
                if not any(e.reason == "NotPreparedBySpillover" and e.type == "Warning" for e in events):
                    return False
            return True

        await eventually(told, 30, "a NotPreparedBySpillover Warning on each pod bound to a virtual node")
        events = await events_for(home, PLAIN, next(iter(stranded.values()))[0])
        message = next(e.message for e in events if e.reason == "NotPreparedBySpillover")
        assert "spillover.io/virtual, operator: DoesNotExist" in message, message

        # The absence of a loop can only be shown over time: the same pods, not failed, for 40 s.
        while time.monotonic() - started < LEFT_ALONE_FOR:
            now = {p.spec.node_name: p for p in await pods(home, PLAIN, name) if p.spec.node_name in virtual}
            for node, (pod_name, uid) in stranded.items():
                pod = now.get(node)
                assert pod is not None and pod.metadata.uid == uid, f"{pod_name} on {node} was replaced"
                assert pod.status.phase == "Pending" and pod.metadata.deletion_timestamp is None, pod.status
            await asyncio.sleep(2)  # a poll interval over a fixed window, not a wait for readiness
        reasons = {e.reason for p, _ in stranded.values() for e in await events_for(home, PLAIN, p)}
        assert "DelegateMissing" not in reasons, reasons
    finally:
        # The pods on virtual nodes go too: no kubelet confirms their deletion, Spillover does.
        await delete_daemonset(home, PLAIN, name)
