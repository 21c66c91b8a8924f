"""`spillover join` refuses a PeerCluster that is still being deleted and, joined again, changes
only the settings given; `spillover leave` waits for the detach, shows its progress as it changes
and cleans up the kubeconfig Secret."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec
import pytest

from extender.cli.join import being_deleted, given_settings, write_peercluster
from extender.cli.leave import leave
from extender.cli.main import build_parser
from extender.cli.status import render
from extender.kube.api import SECRETS
from extender.kube.raw import ApiError
from extender.peers.model import PEERCLUSTERS, PeerClusterWithStatus
from tests.unit.apiserver import FakeApiserver, Object

PC = PEERCLUSTERS.item("east")
SECRET = SECRETS.item("peer-east-kubeconfig", "spillover-system")


def _peercluster(message: str, deleting: bool = True, ready: str = "False") -> Object:
    meta: dict[str, Any] = {"name": "east", "finalizers": ["spillover.io/detach"]}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-26T12:00:00Z"
    status = {"conditions": [{"type": "Ready", "status": ready, "message": message}]}
    spec = {"kubeconfigSecretRef": {"name": "peer-east-kubeconfig", "namespace": "spillover-system"}}
    return {"metadata": meta, "spec": spec, "status": status}


def home_reading(reads: list[Object | None]) -> FakeApiserver:
    """The home apiserver: the PeerCluster reads in turn from ``reads`` (None: gone)."""
    home = FakeApiserver((SECRETS, {"metadata": {"namespace": "spillover-system", "name": "peer-east-kubeconfig"}}))

    def read(_: Any) -> Any:
        answer = reads.pop(0) if len(reads) > 1 else reads[0]
        if answer is None:
            raise ApiError(404, b"{}", "GET", PC)
        return answer

    home.answer("GET", PC, read)
    home.answer("DELETE", PC, lambda _: {"kind": "Status", "status": "Success"})
    return home


def deletes(home: FakeApiserver) -> list[str]:
    return [c.path for c in home.writes("DELETE")]


async def test_join_sees_a_peercluster_still_being_deleted() -> None:
    assert await being_deleted(FakeApiserver((PEERCLUSTERS, _peercluster("detaching"))), "east")
    assert not await being_deleted(FakeApiserver((PEERCLUSTERS, _peercluster("ok", deleting=False))), "east")
    assert not await being_deleted(FakeApiserver(), "east")


async def test_leave_shows_each_new_progress_once_then_removes_the_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr("extender.cli.leave.asyncio.sleep", no_wait)
    first, second = (
        "deleting 3 objects Spillover created in peer east",
        "deleting 1 objects Spillover created in peer east",
    )
    home = home_reading(
        [_peercluster("", deleting=False), _peercluster(first), _peercluster(first), _peercluster(second), None]
    )

    assert await leave(home, "east", timeout=60, keep_secret=False) == 0

    out = capsys.readouterr().out
    assert out.count(first) == 1 and out.count(second) == 1
    assert "peercluster/east deleted: nothing of Spillover's is left in the peer" in out
    assert deletes(home) == [PC, SECRET]


async def test_leave_names_a_missing_peercluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert await leave(home_reading([None]), "east", timeout=1, keep_secret=False) == 1
    assert "there is no PeerCluster east" in capsys.readouterr().err


async def test_leave_that_times_out_says_detaching_goes_on_and_how_to_give_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = home_reading([_peercluster("", deleting=False), _peercluster("waiting for peer east to be reachable")])

    assert await leave(home, "east", timeout=0, keep_secret=False) == 1

    err = capsys.readouterr().err
    assert "still detaching" in err and "waiting for peer east to be reachable" in err and "finalizers" in err
    assert deletes(home) == [PC], "the Secret stays while the PeerCluster does"


async def test_leave_never_shows_the_status_written_before_the_deletion_as_progress(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after the DELETE, the PeerCluster still carries the Ready=True condition of before
    ("placing pods here"): leave printed it as the detach's progress."""

    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr("extender.cli.leave.asyncio.sleep", no_wait)
    stale = _peercluster("placing pods here", ready="True")
    home = home_reading([_peercluster("", deleting=False), stale, stale, _peercluster("deleting 2 objects"), None])

    assert await leave(home, "east", timeout=60, keep_secret=True) == 0

    out = capsys.readouterr().out
    assert "placing pods here" not in out
    assert "  deleting 2 objects" in out


