"""Delegation against the real lab: pods really run in peers and home tells the truth about them.

Lab shape: home 2 x 4 CPU; east 3 x 4 CPU (cost 1); west 2 x 2 CPU (cost 2); peers joined with
a 20 s grace period and Spillover runs with a 20 s remote-pending timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
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
    events_for,
    pause_peer,
    pod_template,
    pods,
    pods_in_all_namespaces,
    unique,
    wait_bound,
    wait_peer_ready,
)

SHOP = "shop"
MANAGED = "app.kubernetes.io/managed-by=spillover"
SPILLOVERS_SHOP = {"metadata": {"name": SHOP, "labels": {"app.kubernetes.io/managed-by": "spillover"}}}
"""Namespace shop in a peer as Spillover creates it (a home's delegates go only into such a namespace)."""


async def delegates(peer: Cluster, extra: str = "") -> list[V1Pod]:
    return await pods_in_all_namespaces(peer, f"{MANAGED},spillover.io/proxy-uid" + (f",{extra}" if extra else ""))


async def home_cluster_id(home: Cluster) -> str:
    """Spillover's default id for this home, on everything it makes in peers."""
    return str((await home.core.read_namespace("kube-system")).metadata.uid)


async def running_proxies(home: Cluster, app: str, count: int, timeout: float = 90) -> list[Any]:
    async def probe() -> list[Any] | None:
        live = [p for p in await pods(home, SHOP, app) if p.metadata.deletion_timestamp is None]
        ok = [p for p in live if p.status.phase == "Running" and p.spec.node_name]
        return ok if len(ok) == count and len(live) == count else None

    return await eventually(probe, timeout, f"{count} pods of {app} Running")


@pytest_asyncio.fixture(scope="module")
async def home(clusters: dict[str, Cluster], spillover: lablib.State) -> AsyncIterator[Cluster]:
    await ensure_namespace(clusters["home"], SHOP, enabled=True)
    yield clusters["home"]


async def test_overflow_runs_in_peers_and_proxies_mirror_the_delegates(
    home: Cluster, clusters: dict[str, Cluster]
) -> None:
    name = unique("web")
    await create_deployment(home, SHOP, name, 20, "1")
    try:
        proxies = await running_proxies(home, name, 20, timeout=120)
        spilled = [p for p in proxies if p.spec.node_name.startswith("spillover-")]
        assert len(spilled) == 12
        by_peer: Counter[str] = Counter()
        for peer_name in ("east", "west"):
            for d in await delegates(clusters[peer_name], f"app={name}"):
                by_peer[peer_name] += 1
                proxy = next(p for p in spilled if p.metadata.uid == d.metadata.labels["spillover.io/proxy-uid"])
                assert d.status.phase == "Running"
                assert proxy.status.pod_ip == d.status.pod_ip
                assert proxy.spec.node_name == f"spillover-{peer_name}"
                assert proxy.metadata.annotations["spillover.io/cluster"] == peer_name
        assert sum(by_peer.values()) == 12
        assert by_peer["east"] == 12  # the cheaper peer has room for all of them

        async def told() -> bool:  # Events trail the writes that make pods run
            events = await events_for(home, SHOP, spilled[0].metadata.name)
            ours = {e.reason: e.message for e in events if e.reporting_component == "spillover"}
            return "peer cluster east" in ours.get("Spilled", "") and "DelegateRunning" in ours

        await eventually(told, 30, "Spilled and DelegateRunning Events on a spilled pod", interval=0.5)
    finally:
        await delete_deployment(home, SHOP, name, timeout=120)
    assert not await delegates(clusters["east"], f"app={name}")


async def test_pod_with_configmap_and_secret_runs_in_peer_with_both_copied_then_copies_go(
    home: Cluster, clusters: dict[str, Cluster]
) -> None:
    name = unique("cfg")
    await home.core.create_namespaced_config_map(SHOP, {"metadata": {"name": name}, "data": {"mode": "blue"}})
    await home.core.create_namespaced_secret(SHOP, {"metadata": {"name": name}, "stringData": {"token": "s3cr3t"}})
    spec = pod_template(name, "100m")["spec"]
    spec["containers"][0]["envFrom"] = [{"configMapRef": {"name": name}}]
    spec["volumes"] = [{"name": "creds", "secret": {"secretName": name}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "creds", "mountPath": "/creds"}]
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": {"spillover.io/policy": "remote-only"}},
        "spec": spec,
    }
    await home.core.create_namespaced_pod(SHOP, body)
    try:
        (proxy,) = await running_proxies(home, name, 1)
        peer = clusters[proxy.metadata.annotations["spillover.io/cluster"]]
        (delegate,) = await delegates(peer, f"app={name}")
        namespace = delegate.metadata.namespace
        cm = await peer.core.read_namespaced_config_map(name, namespace)
        secret = await peer.core.read_namespaced_secret(name, namespace)
        assert cm.data == {"mode": "blue"}
        assert secret.data["token"] == "czNjcjN0"
    finally:
        await home.core.delete_namespaced_pod(name, SHOP)

    async def copies_gone() -> bool:
        try:
            await peer.core.read_namespaced_config_map(name, namespace)
            return False
        except ApiException as exc:
            return exc.status == 404

    await eventually(copies_gone, 90, "the ConfigMap copy to be collected after its only delegate went")


