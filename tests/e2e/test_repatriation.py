"""Repatriation against the real lab: spilled pods come home when home gains a node, through the
Eviction API, so the real disruption controller's PodDisruptionBudget decides.

Lab shape (hack/lab/profile.yaml): home 2 x 4 CPU; east 3 x 4 CPU at cost 1; west 2 x 2 CPU at
cost 2. Six 2-CPU pods fill home with four and spill two to east; a kwok node of 4 CPU added to
home then has room for both. The pods' delay is 5 s (``spillover.io/repatriate-after``), so the
tests wait seconds, not Spillover's default 5 minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.client.models import V1Pod
from spillover_lab import lab as lablib
from spillover_lab import spillover as sp

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import (
    create_deployment,
    delete_deployment,
    ensure_namespace,
    pods,
    pods_in_all_namespaces,
    unique,
)

NAMESPACE = "homecoming"
REPLICAS, CPU = 6, "2"
DELAY = 5.0
HINTS = {"spillover.io/repatriate-after": f"{DELAY:g}s"}


@pytest_asyncio.fixture(scope="module")
async def home(clusters: dict[str, Cluster], spillover: lablib.State) -> AsyncIterator[Cluster]:
    await ensure_namespace(clusters["home"], NAMESPACE, enabled=True)
    yield clusters["home"]


def available(items: list[Any]) -> int:
    """Pods the disruption controller counts healthy: Ready, not being deleted."""
    count = 0
    for pod in items:
        ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or ()))
        count += int(ready and pod.metadata.deletion_timestamp is None)
    return count


@contextlib.asynccontextmanager
async def workload(home: Cluster, max_unavailable: int) -> AsyncIterator[str]:
    """A Deployment of six 2-CPU pods and its PodDisruptionBudget, running (two of them in east)."""
    app = unique("back")
    policy = client.PolicyV1Api(home.api)
    pdb = {
        "metadata": {"name": app},
        "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": {"app": app}}},
    }
    await policy.create_namespaced_pod_disruption_budget(NAMESPACE, pdb)
    await create_deployment(home, NAMESPACE, app, REPLICAS, CPU, HINTS)
    try:

        async def running() -> list[Any] | None:
            items = await pods(home, NAMESPACE, app)
            ok = len(items) == REPLICAS and available(items) == REPLICAS
            return items if ok else None

        items = await eventually(running, 90, f"{REPLICAS} pods of {app} Running and Ready")
        spilled = [p.spec.node_name for p in items if (p.spec.node_name or "").startswith("spillover-")]
        assert spilled == ["spillover-east"] * 2, spilled

        async def counted() -> bool:  # the budget's controller has seen them all healthy
            status = (await policy.read_namespaced_pod_disruption_budget(app, NAMESPACE)).status
            return status is not None and status.current_healthy == REPLICAS

        await eventually(counted, 30, f"PodDisruptionBudget {app} counting {REPLICAS} healthy pods")
        yield app
    finally:
        await delete_deployment(home, NAMESPACE, app, timeout=90)
        with contextlib.suppress(ApiException):
            await policy.delete_namespaced_pod_disruption_budget(app, NAMESPACE)


@contextlib.asynccontextmanager
async def extra_home_node(home: Cluster) -> AsyncIterator[str]:
    """A 4-CPU kwok node joining home (kwok keeps it Ready, as hack/lab's own nodes)."""
    name = unique("home-extra")
    resources = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    body = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "type": "kwok", "spillover.io/lab-cluster": "home"},
        },
        "status": {"allocatable": resources, "capacity": resources},
    }
    await home.core.create_node(body)
    try:
        yield name
    finally:
        await home.core.delete_node(name)


async def delegates(east: Cluster, app: str) -> list[V1Pod]:
    selector = f"app.kubernetes.io/managed-by=spillover,spillover.io/proxy-uid,app={app}"
    return await pods_in_all_namespaces(east, selector)


async def reasons(home: Cluster, kinds: tuple[str, ...]) -> list[Any]:
    events = (await home.core.list_namespaced_event(NAMESPACE)).items
    return [e for e in events if e.reason in kinds and e.reporting_component == "spillover"]


