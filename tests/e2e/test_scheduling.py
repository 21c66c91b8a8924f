"""Scheduling core against the real kube-scheduler and kube-apiserver (issue: scheduling core).

Lab shape (hack/lab/profile.yaml): home 2 x 4 CPU; east 3 x 4 CPU at cost 1; west 2 x 2 CPU at
cost 2. Tests run in file order: the first ones need home's room, later ones fill home first.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from kubernetes_asyncio.client.exceptions import ApiException
from spillover_lab import lab as lablib
from spillover_lab import spillover as sp

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import (
    create_deployment,
    delete_deployment,
    ensure_namespace,
    error_text,
    events_for,
    pod_template,
    pods,
    unique,
    wait_bound,
)

SHOP = "shop"
PLAIN = "plain"


def extender_calls(state: lablib.State) -> float:
    """Sum of every extender request the server counted, read from its /metrics."""
    with urllib.request.urlopen(sp.metrics_url(state) + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("spillover_extender_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest_asyncio.fixture(scope="module")
async def home(clusters: dict[str, Cluster], spillover: lablib.State) -> AsyncIterator[Cluster]:
    await ensure_namespace(clusters["home"], SHOP, enabled=True)
    await ensure_namespace(clusters["home"], PLAIN, enabled=False)
    yield clusters["home"]


async def test_pods_outside_opted_in_namespaces_never_reach_the_extender(
    home: Cluster, spillover: lablib.State
) -> None:
    before = extender_calls(spillover)
    name = unique("plain")
    await create_deployment(home, PLAIN, name, 5, "100m")
    try:
        placed = await wait_bound(home, PLAIN, name, 5)
        assert all(node.startswith("home-node-") for node in placed.values())
        pod = (await pods(home, PLAIN, name))[0]
        assert "spillover.io/spillable" not in (pod.spec.containers[0].resources.requests or {})
    finally:
        await delete_deployment(home, PLAIN, name)
    assert extender_calls(spillover) == before


async def test_overflow_goes_to_the_cheapest_peer_with_room_and_only_the_overflow(
    home: Cluster, spillover: lablib.State
) -> None:
    before = extender_calls(spillover)
    name = unique("web")
    await create_deployment(home, SHOP, name, 12, "1")
    try:
        placed = await wait_bound(home, SHOP, name, 12, timeout=90)
        where = Counter("home" if n.startswith("home-node-") else n for n in placed.values())
        assert where == {"home": 8, "spillover-east": 4}, where
        pod = next(p for p in await pods(home, SHOP, name) if p.spec.node_name == "spillover-east")
        assert pod.spec.containers[0].resources.requests["spillover.io/spillable"] == "1"
        assert any(t.key == "spillover.io/virtual" for t in pod.spec.tolerations)
    finally:
        await delete_deployment(home, SHOP, name, timeout=90)
    assert extender_calls(spillover) > before


@pytest_asyncio.fixture(scope="module")
async def home_full(home: Cluster) -> AsyncIterator[Cluster]:
    """Fill home's 8 CPUs with pods of an unlabelled namespace, so opted-in pods must spill."""
    name = unique("filler")
    await create_deployment(home, PLAIN, name, 8, "1")
    await wait_bound(home, PLAIN, name, 8)
    yield home
    await delete_deployment(home, PLAIN, name)


async def _failed_scheduling(home: Cluster, namespace: str, pod_name: str) -> str:
    async def probe() -> str | None:
        for event in await events_for(home, namespace, pod_name):
            if event.reason == "FailedScheduling":
                return str(event.message)
        return None

    return await eventually(probe, 60, f"FailedScheduling event for {namespace}/{pod_name}")


async def test_clusters_hint_pins_pods_to_the_named_peer(home_full: Cluster) -> None:
    name = unique("pinned")
    await create_deployment(home_full, SHOP, name, 2, "500m", {"spillover.io/clusters": "west"})
    try:
        placed = await wait_bound(home_full, SHOP, name, 2)
        assert set(placed.values()) == {"spillover-west"}
    finally:
        await delete_deployment(home_full, SHOP, name)