async def test_scale_down_removes_spilled_pods_first_and_their_delegates(
    home: Cluster, clusters: dict[str, Cluster]
) -> None:
    name = unique("scale")
    await create_deployment(home, SHOP, name, 12, "1")
    try:
        await running_proxies(home, name, 12, timeout=120)
        assert len(await delegates(clusters["east"], f"app={name}")) == 4
        await home.apps.patch_namespaced_deployment_scale(name, SHOP, {"spec": {"replicas": 4}})

        async def scaled() -> bool:
            live = [p for p in await pods(home, SHOP, name)]
            remote = await delegates(clusters["east"], f"app={name}") + await delegates(clusters["west"], f"app={name}")
            return len(live) == 4 and not remote

        await eventually(scaled, 90, "scale to 4: proxies and every delegate gone")
        assert all(p.spec.node_name.startswith("home-node-") for p in await pods(home, SHOP, name))
    finally:
        await delete_deployment(home, SHOP, name, timeout=120)


async def test_delegate_unschedulable_in_its_peer_is_withdrawn_and_placed_elsewhere(
    home: Cluster, clusters: dict[str, Cluster], lab: lablib.State
) -> None:
    # East's scheduler is stopped so the delegates wait there unscheduled; then every east node
    # is cordoned and the scheduler comes back: the delegates are Unschedulable in east. After
    # the remote-pending timeout (20 s in the lab) they must be withdrawn and the pods run in west.
    east = clusters["east"]
    filler = unique("fill")
    name = unique("stuck")
    await ensure_namespace(home, "plain", enabled=False)
    await create_deployment(home, "plain", filler, 8, "1")
    await wait_bound(home, "plain", filler, 8)
    await asyncio.to_thread(lablib.stop_component, lab, "east", "kube-scheduler")
    east_nodes = [n.metadata.name for n in (await east.core.list_node(label_selector="type=kwok")).items]
    try:
        await create_deployment(home, SHOP, name, 2, "500m")

        async def waiting_in_east() -> bool:
            return len(await delegates(east, f"app={name}")) == 2

        await eventually(waiting_in_east, 60, "two delegates waiting in east")
        for node in east_nodes:
            await east.core.patch_node(node, {"spec": {"unschedulable": True}})
        await asyncio.to_thread(lablib.start_component, lab, "east", "kube-scheduler")
        proxies = await running_proxies(home, name, 2, timeout=20 + 60)
        assert {p.spec.node_name for p in proxies} == {"spillover-west"}
        events = (await home.core.list_namespaced_event(SHOP, field_selector="reason=RemotePending")).items
        assert any(e.involved_object.name.startswith(name) for e in events)
    finally:
        await asyncio.to_thread(lablib.start_component, lab, "east", "kube-scheduler")
        for node in east_nodes:
            await east.core.patch_node(node, {"spec": {"unschedulable": False}})
        await delete_deployment(home, SHOP, name, timeout=120)
        await delete_deployment(home, "plain", filler)


