"""The lab runs the real control plane: controllers, scheduler, kwok and apiserver validation."""

from __future__ import annotations

import uuid

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import error_text


async def test_peer_nodes_are_kwok_nodes_and_ready(clusters: dict[str, Cluster]) -> None:
    nodes = (await clusters["east"].core.list_node(label_selector="type=kwok")).items
    assert len(nodes) == 3
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}["Ready"]
        assert ready == "True", node.metadata.name


async def test_deployment_is_expanded_scheduled_and_run_by_real_components(
    clusters: dict[str, Cluster],
) -> None:
    east = clusters["east"]
    name = f"lab-proof-{uuid.uuid4().hex[:6]}"
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "registry.example/app:1", "resources": {"requests": {"cpu": "100m"}}}
                    ]
                },
            },
        },
    }
    await east.apps.create_namespaced_deployment("default", body)
    try:

        async def running() -> list[str] | None:
            pods = (await east.core.list_namespaced_pod("default", label_selector=f"app={name}")).items
            ok = [p.spec.node_name for p in pods if p.status.phase == "Running" and p.spec.node_name]
            return ok if len(ok) == 3 else None

        nodes = await eventually(running, 60, "3 pods bound by kube-scheduler and Running via kwok")
        assert all(n.startswith("east-node-") for n in nodes)
        rs = (await east.apps.list_namespaced_replica_set("default", label_selector=f"app={name}")).items
        assert len(rs) == 1 and rs[0].metadata.owner_references[0].name == name
    finally:
        await east.apps.delete_namespaced_deployment(name, "default")


async def test_apiserver_rejects_an_invalid_object(clusters: dict[str, Cluster]) -> None:
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "Not_A_Valid_Name"},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "-1"}}}]},
    }
    with pytest.raises(ApiException) as err:
        await clusters["west"].core.create_namespaced_pod("default", bad)
    assert err.value.status == 422
    assert "Not_A_Valid_Name" in error_text(err.value)
