"""Gangs against the real kube-scheduler: a member that fits at home counts, the rest spill together.

Lab shape (hack/lab/profile.yaml): home 2 x 4 CPU; east 3 x 4 CPU at cost 1; west 2 x 2 CPU at
cost 2. Home is filled (pods pinned per node, in a namespace that is not opted in) so that exactly
one 400m member fits there.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator

import pytest_asyncio
from spillover_lab import lab as lablib
from spillover_lab import spillover as sp

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import ensure_namespace, pod_template, unique

TEAM, PLAIN = "gangs", "gangs-plain"
MEMBER_CPU_M = 400


def _millis(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


async def _pod(home: Cluster, namespace: str, name: str, cpu_m: int, **spec: object) -> None:
    template = pod_template(name, f"{cpu_m}m")
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **template["metadata"]}}
    body["spec"] = {**template["spec"], **spec}
    await home.core.create_namespaced_pod(namespace, body)


@pytest_asyncio.fixture(scope="module")
async def home_with_room_for_one_member(
    clusters: dict[str, Cluster], spillover: lablib.State
) -> AsyncIterator[Cluster]:
    home = clusters["home"]
    await ensure_namespace(home, TEAM, enabled=True)
    await ensure_namespace(home, PLAIN, enabled=False)
    fillers = []
    nodes = [n for n in (await home.core.list_node()).items if n.metadata.name.startswith("home-node-")]
    every = (await home.core.list_pod_for_all_namespaces()).items
    for i, node in enumerate(sorted(nodes, key=lambda n: n.metadata.name)):
        used = sum(
            _millis((c.resources.requests or {}).get("cpu", "0"))
            for p in every
            if p.spec.node_name == node.metadata.name and p.status.phase not in ("Succeeded", "Failed")
            for c in p.spec.containers
            if c.resources
        )
        free = _millis(node.status.allocatable["cpu"]) - used
        take = free - (MEMBER_CPU_M + 100 if i == 0 else 0)  # room for one member (and not two)
        if take > 0:
            name = unique("fill")
            fillers.append(name)
            await _pod(home, PLAIN, name, take, nodeSelector={"kubernetes.io/hostname": node.metadata.name})

    async def filled() -> bool:
        listed = (await home.core.list_namespaced_pod(PLAIN)).items
        return all(any(p.metadata.name == f and p.spec.node_name for p in listed) for f in fillers)

    await eventually(filled, 60, "home filled but for one member's room")
    yield home
    for name in fillers:
        await home.core.delete_namespaced_pod(name, PLAIN, grace_period_seconds=0)


async def test_a_gang_member_that_fits_at_home_runs_there_and_the_rest_spill_together(
    home_with_room_for_one_member: Cluster, spillover: lablib.State
) -> None:
    home = home_with_room_for_one_member
    gang = unique("g3")
    hints = {"spillover.io/gang": gang, "spillover.io/gang-size": "3"}
    names = [f"{gang}-{i}" for i in range(3)]
    try:
        for name in names:
            await home.core.create_namespaced_pod(
                TEAM,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "annotations": hints},
                    "spec": pod_template(name, f"{MEMBER_CPU_M}m")["spec"],
                },
            )

        async def placed() -> dict[str, str] | None:
            listed = {p.metadata.name: p.spec.node_name for p in (await home.core.list_namespaced_pod(TEAM)).items}
            where = {n: listed.get(n) or "" for n in names}
            return where if all(where.values()) else None

        where = await eventually(placed, 90, f"every member of gang {gang} scheduled")
        at_home = [n for n, node in where.items() if node.startswith("home-node-")]
        spilled = {node for node in where.values() if not node.startswith("home-node-")}
        assert len(at_home) == 1, where  # the member that fitted at home runs there
        assert len(spilled) == 1, where  # the two others went together, to one peer
        with urllib.request.urlopen(sp.metrics_url(spillover) + "/plan.json", timeout=5) as resp:
            summary = json.load(resp)
        assert not any(gang in u["pod"] for u in summary.get("unplaced", [])), summary
    finally:
        for name in names:
            await home.core.delete_namespaced_pod(name, TEAM, grace_period_seconds=0)
