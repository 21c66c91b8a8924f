"""The default install mode (manifests/own-scheduler), as the lab runs it from the manifests:
home's own kube-scheduler has no extender; the second kube-scheduler, started from the
manifest's KubeSchedulerConfiguration beside Spillover, schedules the opted-in pods, which the
webhook handed to it, and spills them over; everything else is the cluster's scheduler's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from spillover_lab import lab as lablib
from spillover_lab import spillover as sp

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import (
    IMAGE,
    create_deployment,
    delete_deployment,
    ensure_namespace,
    overflow_twelve,
    pod_template,
    pods,
    unique,
    wait_bound,
)

SHOP = "shop"
PLAIN = "plain"
MARKER = "spillover.io/spillable"


@pytest_asyncio.fixture(scope="module")
async def home(clusters: dict[str, Cluster], spillover: lablib.State) -> AsyncIterator[Cluster]:
    assert sp.current_mode(spillover) == "own-scheduler"
    await ensure_namespace(clusters["home"], SHOP, enabled=True)
    await ensure_namespace(clusters["home"], PLAIN, enabled=False)
    yield clusters["home"]


async def scheduled_by(c: Cluster, namespace: str, pod_name: str) -> set[str]:
    """Who reported the pod's Scheduled event (the scheduler's profile name)."""
    events = await c.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod_name}")
    return {e.reporting_component or e.source.component for e in events.items if e.reason == "Scheduled"}


async def test_the_own_scheduler_schedules_and_spills_opted_in_pods_and_the_clusters_scheduler_the_rest(
    home: Cluster,
) -> None:
    spilled, plain = unique("web"), unique("plain")
    try:
        await overflow_twelve(home, SHOP, spilled)
        opted = await pods(home, SHOP, spilled)
        assert {p.spec.scheduler_name for p in opted} == {"spillover"}
        one = opted[0].metadata.name

        async def reported() -> set[str] | None:
            return await scheduled_by(home, SHOP, one) or None

        assert await eventually(reported, 30, "the Scheduled event") == {"spillover"}
    finally:
        await delete_deployment(home, SHOP, spilled)
    await create_deployment(home, PLAIN, plain, 2, "100m")
    try:
        await wait_bound(home, PLAIN, plain, 2)
        others = await pods(home, PLAIN, plain)
        assert {p.spec.scheduler_name for p in others} == {"default-scheduler"}
        assert all(MARKER not in (p.spec.containers[0].resources.requests or {}) for p in others)
        name = others[0].metadata.name

        async def reported_plain() -> set[str] | None:
            return await scheduled_by(home, PLAIN, name) or None

        assert await eventually(reported_plain, 30, "the Scheduled event") == {"default-scheduler"}
    finally:
        await delete_deployment(home, PLAIN, plain)


async def test_an_opted_in_pod_naming_another_scheduler_is_left_alone_with_the_reason(home: Cluster) -> None:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": unique("gang")}}
    body["spec"] = {**pod_template("gang", "100m")["spec"], "schedulerName": "volcano"}
    pod = await home.core.create_namespaced_pod(SHOP, body)
    try:
        assert "volcano" in pod.metadata.annotations["spillover.io/skipped"]
        assert MARKER not in (pod.spec.containers[0].resources.requests or {})
        assert not any(t.key == "spillover.io/virtual" for t in pod.spec.tolerations or [])
        assert pod.spec.scheduler_name == "volcano"
    finally:
        await home.core.delete_namespaced_pod(pod.metadata.name, SHOP, grace_period_seconds=0)


async def test_a_spilled_job_completes_as_a_job_at_home_does_and_its_delegates_go_with_it(
    home: Cluster, clusters: dict[str, Cluster]
) -> None:
    name = unique("batch")
    template = pod_template(name, "500m", {"spillover.io/policy": "remote-only"})
    template["spec"]["restartPolicy"] = "Never"
    template["spec"]["containers"][0]["image"] = IMAGE
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"parallelism": 6, "completions": 6, "backoffLimit": 0, "template": template},
    }
    jobs = client.BatchV1Api(home.api)
    await jobs.create_namespaced_job(SHOP, job)
    try:

        async def complete() -> Any:
            status = (await jobs.read_namespaced_job_status(name, SHOP)).status
            return status if (status.succeeded or 0) == 6 else None

        status = await eventually(complete, 90, f"Job {name} 6/6 succeeded")
        assert not status.failed
        proxies = await pods(home, SHOP, name)
        assert len(proxies) == 6 and all(p.spec.node_name.startswith("spillover-") for p in proxies)
        assert {p.status.phase for p in proxies} == {"Succeeded"}
    finally:
        try:
            await jobs.delete_namespaced_job(name, SHOP, propagation_policy="Foreground")
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def peers_empty() -> bool:
        for peer in ("east", "west"):
            left = await clusters[peer].core.list_pod_for_all_namespaces(label_selector=f"job-name={name}")
            if left.items:
                return False
        return True

    await eventually(peers_empty, 60, "no delegate of the Job left in the peers")
