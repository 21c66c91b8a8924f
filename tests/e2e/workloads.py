"""Small builders and waits for the e2e tests: Deployments, bare pods, and their placement."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.client.models import CoreV1Event, CoreV1EventList, V1Node, V1Pod, V1PodList

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually

IMAGE = "registry.example/app:1"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def error_text(exc: ApiException) -> str:
    """What the apiserver answered, as an ApiException carries it. kubernetes_asyncio's ApiClient
    decodes it to str before re-raising (client/api_client.py, __call_api), though its stub says
    bytes; None when there was no response."""
    body: object = exc.body
    if isinstance(body, bytes):
        return body.decode(errors="replace")
    return "" if body is None else str(body)


def error_status(exc: ApiException) -> dict[str, Any]:
    """The Status object (kind Status: reason, message, details) the apiserver refused with."""
    status: dict[str, Any] = json.loads(error_text(exc))
    return status


def pod_template(
    name: str, cpu: str, annotations: dict[str, str] | None = None, memory: str = "64Mi"
) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": IMAGE, "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
        },
    }


async def ensure_namespace(home: Cluster, name: str, enabled: bool) -> None:
    labels = {"spillover.io/enabled": "true"} if enabled else {}
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    try:
        await home.core.create_namespace(body)
    except ApiException as exc:
        if exc.status != 409:
            raise

    async def has_sa() -> bool:
        try:
            await home.core.read_namespaced_service_account("default", name)
            return True
        except ApiException:
            return False

    await eventually(has_sa, 30, f"default ServiceAccount in {name}")


async def create_deployment(
    c: Cluster, namespace: str, name: str, replicas: int, cpu: str, annotations: dict[str, str] | None = None
) -> None:
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, cpu, annotations),
        },
    }
    await c.apps.create_namespaced_deployment(namespace, body)


async def pods(c: Cluster, namespace: str, app: str) -> list[V1Pod]:
    listed: V1PodList = await c.core.list_namespaced_pod(namespace, label_selector=f"app={app}")
    return listed.items


async def pods_in_all_namespaces(c: Cluster, label_selector: str) -> list[V1Pod]:
    listed: V1PodList = await c.core.list_pod_for_all_namespaces(label_selector=label_selector)
    return listed.items


async def wait_bound(c: Cluster, namespace: str, app: str, count: int, timeout: float = 60) -> dict[str, str]:
    """Wait until ``count`` live pods of the app are bound; returns pod name -> node name."""

    async def probe() -> dict[str, str] | None:
        live = [p for p in await pods(c, namespace, app) if p.metadata.deletion_timestamp is None]
        bound = {p.metadata.name: p.spec.node_name for p in live if p.spec.node_name}
        return bound if len(bound) == count and len(live) == count else None

    return await eventually(probe, timeout, f"{count} pods of {namespace}/{app} bound")


async def overflow_twelve(c: Cluster, namespace: str, name: str) -> dict[str, str]:
    """12 x 1 CPU in an opted-in namespace: the lab's home has 8 CPUs, so 8 run there and 4 spill
    to east (the cheaper peer with room). Returns pod name -> node; the caller deletes it."""
    await create_deployment(c, namespace, name, 12, "1")
    placed = await wait_bound(c, namespace, name, 12, timeout=90)
    where = Counter("home" if n.startswith("home-node-") else n for n in placed.values())
    assert where == {"home": 8, "spillover-east": 4}, where
    return placed


async def delete_deployment(c: Cluster, namespace: str, name: str, timeout: float = 60) -> None:
    await _delete_with_pods(c.apps.delete_namespaced_deployment(name, namespace, propagation_policy="Foreground"))
    await _pods_gone(c, namespace, name, timeout)


async def delete_daemonset(c: Cluster, namespace: str, name: str, timeout: float = 60) -> None:
    await _delete_with_pods(c.apps.delete_namespaced_daemon_set(name, namespace, propagation_policy="Foreground"))
    await _pods_gone(c, namespace, name, timeout)


async def _delete_with_pods(call: Awaitable[Any]) -> None:
    try:
        await call
    except ApiException as exc:
        if exc.status != 404:
            raise


async def _pods_gone(c: Cluster, namespace: str, name: str, timeout: float) -> None:
    async def gone() -> bool:
        return not await pods(c, namespace, name)

    await eventually(gone, timeout, f"pods of {namespace}/{name} deleted")


async def events_for(c: Cluster, namespace: str, pod_name: str) -> list[CoreV1Event]:
    listed: CoreV1EventList = await c.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod_name}"
    )
    return listed.items


async def wait_peer_ready(home: Cluster, peer: str, timeout: float = 90) -> None:
    """Wait until Spillover calls ``peer`` Ready and its virtual node is Ready and untainted by
    the node lifecycle (a test that restarted the peer's apiserver may have run just before)."""

    async def probe() -> bool | None:
        pc = await home.custom.get_cluster_custom_object("spillover.io", "v1alpha1", "peerclusters", peer)
        conditions = {c["type"]: c["status"] for c in (pc.get("status") or {}).get("conditions") or []}
        if conditions.get("Ready") != "True":
            return None
        node = await home.core.read_node(f"spillover-{peer}")
        ready = {c.type: c.status for c in node.status.conditions or []}.get("Ready") == "True"
        lifecycle = [t for t in node.spec.taints or [] if t.key.startswith("node.kubernetes.io/")]
        return True if ready and not lifecycle else None

    await eventually(probe, timeout, f"peer {peer} Ready with its virtual node Ready and untainted", interval=0.5)


async def pause_peer(home: Cluster, peer: str, paused: bool) -> None:
    """Pause or resume a peer and wait until Spillover acts on it (its virtual node says so): a
    pod created right after the patch could otherwise still be placed by the old setting."""
    await home.custom.patch_cluster_custom_object(
        "spillover.io",
        "v1alpha1",
        "peerclusters",
        peer,
        {"spec": {"paused": paused}},
        _content_type="application/merge-patch+json",
    )

    async def applied() -> bool:
        node: V1Node = await home.core.read_node(f"spillover-{peer}")
        ready = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
        if ready is None:
            return False
        # Paused or not, the node stays Ready (a NotReady node's pods get evicted): a paused one
        # says why it takes nothing new, and has no room.
        return ready.status == "True" and ready.reason == ("PeerPaused" if paused else "PeerReady")

    await eventually(applied, 30, f"peer {peer} {'paused' if paused else 'resumed'} on its virtual node", interval=0.2)


def spillover_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`spillover ARGS...` as a user runs it (this interpreter), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "extender", *args], capture_output=True, text=True, timeout=60, check=False
    )
