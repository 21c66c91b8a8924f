"""The sweep tells normal cleanup from orphans: copies left after a Deployment was deleted are not
"orphans", and a delegate already being deleted by its proxy's deletion is not one either."""

from __future__ import annotations

import logging

import pytest

from extender.config import Config
from extender.delegation.delegator import Delegator, PeerDelegates
from extender.server.metrics import Metrics
from tests.unit.fakes import SyncedReflector, peer
from tests.unit.test_shared_peer import SharedPeer, _copy, _delegate


def _delegator(peer_api: SharedPeer, metrics: Metrics) -> Delegator:
    delegator = Delegator(home=None, registry=None, config=Config(cluster_id="home-a"), metrics=metrics)  # type: ignore[arg-type]
    runtime = type("Runtime", (), {"state": peer("east"), "raw": peer_api})()
    entry = PeerDelegates(runtime=runtime)  # type: ignore[arg-type]
    entry.reflector = SyncedReflector()  # type: ignore[assignment]
    entry.proxy_reflector = SyncedReflector()  # type: ignore[assignment]
    delegator.peers["east"] = entry
    return delegator


def _value(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name, {"peer": "east"}) or 0.0


async def test_copies_left_by_a_deleted_deployment_are_cleanup_not_orphans(caplog: pytest.LogCaptureFixture) -> None:
    terminating = _delegate("web-1", "home-a", proxy_uid="gone-1", copies="ConfigMap/settings")
    terminating["metadata"]["deletionTimestamp"] = "2026-11-26T12:00:00Z"
    peer_api = SharedPeer(
        {
            "pods": [terminating],
            "configmaps": [_copy("settings", "home-a"), _copy("other", "home-a")],
            "secrets": [_copy("token", "home-a") | {"kind": "Secret"}],
        }
    )
    metrics = Metrics()
    delegator = _delegator(peer_api, metrics)

    with caplog.at_level(logging.INFO, logger="spillover.delegator"):
        assert await delegator.sweep("east") == 2

    deleted = [path.rsplit("/", 1)[-1] for method, path, _ in peer_api.writes if method == "DELETE"]
    assert deleted == ["other", "token"], "the terminating delegate and the copy it still mounts are left be"
    assert _value(metrics, "spillover_orphans_removed_total") == 0
    assert _value(metrics, "spillover_copies_removed_total") == 2
    assert "removed 2 copied ConfigMaps and Secrets no delegate uses any more from east" in caplog.text
    assert "orphan" not in caplog.text


async def test_a_delegate_whose_pod_is_gone_unnoticed_is_an_orphan(caplog: pytest.LogCaptureFixture) -> None:
    peer_api = SharedPeer({"pods": [_delegate("web-1", "home-a", proxy_uid="gone-1")]})
    metrics = Metrics()

    with caplog.at_level(logging.INFO, logger="spillover.delegator"):
        assert await _delegator(peer_api, metrics).sweep("east") == 1

    assert _value(metrics, "spillover_orphans_removed_total") == 1
    assert _value(metrics, "spillover_copies_removed_total") == 0
    assert "orphan sweep removed 1 delegates whose home pod is gone from east" in caplog.text