def test_status_shows_a_pause_before_spillover_has_written_it() -> None:
    def item(paused: bool, ready: str, message: str) -> PeerClusterWithStatus:
        return msgspec.convert(
            {
                "metadata": {"name": "east"},
                "spec": {"cost": 1, "tier": 0, "paused": paused},
                "status": {"conditions": [{"type": "Ready", "status": ready, "message": message}]},
            },
            PeerClusterWithStatus,
        )

    stale = render([item(True, "True", "placing pods here")])
    assert "placing pods here" not in stale
    assert "False" in stale and "paused (spec.paused): no new pods go there" in stale
    assert "placing pods here" in render([item(False, "True", "placing pods here")])


def test_status_shows_spend_against_each_cap_and_what_waits_to_come_home() -> None:
    from extender.cli.status import render_server

    data = {
        "spend": [
            {"namespace": "shop", "peer": "east", "pods": 2, "perHour": 2.0},
            {"namespace": "lab", "peer": "east", "pods": 1, "perHour": 0.5},
        ],
        "budgets": [
            {"namespace": "shop", "cap": 3.0, "spendPerHour": 2.0, "leftPerHour": 1.0},
            {"namespace": "ops", "cap": None, "error": "annotation ... 'lots' is invalid", "spendPerHour": 0.0},
        ],
        "peers": [{"name": "east", "spendPerHour": 2.5}],
        "repatriation": [
            {"pod": "shop/web-1", "peer": "east", "perHour": 1.0, "state": "waiting", "reason": "home has room"}
        ],
    }
    text = render_server(data)
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert lines["shop"][1:] == ["2", "3", "1"]
    assert lines["lab"][1:] == ["0.5", "-", "-"]
    assert lines["ops"][2] == "invalid"
    assert "spend per peer: east 2.5/h" in text
    assert lines["shop/web-1"][:4] == ["shop/web-1", "east", "1", "waiting"]
    assert "(no pod runs in a peer)" in render_server({})


def _join_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["join", "east", "--peer-kubeconfig", "east.kubeconfig", *flags])


REF = {"name": "peer-east-kubeconfig", "namespace": "spillover-system", "key": "kubeconfig"}
KEPT = "(kept as they were: cost, costPerGiB, costPerGPU, tier, gracePeriodSeconds, podSecurity)"


def _existing() -> FakeApiserver:
    """Home with PeerCluster east joined earlier: its cost, price per GiB and grace period set."""
    spec = {"kubeconfigSecretRef": REF, "cost": 2, "costPerGiB": 0.5, "tier": 1, "gracePeriodSeconds": 20}
    return FakeApiserver((PEERCLUSTERS, {"metadata": {"name": "east"}, "spec": spec}))


async def test_joining_again_to_rotate_the_kubeconfig_keeps_every_setting_not_given() -> None:
    home = _existing()

    said = await write_peercluster(home, "east", REF, given_settings(_join_args()))

    assert said == f"peercluster/east updated {KEPT}"
    spec = (home.get_object(PEERCLUSTERS, "east") or {})["spec"]
    assert (spec["cost"], spec["costPerGiB"], spec["tier"], spec["gracePeriodSeconds"]) == (2, 0.5, 1, 20)


async def test_joining_again_changes_what_is_given_and_removes_what_is_given_empty() -> None:
    home = _existing()
    home.add(PEERCLUSTERS, {"metadata": {"name": "west"}, "spec": {"namespace": "burst", "cost": 3}})
    args = _join_args("--cost", "2.5", "--grace-period", "30", "--namespace=", "--allowed-namespaces=")

    await write_peercluster(home, "west", REF, given_settings(args))

    spec = (home.get_object(PEERCLUSTERS, "west") or {})["spec"]
    assert spec == {"kubeconfigSecretRef": REF, "cost": 2.5, "gracePeriodSeconds": 30}, "namespace removed"


async def test_a_new_peercluster_gets_the_defaults_for_what_is_not_given() -> None:
    home = FakeApiserver()

    said = await write_peercluster(
        home, "east", REF, given_settings(_join_args("--cost-per-gib", "0.5", "--namespace="))
    )

    assert said == "peercluster/east created"
    spec = (home.get_object(PEERCLUSTERS, "east") or {})["spec"]
    assert spec == {
        "cost": 1.0,
        "costPerGiB": 0.5,
        "costPerGPU": 0.0,
        "tier": 0,
        "gracePeriodSeconds": 60,
        "podSecurity": "baseline",
        "kubeconfigSecretRef": REF,
    }, "defaults for the rest; an empty namespace is simply left out"