async def test_lost_peer_pods_are_recreated_elsewhere_and_nothing_is_left_when_it_returns(
    home: Cluster, clusters: dict[str, Cluster], lab: lablib.State
) -> None:
    name = unique("failover")
    filler = unique("fill")
    await ensure_namespace(home, "plain", enabled=False)
    await create_deployment(home, "plain", filler, 8, "1")
    await wait_bound(home, "plain", filler, 8)
    east = clusters["east"]
    try:
        # 2 CPU in all: west (2 x 2 CPU) can take them even if earlier tests' pods are still
        # leaving it, so what is proven is the failover, not west's exact free room.
        await wait_peer_ready(home, "east")
        await create_deployment(home, SHOP, name, 4, "500m")
        proxies = await running_proxies(home, name, 4)
        assert {p.spec.node_name for p in proxies} == {"spillover-east"}
        await asyncio.to_thread(lablib.stop_component, lab, "east", "kube-apiserver")
        try:

            async def moved() -> bool:
                live = [p for p in await pods(home, SHOP, name) if p.metadata.deletion_timestamp is None]
                return len(live) == 4 and all(
                    p.status.phase == "Running"
                    and (p.spec.node_name == "spillover-west" or (p.spec.node_name or "").startswith("home-node-"))
                    for p in live
                )

            await eventually(moved, 20 + 30 + 30, "pods recreated and Running away from east", interval=1)
        finally:
            await asyncio.to_thread(lablib.start_component, lab, "east", "kube-apiserver")

        async def east_clean() -> bool:
            with contextlib.suppress(Exception):
                return not await delegates(east, f"app={name}")
            return False

        await eventually(east_clean, 120, "east's orphaned delegates collected after it returned", interval=1)

        async def told() -> bool:  # `kubectl describe peercluster east` shows it lost and back
            events = await home.core.list_namespaced_event(
                "default", field_selector="involvedObject.kind=PeerCluster,involvedObject.name=east"
            )
            return {"PeerUnreachable", "PeerReachable"} <= {e.reason for e in events.items}

        await eventually(told, 30, "PeerUnreachable and PeerReachable Events on PeerCluster east", interval=0.5)
    finally:
        await delete_deployment(home, SHOP, name, timeout=120)
        await delete_deployment(home, "plain", filler)


async def test_a_delegate_left_in_another_peer_by_an_interrupted_bind_is_removed_when_the_pod_binds(
    home: Cluster, clusters: dict[str, Cluster], spillover: lablib.State
) -> None:
    """An earlier bind created a delegate in east, then was cut off before its Binding; the retry
    binds the pod to west. The east one must go, or the pod would run twice. (West is the target:
    the lost-peer test just before restarts east's apiserver, and once in CI a pod created in east
    right after that did not run there within 90 s.)"""
    name = unique("retried")
    filler = unique("fill")
    east = clusters["east"]
    await ensure_namespace(home, "plain", enabled=False)
    await create_deployment(home, "plain", filler, 8, "1")
    await wait_bound(home, "plain", filler, 8)
    await pause_peer(home, "west", True)
    try:
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", **pod_template(name, "250m")}
        body["metadata"] = {"name": name, "labels": {"app": name}, "annotations": {"spillover.io/clusters": "west"}}
        proxy = await home.core.create_namespaced_pod(SHOP, body)
        with contextlib.suppress(ApiException):
            await east.core.create_namespace(SPILLOVERS_SHOP)
        leftover = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-leftover",
                "labels": {
                    "app": name,
                    "app.kubernetes.io/managed-by": "spillover",
                    "spillover.io/home-cluster": await home_cluster_id(home),
                    "spillover.io/proxy-uid": proxy.metadata.uid,
                    "spillover.io/home-namespace": SHOP,
                    "spillover.io/home-name": name,
                },
            },
            "spec": pod_template(name, "250m")["spec"],
        }
        await east.core.create_namespaced_pod(SHOP, leftover)
        assert not (await home.core.read_namespaced_pod(name, SHOP)).spec.node_name, "west is paused: no bind yet"

        await pause_peer(home, "west", False)
        await running_proxies(home, name, 1, timeout=90)

        async def leftover_gone() -> bool | None:
            return True if not await delegates(east, f"app={name}") else None

        # Well inside the sweep's 30 s minimum age: the bind itself removed it.
        await eventually(leftover_gone, 20, "the delegate left in east removed")
        assert len(await delegates(clusters["west"], f"app={name}")) == 1
    finally:
        await pause_peer(home, "west", False)
        with contextlib.suppress(ApiException):
            await home.core.delete_namespaced_pod(name, SHOP, grace_period_seconds=0)
        await delete_deployment(home, "plain", filler)