async def test_spilled_pods_come_home_one_at_a_time_within_the_pdb_and_leave_nothing_in_the_peer(
    home: Cluster, clusters: dict[str, Cluster], spillover: lablib.State
) -> None:
    started = time.monotonic()
    async with workload(home, max_unavailable=1) as app:
        proxies = {
            p.metadata.name for p in await pods(home, NAMESPACE, app) if (p.spec.node_name or "").startswith("spill")
        }
        low = {"available": REPLICAS, "leaving": 0}
        watching = True

        async def watch_the_budget() -> None:
            while watching:
                items = await pods(home, NAMESPACE, app)
                low["available"] = min(low["available"], available(items))
                leaving = [p for p in items if p.metadata.name in proxies and p.metadata.deletion_timestamp]
                low["leaving"] = max(low["leaving"], len(leaving))
                await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch_the_budget())
        async with extra_home_node(home) as node:
            gained = time.monotonic()

            async def all_home() -> list[Any] | None:
                items = await pods(home, NAMESPACE, app)
                at_home = [p for p in items if p.spec.node_name and not p.spec.node_name.startswith("spillover-")]
                ok = len(items) == REPLICAS == len(at_home) and available(items) == REPLICAS
                return items if ok else None

            items = await eventually(all_home, DELAY + 40, "every pod running at home")
            took = time.monotonic() - gained
            watching = False
            await watcher
            assert sum(p.spec.node_name == node for p in items) == 2, "the two came home to the new node"
            assert low["available"] >= REPLICAS - 1, f"PodDisruptionBudget maxUnavailable 1 exceeded: {low}"
            assert low["leaving"] <= 1, "one pod of the workload at a time"
            assert not await delegates(clusters["east"], app), "the delegates went with their proxies"

            async def told() -> bool:
                found = await reasons(home, ("Repatriating", "Repatriated"))
                mine = [e for e in found if e.involved_object.name.startswith(app)]
                return len([e for e in mine if e.reason == "Repatriating"]) == 2 and len(mine) == 4

            await eventually(told, 30, "two Repatriating and two Repatriated Events", interval=0.5)
            events = await reasons(home, ("Repatriating",))
            assert all("evicted from peer east, where it cost 2/h" in e.message for e in events), events
            metrics = urllib.request.urlopen(sp.metrics_url(spillover) + "/metrics", timeout=5).read().decode()
            assert 'spillover_repatriated_pods_total{peer="east"}' in metrics
            await delete_deployment(home, NAMESPACE, app, timeout=60)  # while its node is there to end its pods
        print(f"\nrepatriation: 2 pods home {took:.1f}s after the node joined (delay {DELAY:g}s)")
    assert not await delegates(clusters["east"], app), "nothing left behind in east"
    print(f"repatriation test: {time.monotonic() - started:.1f}s")


async def test_a_budget_that_allows_no_disruption_keeps_every_spilled_pod_where_it_is_and_says_so(
    home: Cluster, clusters: dict[str, Cluster], spillover: lablib.State
) -> None:
    started = time.monotonic()
    async with workload(home, max_unavailable=0) as app:
        before = {p.metadata.uid for p in await pods(home, NAMESPACE, app)}
        async with extra_home_node(home):

            async def blocked() -> list[Any] | None:
                found = await reasons(home, ("RepatriationBlocked",))
                mine = [e for e in found if e.involved_object.name.startswith(app) and e.message.startswith("PDB:")]
                return mine or None

            (event, *_) = await eventually(blocked, DELAY + 30, "a RepatriationBlocked Event saying PDB")
            assert "The disruption budget" in event.message and event.type == "Warning"

            async def shown_blocked() -> bool:
                status = json.load(urllib.request.urlopen(sp.metrics_url(spillover) + "/status.json", timeout=5))
                rows = [row for row in status["repatriation"] if row["pod"].startswith(f"{NAMESPACE}/{app}")]
                return len(rows) == 2 and {row["state"] for row in rows} == {"blocked"}

            await eventually(shown_blocked, 10, "both spilled pods shown blocked by the PDB on /status.json")
            items = await pods(home, NAMESPACE, app)
            assert {p.metadata.uid for p in items} == before, "nothing moved"
            assert sum(p.spec.node_name == "spillover-east" for p in items) == 2
            assert len(await delegates(clusters["east"], app)) == 2
            await delete_deployment(home, NAMESPACE, app, timeout=60)
    print(f"\nrepatriation blocked by the PDB test: {time.monotonic() - started:.1f}s")
