"""`spillover join` refuses a PeerCluster that is still being deleted; `spillover leave` waits for
the detach, shows its progress as it changes and cleans up the kubeconfig Secret."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from extender.cli.join import _being_deleted
from extender.cli.leave import leave
from extender.kube.raw import ApiError

PC = "/apis/spillover.io/v1alpha1/peerclusters/east"


def _peercluster(message: str, deleting: bool = True, ready: str = "False") -> bytes:
    meta: dict[str, Any] = {"name": "east", "finalizers": ["spillover.io/detach"]}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-26T12:00:00Z"
    status = {"conditions": [{"type": "Ready", "status": ready, "message": message}]}
    spec = {"kubeconfigSecretRef": {"name": "peer-east-kubeconfig", "namespace": "spillover-system"}}
    return msgspec.json.encode({"metadata": meta, "spec": spec, "status": status})


class Home:
    """The home apiserver: the PeerCluster reads in turn from ``reads`` (None: gone)."""

    def __init__(self, reads: list[bytes | None]) -> None:
        self.reads = reads
        self.writes: list[tuple[str, str]] = []

    async def get(self, path: str, query: Any = None) -> bytes:
        answer = self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]
        if answer is None:
            raise ApiError(404, b"{}", "GET", path)
        return answer

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> bytes:
        self.writes.append((method, path))
        return b"{}"


async def test_join_sees_a_peercluster_still_being_deleted() -> None:
    assert await _being_deleted(Home([_peercluster("detaching")]), "east")  # type: ignore[arg-type]
    assert not await _being_deleted(Home([_peercluster("ok", deleting=False)]), "east")  # type: ignore[arg-type]
    assert not await _being_deleted(Home([None]), "east")  # type: ignore[arg-type]


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
    home = Home(
        [_peercluster("", deleting=False), _peercluster(first), _peercluster(first), _peercluster(second), None]
    )

    assert await leave(home, "east", timeout=60, keep_secret=False) == 0  # type: ignore[arg-type]

    out = capsys.readouterr().out
    assert out.count(first) == 1 and out.count(second) == 1
    assert "peercluster/east deleted: nothing of Spillover's is left in the peer" in out
    assert home.writes == [
        ("DELETE", PC),
        ("DELETE", "/api/v1/namespaces/spillover-system/secrets/peer-east-kubeconfig"),
    ]


async def test_leave_names_a_missing_peercluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert await leave(Home([None]), "east", timeout=1, keep_secret=False) == 1  # type: ignore[arg-type]
    assert "there is no PeerCluster east" in capsys.readouterr().err


async def test_leave_that_times_out_says_detaching_goes_on_and_how_to_give_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = Home([_peercluster("", deleting=False), _peercluster("waiting for peer east to be reachable")])

    assert await leave(home, "east", timeout=0, keep_secret=False) == 1  # type: ignore[arg-type]

    err = capsys.readouterr().err
    assert "still detaching" in err and "waiting for peer east to be reachable" in err and "finalizers" in err
    assert home.writes == [("DELETE", PC)], "the Secret stays while the PeerCluster does"


async def test_leave_never_shows_the_status_written_before_the_deletion_as_progress(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after the DELETE, the PeerCluster still carries the Ready=True condition of before
    ("placing pods here"): leave printed it as the detach's progress."""

    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr("extender.cli.leave.asyncio.sleep", no_wait)
    stale = _peercluster("placing pods here", ready="True")
    home = Home([_peercluster("", deleting=False), stale, stale, _peercluster("deleting 2 objects"), None])

    assert await leave(home, "east", timeout=60, keep_secret=True) == 0  # type: ignore[arg-type]

    out = capsys.readouterr().out
    assert "placing pods here" not in out
    assert "  deleting 2 objects" in out


def test_status_shows_a_pause_before_spillover_has_written_it() -> None:
    from extender.cli.status import render

    def item(paused: bool, ready: str, message: str) -> dict[str, Any]:
        return {
            "metadata": {"name": "east"},
            "spec": {"cost": 1, "tier": 0, "paused": paused},
            "status": {"conditions": [{"type": "Ready", "status": ready, "message": message}]},
        }

    stale = render([item(True, "True", "placing pods here")])
    assert "placing pods here" not in stale
    assert "False" in stale and "paused (spec.paused): no new pods go there" in stale
    assert "placing pods here" in render([item(False, "True", "placing pods here")])