async def test_a_pod_bound_to_a_virtual_node_with_no_delegate_is_failed_not_left_pending(home: Cluster) -> None:
    """Proxies are found by the node they are bound to, so a pod on a virtual node with no delegate
    behind it (a bind cut off after its delegate was swept, or a hand-set nodeName) must not sit
    Pending forever: it is failed with a reason, and a controller would recreate it."""
    name = unique("stray")
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", **pod_template(name, "100m")}
    body["metadata"]["name"] = name
    body["spec"]["nodeName"] = "spillover-west"
    await home.core.create_namespaced_pod(SHOP, body)
    try:

        async def failed() -> Any:
            pod = await home.core.read_namespaced_pod(name, SHOP)
            return pod if pod.status.phase == "Failed" else None

        pod = await eventually(failed, 75, f"{name} failed for want of a delegate")
        assert pod.status.reason == "DelegateMissing"
        assert "no delegate exists" in pod.status.message
    finally:
        with contextlib.suppress(ApiException):
            await home.core.delete_namespaced_pod(name, SHOP, grace_period_seconds=0)


async def test_deleting_a_peercluster_fails_its_pods_over_and_leaves_nothing_of_spillovers_in_that_peer(
    home: Cluster, clusters: dict[str, Cluster], spillover: lablib.State
) -> None:
    """The PeerCluster waits on Spillover's finalizer while its pods are failed over (a
    Deployment's recreated elsewhere, a bare pod Failed with the reason) and every delegate and
    copy of this home's is deleted in the peer, while those another home sharing the peer made
    there stay; then it goes, with its virtual node. West is joined again after."""
    name = unique("detach")
    bare = f"{name}-bare"
    west = clusters["west"]
    ours = f"spillover.io/home-cluster={await home_cluster_id(home)}"
    theirs = {"app.kubernetes.io/managed-by": "spillover", "spillover.io/home-cluster": "another-home"}
    with contextlib.suppress(ApiException):
        await west.core.create_namespace(SPILLOVERS_SHOP)
    foreign_pod = {"metadata": {"name": name, "labels": {**theirs, "spillover.io/proxy-uid": "0000-elsewhere"}}}
    foreign_pod["spec"] = pod_template(name, "10m")["spec"]
    await west.core.create_namespaced_pod(SHOP, foreign_pod)
    foreign_copy = {"metadata": {"name": name, "labels": {**theirs, "spillover.io/copy": "true"}}, "data": {"a": "1"}}
    await west.core.create_namespaced_config_map(SHOP, foreign_copy)
    remote_only = {"spillover.io/policy": "remote-only"}
    await home.core.create_namespaced_config_map(SHOP, {"metadata": {"name": bare}, "data": {"mode": "blue"}})
    await pause_peer(home, "east", True)
    try:
        await create_deployment(home, SHOP, name, 2, "250m", remote_only)
        spec = pod_template(bare, "100m")["spec"]
        spec["containers"][0]["envFrom"] = [{"configMapRef": {"name": bare}}]
        body = {"metadata": {"name": bare, "labels": {"app": bare}, "annotations": remote_only}, "spec": spec}
        await home.core.create_namespaced_pod(SHOP, body)
        await running_proxies(home, name, 2)
        await running_proxies(home, bare, 1)
        assert len(await delegates(west, f"app in ({name},{bare})")) == 3, "east is paused: all three run in west"
        copied = await west.core.list_config_map_for_all_namespaces(label_selector=f"spillover.io/copy=true,{ours}")
        assert [c.metadata.name for c in copied.items] == [bare], "the bare pod's ConfigMap is copied to west"
        await pause_peer(home, "east", False)
        pc = await home.custom.get_cluster_custom_object("spillover.io", "v1alpha1", "peerclusters", "west")
        assert "spillover.io/detach" in pc["metadata"]["finalizers"]

        leave = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "extender",
            "leave",
            "west",
            f"--kubeconfig={spillover.kubeconfig('home')}",
            "--timeout=90",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

        async def bare_failed() -> bool:
            pod: V1Pod = await home.core.read_namespaced_pod(bare, SHOP)
            return pod.status.phase == "Failed" and pod.status.reason == "PeerDetached"

        await eventually(bare_failed, 30, "the bare pod Failed with reason PeerDetached", interval=0.5)

        async def detached() -> bool:
            reads: tuple[Callable[[], Awaitable[object]], ...] = (
                lambda: home.custom.get_cluster_custom_object("spillover.io", "v1alpha1", "peerclusters", "west"),
                lambda: home.core.read_node("spillover-west"),
            )
            for read in reads:
                try:
                    await read()
                    return False
                except ApiException as exc:
                    if exc.status != 404:
                        raise
            return True

        await eventually(detached, 90, "PeerCluster west and its virtual node gone", interval=0.5)
        out, err = await asyncio.wait_for(leave.communicate(), 30)
        assert leave.returncode == 0, err.decode()
        assert "peercluster/west deleted: nothing of Spillover's is left in the peer" in out.decode()
        with pytest.raises(ApiException):  # `spillover join` made it, `spillover leave` removed it
            await home.core.read_namespaced_secret("peer-west-kubeconfig", "spillover-system")
        assert not await delegates(west, ours), "no delegate of this home's left in west"
        copies = await west.core.list_config_map_for_all_namespaces(label_selector=f"spillover.io/copy=true,{ours}")
        assert not copies.items, "no copy of this home's left in west"
        assert (await west.core.read_namespaced_pod(name, SHOP)).metadata.deletion_timestamp is None
        assert (await west.core.read_namespaced_config_map(name, SHOP)).data == {"a": "1"}, "another home's stay"

        async def moved() -> bool:
            live = [p for p in await pods(home, SHOP, name) if p.metadata.deletion_timestamp is None]
            return len(live) == 2 and all(
                p.status.phase == "Running" and p.spec.node_name == "spillover-east" for p in live
            )

        await eventually(moved, 60, "the Deployment's pods recreated and Running in east", interval=0.5)
        metrics = await asyncio.to_thread(_scrape, sp.metrics_url(spillover) + "/metrics")
        assert metrics.get('spillover_delegates_lost_total{peer="west",reason="PeerDetached"}', 0) >= 3
    finally:
        with contextlib.suppress(ApiException):
            await pause_peer(home, "east", False)
        await asyncio.to_thread(sp.join_peers, spillover, {"west": sp.PEERS["west"]})
        await wait_peer_ready(home, "west")
        await delete_deployment(home, SHOP, name)
        with contextlib.suppress(ApiException):
            await home.core.delete_namespaced_pod(bare, SHOP, grace_period_seconds=0)
        await home.core.delete_namespaced_config_map(bare, SHOP)
        with contextlib.suppress(ApiException):
            await west.core.delete_namespaced_pod(name, SHOP, grace_period_seconds=0)
        with contextlib.suppress(ApiException):
            await west.core.delete_namespaced_config_map(name, SHOP)


def _scrape(url: str) -> dict[str, float]:
    """Spillover's /metrics as series -> value."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out
