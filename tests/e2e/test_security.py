"""The attacks of issue 11, each tried against the real lab as a tenant would, each refused with
its reason and nothing created in a peer (the extender's transport has tests of its own).

Lab shape: home 2 x 4 CPU; east 3 x 4 CPU (cost 1); west 2 x 2 CPU (cost 2); both peers at the
default Pod Security level, baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.client.models import V1Pod
from spillover_lab import lab as lablib

from extender import pod_security
from extender.pod_security import Level
from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import (
    IMAGE,
    ensure_namespace,
    error_status,
    error_text,
    events_for,
    pods_in_all_namespaces,
    unique,
)
from tests.pod_security_cases import CASES

SHOP = "shop"
PLAIN = "plain"
MANAGED = "app.kubernetes.io/managed-by=spillover"
EAST_ONLY = {"spillover.io/policy": "remote-only", "spillover.io/clusters": "east"}
MARKER = {"spillover.io/spillable": "1"}
VIRTUAL_TOLERATION = {"key": "spillover.io/virtual", "operator": "Exists", "effect": "NoSchedule"}
ONLY_VIRTUAL_NODES = {"spillover.io/virtual": "true"}
"""A nodeSelector only virtual nodes match: the scheduler's own filters leave it nothing else."""


def call_extender(lab: lablib.State, verb: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST to the extender as anyone on the host can (the lab serves it on loopback, plain HTTP)."""
    url = f"http://127.0.0.1:{lab.ports('home')['extender']}/{verb}"
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def pod(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    container = {"name": "app", "image": IMAGE, "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations or {}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [container], **spec},
    }


async def failed_scheduling(home: Cluster, namespace: str, name: str, wanted: str) -> str:
    """The pod's FailedScheduling message once it says ``wanted`` (kube-scheduler's word, from filter or bind)."""

    async def probe() -> str | None:
        for event in await events_for(home, namespace, name):
            if event.reason == "FailedScheduling" and wanted in (event.message or ""):
                return str(event.message)
        return None

    return await eventually(probe, 60, f"FailedScheduling of {namespace}/{name} saying {wanted!r}", interval=0.3)


async def delegates(peer: Cluster, app: str) -> list[V1Pod]:
    return await pods_in_all_namespaces(peer, f"{MANAGED},app={app}")


async def delete_pods(c: Cluster, namespace: str, *names: str) -> None:
    for name in names:
        with contextlib.suppress(ApiException):
            await c.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


@pytest_asyncio.fixture(scope="module")
async def home(clusters: dict[str, Cluster], spillover: lablib.State) -> AsyncIterator[Cluster]:
    await ensure_namespace(clusters["home"], SHOP, enabled=True)
    await ensure_namespace(clusters["home"], PLAIN, enabled=False)
    yield clusters["home"]


async def test_a_pod_outside_opted_in_namespaces_neither_prepares_itself_nor_is_bound_by_a_forged_call(
    home: Cluster, clusters: dict[str, Cluster], spillover: lablib.State
) -> None:
    # Attack 2: a pod that carries the marker and the toleration itself, in a namespace not opted in.
    bypass = pod(unique("bypass"), EAST_ONLY, container={"resources": {"requests": MARKER, "limits": MARKER}})
    with pytest.raises(ApiException) as refused:
        await home.core.create_namespaced_pod(PLAIN, bypass)
    assert refused.value.status == 403
    assert "namespace plain is not opted in to Spillover" in error_text(refused.value)
    assert "may not request the spillover.io/spillable resource" in error_text(refused.value)
    with pytest.raises(ApiException) as refused:
        await home.core.create_namespaced_pod(PLAIN, pod(unique("bypass"), tolerations=[VIRTUAL_TOLERATION]))
    assert "may not tolerate the spillover.io/virtual taint" in error_text(refused.value)

    # A namespace opted out after its pods were prepared: they are kept off the peers.
    optout = unique("optout")
    await ensure_namespace(home, optout, enabled=True)
    held = pod(unique("held"), EAST_ONLY, nodeSelector=ONLY_VIRTUAL_NODES, schedulingGates=[{"name": "test/hold"}])
    await home.core.create_namespaced_pod(optout, held)
    # Attack 1: unprepared pods, one pending for want of a node, bound by anyone who reaches the extender.
    stray = pod(unique("stray"), nodeSelector={"disk": "none-has-this"})
    await home.core.create_namespaced_pod(PLAIN, stray)
    misfit = pod(unique("misfit"), nodeSelector={"disk": "none-has-this"})
    await home.core.create_namespaced_pod(SHOP, misfit)
    try:
        await home.core.patch_namespace(optout, {"metadata": {"labels": {"spillover.io/enabled": None}}})
        await home.core.patch_namespaced_pod(held["metadata"]["name"], optout, {"spec": {"schedulingGates": None}})
        message = await failed_scheduling(home, optout, held["metadata"]["name"], "not opted in")
        assert f"namespace {optout} is not opted in to Spillover (label spillover.io/enabled=true)" in message

        forged = [
            (PLAIN, stray, "home-node-1", "does not request spillover.io/spillable"),
            (PLAIN, stray, "spillover-east", "does not request spillover.io/spillable"),
            (SHOP, misfit, "home-node-1", "does not fit node home-node-1: node selector mismatch"),
            (optout, held, "spillover-east", f"namespace {optout} is not opted in to Spillover"),
        ]
        for namespace, target, node, why in forged:
            live = await home.core.read_namespaced_pod(target["metadata"]["name"], namespace)
            args = {"PodName": live.metadata.name, "PodNamespace": namespace, "PodUID": live.metadata.uid, "Node": node}
            answer = await asyncio.to_thread(call_extender, spillover, "bind", args)
            assert why in answer["Error"], (node, answer)
            assert not (await home.core.read_namespaced_pod(live.metadata.name, namespace)).spec.node_name
        for peer in ("east", "west"):
            for target in (stray, misfit, held):
                assert not await delegates(clusters[peer], target["metadata"]["name"])
    finally:
        await delete_pods(home, PLAIN, stray["metadata"]["name"])
        await delete_pods(home, SHOP, misfit["metadata"]["name"])
        with contextlib.suppress(ApiException):
            await home.core.delete_namespace(optout)


async def test_a_peer_runs_only_what_its_owner_accepts_and_lends_none_of_its_own_objects(
    home: Cluster, clusters: dict[str, Cluster]
) -> None:
    east = clusters["east"]
    # A pod that baseline admits spills: east's shop namespace is Spillover's, labelled baseline.
    fine = unique("fine")
    await home.core.create_namespaced_pod(SHOP, pod(fine, EAST_ONLY))
    team = unique("team")  # a home namespace whose name a team of the peer uses too
    await ensure_namespace(home, team, enabled=True)
    await east.core.create_namespace({"metadata": {"name": team, "labels": {"owner": "peer-team"}}})
    await east.core.create_namespaced_secret(team, {"metadata": {"name": "db"}, "stringData": {"password": "theirs"}})
    takeover, borrower, intruder = unique("takeover"), unique("borrower"), unique("intruder")
    try:

        async def running() -> bool:
            pod: V1Pod = await home.core.read_namespaced_pod(fine, SHOP)
            return pod.status.phase == "Running"

        await eventually(running, 60, f"{fine} Running in east")
        labels = (await east.core.read_namespace(SHOP)).metadata.labels
        assert labels["app.kubernetes.io/managed-by"] == "spillover"
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "baseline"
        # The peer's own apiserver enforces it, whoever asks.
        with pytest.raises(ApiException) as refused:
            privileged = pod("x", container={"securityContext": {"privileged": True}})
            await east.core.create_namespaced_pod(SHOP, privileged, dry_run="All")
        assert 'violates PodSecurity "baseline:latest"' in error_status(refused.value)["message"]

        # Attack 3: node takeover from a baseline peer. Kept home, with PodSecurity's own words.
        root = {"securityContext": {"privileged": True}, "volumeMounts": [{"name": "root", "mountPath": "/host"}]}
        host = {"hostNetwork": True, "hostPID": True, "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}
        await home.core.create_namespaced_pod(SHOP, pod(takeover, EAST_ONLY, container=root, **host))
        message = await failed_scheduling(home, SHOP, takeover, "Pod Security")
        assert 'peer east enforces Pod Security "baseline" (PeerCluster spec.podSecurity)' in message
        for part in ("host namespaces (hostNetwork=true, hostPID=true)", 'hostPath volumes (volume "root")'):
            assert part in message
        assert 'privileged (container "app" must not set securityContext.privileged=true)' in message

        # Attack 4: a peer team's Secret, mounted by name: neither in their namespace nor in Spillover's.
        await east.core.create_namespaced_secret(SHOP, {"metadata": {"name": intruder}, "stringData": {"k": "theirs"}})
        mount = {"volumeMounts": [{"name": "db", "mountPath": "/db"}]}
        for namespace, name, secret in ((SHOP, intruder, intruder), (team, borrower, "db")):
            volumes = [{"name": "db", "secret": {"secretName": secret}}]
            await home.core.create_namespaced_pod(namespace, pod(name, EAST_ONLY, container=mount, volumes=volumes))
        message = await failed_scheduling(home, SHOP, intruder, "not copied there by Spillover")
        assert f"Secret {SHOP}/{intruder} in peer east was not copied there by Spillover" in message
        message = await failed_scheduling(home, team, borrower, "Spillover did not create")
        assert f"namespace {team} exists in peer east and Spillover did not create it" in message

        for name in (takeover, intruder, borrower):
            assert not await delegates(east, name) and not await delegates(clusters["west"], name)
        assert not (await east.core.list_namespaced_pod(team)).items
        untouched = (await east.core.read_namespace(team)).metadata.labels
        assert untouched["owner"] == "peer-team" and not any(key.startswith("pod-security") for key in untouched)
        theirs = await east.core.read_namespaced_secret(intruder, SHOP)
        assert not (theirs.metadata.labels or {}) and theirs.data == {"k": "dGhlaXJz"}
    finally:
        await delete_pods(home, SHOP, fine, takeover, intruder)
        await delete_pods(home, team, borrower)
        with contextlib.suppress(ApiException):
            await east.core.delete_namespaced_secret(intruder, SHOP)
        with contextlib.suppress(ApiException):
            await east.core.delete_namespace(team)


async def test_our_pod_security_checks_say_what_the_real_podsecurity_admission_says(home: Cluster) -> None:
    """Every case of tests/pod_security_cases.py, in the shape the apiserver stores it (its defaults
    applied, as kube-scheduler sends pods to filter), at baseline and restricted."""
    for level in (Level.BASELINE, Level.RESTRICTED):
        labels = {"pod-security.kubernetes.io/enforce": str(level)}
        with contextlib.suppress(ApiException):
            await home.core.create_namespace({"metadata": {"name": f"pss-{level}", "labels": labels}})
    for case in CASES:
        response = await home.core.create_namespaced_pod(PLAIN, case.pod(), dry_run="All", _preload_content=False)
        stored = json.loads(await response.read())
        for level in (Level.BASELINE, Level.RESTRICTED):
            ours = pod_security.describe(pod_security.violations(pod_security.from_dict(stored), level))
            try:
                await home.core.create_namespaced_pod(f"pss-{level}", case.pod(), dry_run="All")
                theirs = ""
            except ApiException as exc:
                assert exc.status == 403, exc.body
                theirs = error_status(exc)["message"].split(f'violates PodSecurity "{level}:latest": ', 1)[1]
            assert ours == theirs, f"{case.name} at {level}"
