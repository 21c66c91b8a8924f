"""The admission policies of manifests/policies do what the webhook does, inside the apiserver.

The same pods go through the real apiserver twice: once with Spillover's webhook, once with the
MutatingAdmissionPolicy and ValidatingAdmissionPolicy of manifests/policies instead, handing pods
to the same scheduler (the lab runs the own-scheduler install: its scheduler is spillover). Each
pod comes out the same both ways, and each bad hint is refused with the same message. Then
Spillover is stopped: with the policies every pod is created, prepared; with the webhook every
pod is refused, with a message that says what is wrong and how to get out. Those counts are the
README's.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from kubernetes_asyncio.client.exceptions import ApiException
from spillover_lab import faults
from spillover_lab import lab as lablib
from spillover_lab import spillover as sp

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import ensure_namespace, error_status, unique

NS = "admission"
ADMISSION = ("admissionregistration.k8s.io", "v1")
MARKER = "spillover.io/spillable"
CREATED_WHILE_DOWN = 10
WEBHOOK = "spillover.io"
"""The MutatingWebhookConfiguration's name (manifests/base/webhook.yaml)."""


def _pod(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "automountServiceAccountToken": False,  # its volume's name is random: not what is compared
            "containers": [{"name": "app", "image": "registry.example/app:1"}],
            **spec,
        },
    }
    return body


def _container(name: str, resources: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "image": "registry.example/app:1"}
    if resources is not None:
        out["resources"] = resources
    return out


VIRTUAL = {"key": "spillover.io/virtual", "operator": "Exists", "effect": "NoSchedule"}
GOOD = [
    _pod("plain"),
    _pod("requests", containers=[_container("app", {"requests": {"cpu": "100m", "memory": "64Mi"}})]),
    _pod("limits-only", containers=[_container("app", {"limits": {"cpu": "1"}})]),
    _pod(
        "prepared",
        tolerations=[VIRTUAL],
        containers=[_container("app", {"requests": {MARKER: "1"}, "limits": {MARKER: "1"}})],
    ),
    _pod("marker-wrong", containers=[_container("app", {"requests": {MARKER: "2"}, "limits": {MARKER: "2"}})]),
    _pod("tolerations", tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]),
    _pod("two-containers", containers=[_container("app"), _container("sidecar", {"requests": {"cpu": "10m"}})]),
    _pod("local-only", {"spillover.io/policy": "local-only"}),
    _pod("remote-first", {"spillover.io/policy": " remote-first ", "spillover.io/prefer": "east=3, west=1"}),
    _pod("other-scheduler", schedulerName="gang-scheduler"),
    _pod(
        "every-hint",
        {
            "spillover.io/clusters": "east,west",
            "spillover.io/avoid-clusters": "west",
            "spillover.io/max-cost": "1.5",
            "spillover.io/gang": "train",
            "spillover.io/gang-size": "4",
            "spillover.io/failover": "never",
        },
    ),
]
BAD = [
    {"spillover.io/policy": "local-last"},
    {"spillover.io/clusters": "East"},
    {"spillover.io/clusters": ""},
    {"spillover.io/avoid-clusters": "east,"},
    {"spillover.io/clusters": "west, east", "spillover.io/avoid-clusters": "east,west"},
    {"spillover.io/prefer": "west"},
    {"spillover.io/prefer": "west=101"},
    {"spillover.io/prefer": "a=1,b=2,b=3,a=4"},
    {"spillover.io/max-cost": "-1"},
    {"spillover.io/max-cost": "1e3"},
    {"spillover.io/gang": "Train"},
    {"spillover.io/gang": "train", "spillover.io/gang-size": "0"},
    {"spillover.io/gang": "train"},
    {"spillover.io/gang-size": "3"},
    {"spillover.io/failover": "sometimes"},
    {"spillover.io/policy": "nope", "spillover.io/failover": "sometimes"},
]


async def _admit(home: Cluster, body: dict[str, Any]) -> dict[str, Any] | str:
    """The pod as the apiserver would store it (a dry run: admission all the way), or why refused."""
    try:
        response = await home.core.create_namespaced_pod(NS, copy.deepcopy(body), dry_run="All", _preload_content=False)
    except ApiException as exc:
        return str(error_status(exc)["message"])
    pod = json.loads(await response.read())
    if pod.get("kind") == "Status":  # a refusal, as the raw response carries it
        return str(pod["message"])
    return {"spec": pod["spec"], "annotations": pod["metadata"].get("annotations")}


def _why(refusal: str) -> str:
    """The refusal's own words, without who refused (the webhook's or a policy's preamble)."""
    for marker in ("denied the request: ", "denied request: "):
        if marker in refusal:
            return refusal.split(marker, 1)[1]
    return refusal


def _differences(webhook: dict[str, Any] | str, policy: dict[str, Any] | str) -> str:
    if isinstance(webhook, str) or isinstance(policy, str):
        return f"webhook: {webhook!r}; policies: {policy!r}"
    keys = sorted({*webhook["spec"], *policy["spec"]})
    spec = {
        k: (webhook["spec"].get(k), policy["spec"].get(k))
        for k in keys
        if webhook["spec"].get(k) != policy["spec"].get(k)
    }
    return f"spec (webhook, policies): {spec}; annotations: {webhook['annotations']} / {policy['annotations']}"


async def _all(home: Cluster) -> tuple[list[dict[str, Any] | str], list[str]]:
    good = [await _admit(home, pod) for pod in GOOD]
    bad = [await _admit(home, _pod(f"bad-{i}", hints)) for i, hints in enumerate(BAD)]
    return good, [_why(b) if isinstance(b, str) else f"admitted: {b}" for b in bad]


