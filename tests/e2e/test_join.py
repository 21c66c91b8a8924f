"""`spillover join` again (to rotate a kubeconfig) keeps every PeerCluster setting not given."""

from __future__ import annotations

import asyncio

from spillover_lab import lab as lablib
from spillover_lab import spillover as sp

from tests.e2e.conftest import Cluster
from tests.e2e.workloads import spillover_cli

PEERCLUSTERS = ("spillover.io", "v1alpha1", "peerclusters")


async def test_joining_again_with_only_a_kubeconfig_keeps_cost_price_per_gib_and_grace_period(
    clusters: dict[str, Cluster], spillover: lablib.State
) -> None:
    home = clusters["home"]
    before = await home.custom.get_cluster_custom_object(*PEERCLUSTERS, "east")
    changed = {"cost": 2, "costPerGiB": 0.5, "gracePeriodSeconds": 25}
    await home.custom.patch_cluster_custom_object(
        *PEERCLUSTERS, "east", {"spec": changed}, _content_type="application/merge-patch+json"
    )
    try:
        join = await asyncio.to_thread(
            spillover_cli,
            "join",
            "east",
            f"--peer-kubeconfig={await asyncio.to_thread(sp.peer_kubeconfig, spillover, 'east')}",
            f"--kubeconfig={spillover.kubeconfig('home')}",
        )
        assert join.returncode == 0, join.stderr
        assert "peercluster/east updated (kept as they were: cost, costPerGiB, costPerGPU, tier" in join.stdout
        after = (await home.custom.get_cluster_custom_object(*PEERCLUSTERS, "east"))["spec"]
        assert {key: after[key] for key in changed} == changed
        assert after["tier"] == before["spec"]["tier"]
    finally:
        restore = {key: before["spec"].get(key) for key in changed}
        await home.custom.patch_cluster_custom_object(
            *PEERCLUSTERS, "east", {"spec": restore}, _content_type="application/merge-patch+json"
        )
