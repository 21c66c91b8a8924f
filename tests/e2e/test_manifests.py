"""The install manifests in the real apiservers. The lab applies every object of the install
mode it runs, and manifests/peer in each peer, for real (hack/lab/spillover_lab/spillover.py);
what it does not apply, the Deployments (it runs their containers itself), must pass the real
apiserver's validation and admission in a server-side dry run, for both modes."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import yaml
from spillover_lab import lab as lablib
from spillover_lab import manifests

from tests.e2e.workloads import spillover_cli

REPO = Path(__file__).resolve().parents[2]


def _kubectl(state: lablib.State, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    kubectl = Path(state.data["bin_dir"]) / "kubectl"
    return subprocess.run([str(kubectl), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("mode", [*manifests.MODES, *(f"kubelet-api/{m}" for m in manifests.MODES)])
async def test_each_install_modes_deployment_passes_the_real_apiservers_validation(
    spillover: lablib.State, mode: str
) -> None:
    lab = spillover  # installed: spillover-system exists in home (a dry run creates no namespace)
    docs = await asyncio.to_thread(manifests.render, Path(lab.data["bin_dir"]) / "kubectl", REPO / "manifests" / mode)
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 1
    home = await asyncio.to_thread(
        _kubectl,
        lab,
        f"--kubeconfig={lab.kubeconfig('home')}",
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(deployments),
    )
    assert home.returncode == 0, home.stderr
    assert f"deployment.apps/{deployments[0]['metadata']['name']} created (server dry run)" in home.stdout


async def test_join_refuses_a_peer_identity_that_lacks_permissions_and_names_them(spillover: lablib.State) -> None:
    # east's kube-scheduler identity may read pods and nodes but not create pods or copy Secrets.
    join = await asyncio.to_thread(
        spillover_cli,
        "join",
        "underprivileged",
        f"--peer-kubeconfig={spillover.root / 'east' / 'scheduler.kubeconfig'}",
        f"--kubeconfig={spillover.kubeconfig('home')}",
    )
    assert join.returncode == 1
    assert "cannot create pods" in join.stderr and "manifests/peer" in join.stderr, join.stderr
    peerclusters = await asyncio.to_thread(
        _kubectl, spillover, f"--kubeconfig={spillover.kubeconfig('home')}", "get", "peerclusters", "-o", "name"
    )
    assert "underprivileged" not in peerclusters.stdout, "nothing is created for a peer that failed the checks"