async def test_prefer_is_a_discount_so_a_peer_twice_as_dear_loses_as_simulate_says(home_full: Cluster) -> None:
    # east costs 1, west 2: west preferred 3 to 1 counts 2 x 0.5 = 1.0 a core, east 1 x 0.83 (the
    # README's model, pricing.placement_key, what `spillover simulate` computes): east wins.
    name = unique("prefer")
    await create_deployment(home_full, SHOP, name, 2, "500m", {"spillover.io/prefer": "west=3,east=1"})
    try:
        placed = await wait_bound(home_full, SHOP, name, 2)
        assert set(placed.values()) == {"spillover-east"}, placed
    finally:
        await delete_deployment(home_full, SHOP, name)


async def test_pod_too_big_for_any_single_peer_node_is_never_placed_there(home_full: Cluster) -> None:
    # west has 2 nodes x 2 CPU: 4 CPU in sum, but no node can take 3 CPU.
    name = unique("big")
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"spillover.io/clusters": "west"}},
        **{"spec": pod_template(name, "3")["spec"]},
    }
    await home_full.core.create_namespaced_pod(SHOP, body)
    try:
        message = await _failed_scheduling(home_full, SHOP, name)
        pod = await home_full.core.read_namespaced_pod(name, SHOP)
        assert not pod.spec.node_name
        assert "spillover-west" in message or "west" in message, message
    finally:
        await home_full.core.delete_namespaced_pod(name, SHOP, grace_period_seconds=0)


async def test_local_only_pods_stay_pending_when_home_is_full(home_full: Cluster) -> None:
    name = unique("local")
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"spillover.io/policy": "local-only"}},
        "spec": pod_template(name, "1")["spec"],
    }
    await home_full.core.create_namespaced_pod(SHOP, body)
    try:
        await _failed_scheduling(home_full, SHOP, name)
        pod = await home_full.core.read_namespaced_pod(name, SHOP)
        assert not pod.spec.node_name
        assert not any(t.key == "spillover.io/virtual" for t in pod.spec.tolerations or [])
    finally:
        await home_full.core.delete_namespaced_pod(name, SHOP, grace_period_seconds=0)


async def test_invalid_hint_is_refused_by_the_real_apiserver_with_the_reason(home: Cluster) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": unique("bad"), "annotations": {"spillover.io/policy": "sometimes"}},
        "spec": pod_template("bad", "100m")["spec"],
    }
    with pytest.raises(ApiException) as err:
        await home.core.create_namespaced_pod(SHOP, body)
    assert err.value.status in (400, 403)
    assert "spillover.io/policy" in error_text(err.value) and "local-first" in error_text(err.value)


async def test_a_mixed_backlog_fills_the_cheaper_peer_then_the_next(
    home_full: Cluster, spillover: lablib.State
) -> None:
    # east: 3 x 4 CPU at cost 1; west: 2 x 2 CPU at cost 2. 12 x 1 CPU + 4 x 500m = 14 CPU.
    big, small = unique("big"), unique("small")
    await create_deployment(home_full, SHOP, big, 12, "1")
    await create_deployment(home_full, SHOP, small, 4, "500m")
    try:
        placed_big = await wait_bound(home_full, SHOP, big, 12, timeout=90)
        placed_small = await wait_bound(home_full, SHOP, small, 4, timeout=90)
        cpu = Counter[str]()
        for node in placed_big.values():
            cpu[node] += 1000
        for node in placed_small.values():
            cpu[node] += 500
        # The cheaper peer is filled until no pod fits there any more: east's own scheduler spreads
        # the pods, so 500m holes may be left that a 1-CPU pod cannot use (full to within 1 CPU).
        assert cpu["spillover-east"] >= 11000, cpu
        assert cpu["spillover-east"] + cpu["spillover-west"] == 14000, cpu  # only the rest goes on
        with urllib.request.urlopen(sp.metrics_url(spillover) + "/plan.json", timeout=5) as resp:
            assert json.load(resp)["solved"] is True
    finally:
        await delete_deployment(home_full, SHOP, big, timeout=120)
        await delete_deployment(home_full, SHOP, small, timeout=120)
