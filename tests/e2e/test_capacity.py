"""The capacity cache against the peers themselves, after Spillover restarts while delegates run.

Lab shape: home 2 x 4 CPU; east 3 x 4 CPU; west 2 x 2 CPU. Home is filled first, so the
workload's pods spill and their delegates run in the peers when Spillover is killed.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import aiohttp
from spillover_lab import lab as lablib
from spillover_lab import spillover as sp

from extender.resources import canonical
from tests.e2e.conftest import Cluster
from tests.e2e.test_delegation import SHOP, delegates, running_proxies
from tests.e2e.waiting import eventually
from tests.e2e.workloads import create_deployment, delete_deployment, ensure_namespace, unique, wait_bound

COUNTED = ("cpu", "memory", "pods")


async def free_room_from_the_peer(peer: Cluster) -> dict[str, dict[str, int]]:
    """Each node's allocatable minus the requests of its bound, unfinished pods, as kube-scheduler
    counts them, read straight from the peer's apiserver (lab pods: plain containers)."""
    free: dict[str, dict[str, int]] = {}
    for node in (await peer.core.list_node()).items:
        offer = node.status.allocatable or {}
        free[node.metadata.name] = {r: canonical(r, offer[r]) for r in COUNTED if r in offer}
    for pod in (await peer.core.list_pod_for_all_namespaces()).items:
        if not pod.spec.node_name or pod.status.phase in ("Succeeded", "Failed"):
            continue
        room = free.setdefault(pod.spec.node_name, {})
        room["pods"] = room.get("pods", 0) - 1
        for container in pod.spec.containers:
            for name, value in ((container.resources and container.resources.requests) or {}).items():
                if name in COUNTED:
                    room[name] = room.get(name, 0) - canonical(name, value)
    return free


async def free_room_in_spillover(lab: lablib.State, peer: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sp.metrics_url(lab)}/capacity.json", params={"peer": peer}) as answer,
    ):
        assert answer.status == 200
        return dict((await answer.json())["peers"][peer])


async def test_after_a_restart_with_delegates_running_every_peer_node_is_free_exactly_by_its_pods(
    clusters: dict[str, Cluster], spillover: lablib.State
) -> None:
    home = clusters["home"]
    await ensure_namespace(home, SHOP, enabled=True)
    await ensure_namespace(home, "plain", enabled=False)
    name, filler = unique("cap"), unique("fill")
    await create_deployment(home, "plain", filler, 8, "1")
    await wait_bound(home, "plain", filler, 8)
    try:
        await create_deployment(home, SHOP, name, 4, "1")
        await running_proxies(home, name, 4)
        spilled = await delegates(clusters["east"], f"app={name}") + await delegates(clusters["west"], f"app={name}")
        assert len(spilled) == 4

        proc = sp.running_serve(spillover)
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)  # a crash: nothing is handed over, everything is re-listed
        sp.start_serve(spillover)

        for peer_name in ("east", "west"):
            peer = clusters[peer_name]

            async def agrees(peer: Cluster = peer, peer_name: str = peer_name) -> tuple[Any, Any] | None:
                cached = await free_room_in_spillover(spillover, peer_name)
                truth = await free_room_from_the_peer(peer)
                seen = {n: {r: v["free"].get(r, 0) for r in COUNTED} for n, v in cached["nodes"].items()}
                expected = {n: {r: room.get(r, 0) for r in COUNTED} for n, room in truth.items()}
                held = [n for n, v in cached["nodes"].items() if v["reserved"]]
                return (seen, expected) if seen == expected and not held and not cached["ghosts"] else None

            await eventually(agrees, 30, f"{peer_name}'s nodes as free in Spillover as their pods leave them")
        # The delegates are among what is counted: 4 CPUs of them, not 0 (as the cache once had it).
        east = await free_room_in_spillover(spillover, "east")
        west = await free_room_in_spillover(spillover, "west")
        delegated = sum(v["delegated"].get("cpu", 0) for peer in (east, west) for v in peer["nodes"].values())
        assert delegated >= 4000
    finally:
        await delete_deployment(home, SHOP, name, timeout=120)
        await delete_deployment(home, "plain", filler)
