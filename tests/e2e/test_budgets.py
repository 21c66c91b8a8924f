"""Spend caps against the real lab: kube-scheduler keeps the pods home that would take their
namespace over its cap (the reason in their FailedScheduling Event), raising the cap lets more go
at once, and the real apiserver refuses a cap that is not a number (ValidatingAdmissionPolicy
spillover-budgets).

Lab shape (hack/lab/profile.yaml): home 2 x 4 CPU; east 3 x 4 CPU at cost 1; west 2 x 2 CPU at
cost 2. Ten 2-CPU pods: four fit at home, six would spill; a 2-CPU pod costs 2/h in east (4/h in
west), so a cap of 4 is room for exactly two of them in peers.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from spillover_lab import lab as lablib
from spillover_lab import spillover as sp

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import (
    create_deployment,
    delete_deployment,
    ensure_namespace,
    error_status,
    error_text,
    events_for,
    pods,
    unique,
)

NAMESPACE = "capped"
CAP = "spillover.io/max-spend-per-hour"
POLICY = "spillover-budgets"


@pytest_asyncio.fixture(scope="module")
async def home(clusters: dict[str, Cluster], spillover: lablib.State) -> AsyncIterator[Cluster]:
    home = clusters["home"]
    await ensure_namespace(home, NAMESPACE, enabled=True)
    yield home
    await set_cap(home, None)


async def set_cap(home: Cluster, value: str | None) -> None:
    await home.core.patch_namespace(NAMESPACE, {"metadata": {"annotations": {CAP: value}}})


def placement(items: list[Any]) -> tuple[int, int, int]:
    """(at home, in peers, waiting) among live pods."""
    live = [p for p in items if p.metadata.deletion_timestamp is None]
    spilled = sum(1 for p in live if (p.spec.node_name or "").startswith("spillover-"))
    waiting = sum(1 for p in live if not p.spec.node_name)
    return len(live) - spilled - waiting, spilled, waiting


async def test_a_cap_lets_exactly_what_it_pays_for_spill_and_raising_it_lets_more_go_at_once(
    home: Cluster, spillover: lablib.State
) -> None:
    started = time.monotonic()
    await set_cap(home, "4")
    app = unique("capped")
    await create_deployment(home, NAMESPACE, app, 10, "2")
    try:

        seen: list[tuple[int, int, int]] = []

        async def settled() -> tuple[int, int, int] | None:
            seen.append(placement(await pods(home, NAMESPACE, app)))
            return seen[-1] if seen[-1] == (4, 2, 4) else None

        try:
            await eventually(settled, 60, "4 pods at home, 2 in peers, 4 waiting")
        except AssertionError as exc:
            now = await pods(home, NAMESPACE, app)
            nodes = sorted(p.spec.node_name or "-" for p in now)
            why = [
                e.message
                for p in now
                if not p.spec.node_name
                for e in await events_for(home, NAMESPACE, p.metadata.name)
                if e.reason == "FailedScheduling"
            ]
            where = f"last (at home, in peers, waiting): {seen[-1]}; nodes {nodes}; {why[-1:]}"
            raise AssertionError(f"{exc}; {where}") from None
        waiting = [p for p in await pods(home, NAMESPACE, app) if not p.spec.node_name]

        async def told() -> str | None:
            for event in await events_for(home, NAMESPACE, waiting[0].metadata.name):
                if event.reason == "FailedScheduling" and CAP in event.message:
                    return str(event.message)
            return None

        message = await eventually(told, 30, "a FailedScheduling Event naming the cap", interval=0.5)
        assert f"namespace {NAMESPACE} is capped at {CAP}=4 per hour in peers and spends " in message, message
        # the spend it names is the two spilled pods', counted spilled or (mid-burst) still being placed
        spend = re.search(r"spends ([\d.]+)/h now(?: \+ ([\d.]+)/h being placed)?; this pod would add 2/h", message)
        assert spend is not None and float(spend.group(1)) + float(spend.group(2) or 0) == 4.0, message
        status = json.load(urllib.request.urlopen(sp.metrics_url(spillover) + "/status.json", timeout=5))
        (row,) = [b for b in status["budgets"] if b["namespace"] == NAMESPACE]
        assert (row["cap"], row["spendPerHour"], row["leftPerHour"]) == (4.0, 4.0, 0.0)
        metrics = urllib.request.urlopen(sp.metrics_url(spillover) + "/metrics", timeout=5).read().decode()
        assert f'spillover_spend_cap_per_hour{{namespace="{NAMESPACE}"}} 4.0' in metrics

        raised = time.monotonic()
        await set_cap(home, "8")

        async def two_more() -> tuple[int, int, int] | None:
            where = placement(await pods(home, NAMESPACE, app))
            return where if where == (4, 4, 2) else None

        await eventually(two_more, 30, "two more pods in peers once the cap is raised")
        took = time.monotonic() - raised
        assert took < 15, f"raising the cap took {took:.1f}s to let pods go"
        print(f"\nbudgets: 2 more pods spilled {took:.1f}s after the cap was raised")
    finally:
        await delete_deployment(home, NAMESPACE, app, timeout=90)
        await set_cap(home, None)
    print(f"budget test: {time.monotonic() - started:.1f}s")


@pytest.mark.parametrize("value", ["lots", "-1", "1e3"])
async def test_the_apiserver_refuses_a_cap_that_is_not_a_number_naming_the_value(home: Cluster, value: str) -> None:
    with pytest.raises(ApiException) as err:
        await set_cap(home, value)
    assert err.value.status in (400, 403, 422)
    body = error_status(err.value)
    assert f"{CAP}='{value}' is invalid" in body["message"] and "spillover-budgets" in body["message"]
    name = unique("badcap")
    with pytest.raises(ApiException) as err:
        await home.core.create_namespace({"metadata": {"name": name, "annotations": {CAP: value}}})
    assert f"'{value}' is invalid" in error_status(err.value)["message"]
    await set_cap(home, "0.5")  # a good one is taken
    await set_cap(home, None)


async def test_labelling_a_namespace_that_already_carries_a_bad_cap_is_refused_naming_the_value(home: Cluster) -> None:
    """A bad value cannot exist while the policy is bound, so one is made with the binding removed
    (a namespace annotated before Spillover was installed), then the binding is restored and the
    apiserver seen enforcing it again before the label is tried."""
    admission = client.AdmissionregistrationV1Api(home.api)
    saved = await admission.read_validating_admission_policy_binding(POLICY)
    name, bad = unique("oldcap"), {CAP: "lots"}

    async def refused_by_policy(call: Any) -> bool:
        try:
            await call
        except ApiException as exc:
            if POLICY not in error_text(exc):
                raise
            return True
        return False

    await admission.delete_validating_admission_policy_binding(POLICY)
    try:

        async def created_unbound() -> bool:
            body = {"metadata": {"name": name, "annotations": bad}}
            return not await refused_by_policy(home.core.create_namespace(body))

        await eventually(created_unbound, 30, f"namespace {name} created with {CAP}='lots' while unbound")
    finally:
        meta = saved.metadata
        restored = {
            "metadata": {"name": POLICY, "labels": meta.labels, "annotations": meta.annotations},
            "spec": home.api.sanitize_for_serialization(saved.spec),
        }
        await admission.create_validating_admission_policy_binding(restored)

        async def enforced() -> bool:
            body = {"metadata": {"name": unique("probe"), "annotations": bad}}
            return await refused_by_policy(home.core.create_namespace(body, dry_run="All"))

        await eventually(enforced, 30, f"the apiserver enforcing {POLICY} again", interval=0.5)
    try:
        await home.core.patch_namespace(name, {"metadata": {"labels": {"team": "a"}}})  # other updates pass
        with pytest.raises(ApiException) as err:
            await home.core.patch_namespace(name, {"metadata": {"labels": {"spillover.io/enabled": "true"}}})
        assert err.value.status in (400, 403, 422)
        message = error_status(err.value)["message"]
        assert f"namespace {name}: annotation {CAP}='lots' is invalid" in message and POLICY in message, message
        labels = (await home.core.read_namespace(name)).metadata.labels
        assert labels.get("spillover.io/enabled") is None and labels.get("team") == "a", labels
    finally:
        await home.core.delete_namespace(name)