async def _apply_policies(home: Cluster, present: bool, scheduler: str = "default-scheduler") -> None:
    """All of manifests/policies, handing pods to ``scheduler``, put in place or removed."""
    docs = faults.admission_policies(scheduler)
    for doc in docs:
        plural = faults.POLICY_PLURALS[doc["kind"]]
        if present:
            await home.custom.create_cluster_custom_object(*ADMISSION, plural, doc)
        else:
            try:
                await home.custom.delete_cluster_custom_object(*ADMISSION, plural, doc["metadata"]["name"])
            except ApiException as exc:
                if exc.status != 404:
                    raise


async def _webhook(home: Cluster, registration: dict[str, Any] | None) -> dict[str, Any]:
    """Remove the webhook's registration (``registration`` None), returning it; or put it back."""
    if registration is not None:
        kept = {k: v for k, v in registration.items() if k != "metadata"}
        kept["metadata"] = {"name": WEBHOOK}
        await home.custom.create_cluster_custom_object(*ADMISSION, "mutatingwebhookconfigurations", kept)
        return kept
    found: dict[str, Any] = await home.custom.get_cluster_custom_object(
        *ADMISSION, "mutatingwebhookconfigurations", WEBHOOK
    )
    await home.custom.delete_cluster_custom_object(*ADMISSION, "mutatingwebhookconfigurations", WEBHOOK)
    return found


@pytest_asyncio.fixture(scope="module")
async def home(clusters: dict[str, Cluster], spillover: lablib.State) -> AsyncIterator[Cluster]:
    await ensure_namespace(clusters["home"], NS, enabled=True)
    yield clusters["home"]


async def test_the_policies_prepare_and_refuse_pods_exactly_as_the_webhook_and_need_no_spillover(
    home: Cluster, spillover: lablib.State
) -> None:
    lab = spillover
    scheduler = faults.lab_scheduler(lab)  # the webhook's --scheduler-name in the lab's install mode
    registration: dict[str, Any] | None = None
    try:
        by_webhook, refused_by_webhook = await _all(home)
        registration = await _webhook(home, None)
        await _apply_policies(home, True, scheduler)

        async def policies_act() -> bool:  # the apiserver picks new policies up from a watch
            return (await _all(home)) == (by_webhook, refused_by_webhook)

        try:
            await eventually(policies_act, 30, "the policies to prepare and refuse pods as the webhook did", interval=1)
        except AssertionError:
            by_policies, refused_by_policies = await _all(home)
            for pod, webhook, policy in zip(GOOD, by_webhook, by_policies, strict=True):
                assert policy == webhook, f"pod {pod['metadata']['name']}: {_differences(webhook, policy)}"
            for hints, webhook_says, policy_says in zip(BAD, refused_by_webhook, refused_by_policies, strict=True):
                assert policy_says == webhook_says, f"hints {hints}"
            raise
        assert all(isinstance(p, dict) for p in by_webhook) and not any(
            m.startswith("admitted") for m in refused_by_webhook
        )
        prepared = by_webhook[0]
        assert isinstance(prepared, dict) and prepared["spec"]["schedulerName"] == scheduler
        skipped = by_webhook[9]  # names a scheduler that does not consult Spillover: left as it is
        assert isinstance(skipped, dict) and "spillover.io/spillable" not in str(skipped["spec"]["containers"])
        assert "does not consult Spillover" in skipped["annotations"]["spillover.io/skipped"]
        assert VIRTUAL in prepared["spec"]["tolerations"]
        assert prepared["spec"]["containers"][0]["resources"] == {"requests": {MARKER: "1"}, "limits": {MARKER: "1"}}
        assert "'a' appears twice" in refused_by_webhook[7]

        # Spillover down: with the policies, every pod is created and prepared.
        await asyncio.to_thread(faults.stop_serve_only, lab)
        names = [unique("while-down") for _ in range(CREATED_WHILE_DOWN)]
        for name in names:
            created = await home.core.create_namespaced_pod(NS, _pod(name))
            assert created.spec.containers[0].resources.requests == {MARKER: "1"}
        # ... and with the webhook instead, every one is refused, saying what is wrong and the ways out.
        await _apply_policies(home, False)
        await _webhook(home, registration)
        registration = None

        async def refused() -> str | None:
            answer = await _admit(home, _pod(unique("refused")))
            return answer if isinstance(answer, str) and "spillover-webhook-guard" in answer else None

        await eventually(refused, 30, "the webhook's guard to refuse while Spillover is down", interval=1)
        refusals = [await _admit(home, _pod(unique("refused"))) for _ in range(CREATED_WHILE_DOWN)]
        assert all(isinstance(r, str) for r in refusals)
        message = str(refusals[0])
        for words in (
            "no Spillover replica is answering",
            "kubectl -n spillover-system get pods",
            f"Namespace {NS} is opted in",
            "remove that label",
            "manifests/policies",
            "kubectl delete validatingadmissionpolicybinding spillover-webhook-guard",
        ):
            assert words in message, message
        print(
            f"\n[admission] Spillover down, {CREATED_WHILE_DOWN} pods: refused 0 with the policies, "
            f"{len(refusals)} with the webhook"
        )
        for name in names:
            await home.core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
    finally:
        await _apply_policies(home, False)
        if registration is not None:
            await _webhook(home, registration)
        if sp.running_serve(lab) is None:
            await asyncio.to_thread(sp.start_serve, lab)
