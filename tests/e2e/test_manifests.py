"""The install manifests are valid Kubernetes objects for the real apiservers (server-side dry
run: admission and schema validation, nothing changed). The lab applies their ClusterRoles and
FlowSchemas for real; this covers the Deployment, Service, PodDisruptionBudget, webhook and the
peer's token Secret, which only a cluster install uses."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import yaml
from spillover_lab import lab as lablib

REPO = Path(__file__).resolve().parents[2]


def _kubectl(state: lablib.State, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    kubectl = Path(state.data["bin_dir"]) / "kubectl"
    return subprocess.run([str(kubectl), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)


async def test_the_install_manifests_pass_the_real_apiservers_validation(spillover: lablib.State) -> None:
    lab = spillover  # installed: spillover-system exists in home (a dry run creates no namespace)
    rendered = await asyncio.to_thread(_kubectl, lab, "kustomize", str(REPO / "manifests" / "base"))
    assert rendered.returncode == 0, rendered.stderr
    # cert-manager's Issuer and Certificate need cert-manager's CRDs, which the lab does not install.
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d and not d["apiVersion"].startswith("cert-manager.io/")]
    for doc in docs:  # the lab registers its own webhook (by URL) under this name: do not merge into it
        if doc["kind"] == "MutatingWebhookConfiguration":
            doc["metadata"]["name"] += "-dry-run"
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "MutatingWebhookConfiguration", "FlowSchema"} <= kinds
    home = await asyncio.to_thread(
        _kubectl,
        lab,
        f"--kubeconfig={lab.kubeconfig('home')}",
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(docs),
    )
    assert home.returncode == 0, home.stderr
    east = f"--kubeconfig={lab.kubeconfig('east')}"
    namespace = await asyncio.to_thread(_kubectl, lab, east, "create", "namespace", "spillover-system")
    assert namespace.returncode == 0 or "AlreadyExists" in namespace.stderr, namespace.stderr
    peer = await asyncio.to_thread(
        _kubectl,
        lab,
        east,
        "apply",
        "--dry-run=server",
        "-k",
        str(REPO / "manifests" / "peer"),
    )
    assert peer.returncode == 0, peer.stderr
    assert "clusterrole.rbac.authorization.k8s.io/spillover-peer" in peer.stdout


async def test_join_refuses_a_peer_identity_that_lacks_permissions_and_names_them(spillover: lablib.State) -> None:
    # east's kube-scheduler identity may read pods and nodes but not create pods or copy Secrets.
    join = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "extender",
            "join",
            "underprivileged",
            f"--peer-kubeconfig={spillover.root / 'east' / 'scheduler.kubeconfig'}",
            f"--kubeconfig={spillover.kubeconfig('home')}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert join.returncode == 1
    assert "cannot create pods" in join.stderr and "manifests/peer" in join.stderr, join.stderr
    peerclusters = await asyncio.to_thread(
        _kubectl, spillover, f"--kubeconfig={spillover.kubeconfig('home')}", "get", "peerclusters", "-o", "name"
    )
    assert "underprivileged" not in peerclusters.stdout, "nothing is created for a peer that failed the checks"
