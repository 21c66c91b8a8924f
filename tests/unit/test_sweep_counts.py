"""The sweep tells normal cleanup from orphans: copies left after a Deployment was deleted are not
"orphans", and a delegate already being deleted by its proxy's deletion is not one either."""

from __future__ import annotations

import logging

import pytest

from extender.kube.api import CONFIGMAPS, PODS, SECRETS
from extender.server.metrics import Metrics
from tests.unit.fakes import Delegation
from tests.unit.test_shared_peer import _copy, _delegate


async def home_a() -> Delegation:
    world = Delegation(cluster_id="home-a")
    world.join()
    await world.synced()
    return world


def _value(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name, {"peer": "east"}) or 0.0


async def test_copies_left_by_a_deleted_deployment_are_cleanup_not_orphans(caplog: pytest.LogCaptureFixture) -> None:
    terminating = _delegate("web-1", "home-a", proxy_uid="gone-1", copies="ConfigMap/settings")
    terminating["metadata"]["deletionTimestamp"] = "2026-11-26T12:00:00Z"
    world = await home_a()
    east, metrics = world.api(), world.metrics
    east.add(PODS, terminating)
    east.add(CONFIGMAPS, _copy("settings", "home-a"))
    east.add(CONFIGMAPS, _copy("other", "home-a"))
    east.add(SECRETS, _copy("token", "home-a") | {"kind": "Secret"})

    with caplog.at_level(logging.INFO, logger="spillover.delegator"):
        assert await world.sweeper.sweep("east") == 2

    deleted = [c.path.rsplit("/", 1)[-1] for c in east.writes("DELETE")]
    assert deleted == ["other", "token"], "the terminating delegate and the copy it still mounts are left be"
    assert _value(metrics, "spillover_orphans_removed_total") == 0
    assert _value(metrics, "spillover_copies_removed_total") == 2
    assert "removed 2 copied ConfigMaps and Secrets no delegate uses any more from east" in caplog.text
    assert "orphan" not in caplog.text


async def test_a_delegate_whose_pod_is_gone_unnoticed_is_an_orphan(caplog: pytest.LogCaptureFixture) -> None:
    world = await home_a()
    metrics = world.metrics
    world.api().add(PODS, _delegate("web-1", "home-a", proxy_uid="gone-1"))

    with caplog.at_level(logging.INFO, logger="spillover.delegator"):
        assert await world.sweeper.sweep("east") == 1

    assert _value(metrics, "spillover_orphans_removed_total") == 1
    assert _value(metrics, "spillover_copies_removed_total") == 0
    assert "orphan sweep removed 1 delegates whose home pod is gone from east" in caplog.text


async def test_a_copy_made_after_the_bind_of_a_reference_missing_then_is_kept_while_its_delegate_needs_it() -> None:
    """The delegate lists everything its pod references (spillover.io/references), copied at bind
    or not: the copy keeper's later copy of one missing then is no orphan."""
    world = await home_a()
    east = world.api()
    delegate = _delegate("web-1", "home-a", proxy_uid="gone-1", copies="ConfigMap/settings")
    delegate["metadata"]["deletionTimestamp"] = "2026-11-26T12:00:00Z"  # still mounting what it lists
    delegate["metadata"]["annotations"]["spillover.io/references"] = "ConfigMap/late,ConfigMap/settings"
    east.add(PODS, delegate)
    east.add(CONFIGMAPS, _copy("settings", "home-a"))
    east.add(CONFIGMAPS, _copy("late", "home-a"))

    assert await world.sweeper.sweep("east") == 0
    assert not east.writes("DELETE")
