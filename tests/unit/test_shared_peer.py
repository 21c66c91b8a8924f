"""Homes sharing a peer: each Spillover labels what it makes there with its home's id and
watches, sweeps, detaches and reuses only its own; older unlabelled objects of its own are adopted."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from extender.config import ConfigError, load
from extender.delegation.adoption import adopt_unlabelled
from extender.delegation.avoid import AvoidList
from extender.delegation.creator import DelegateCreator
from extender.delegation.delegate_spec import copy_body, delegate_body
from extender.delegation.sweep import OrphanSweeper
from extender.delegation.view import Delegations, PeerDelegates
from extender.delegation.writer import ProxyWriter
from extender.kube.identity import kube_system_uid
from extender.kube.raw import ApiError
from extender.scheduling.state import BindError
from extender.server.metrics import Metrics
from tests.unit.fakes import SyncedReflector, peer

HOME = "spillover.io/home-cluster"
OLD = "2020-01-01T00:00:00Z"


def _matches(selector: str, found: dict[str, str]) -> bool:
    """The label selector forms Spillover sends: key, !key, key=value."""
    for term in filter(None, selector.split(",")):
        if term.startswith("!"):
            if term[1:] in found:
                return False
        elif "=" in term:
            key, _, value = term.partition("=")
            if found.get(key) != value:
                return False
        elif term not in found:
            return False
    return True


class SharedPeer:
    """A peer apiserver that lists by label selector, deletes, patches labels and refuses duplicates."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.writes: list[tuple[str, str, Any]] = []

    def _find(self, path: str) -> tuple[str, dict[str, Any] | None]:
        parts = path.split("/")  # /api/v1/namespaces/<ns>/<plural>/<name>
        ns, plural, name = parts[4], parts[5], parts[6]
        for obj in self.objects.get(plural, []):
            if (obj["metadata"]["namespace"], obj["metadata"]["name"]) == (ns, name):
                return plural, obj
        return plural, None

    async def get(self, path: str, query: Any = None) -> bytes:
        if path.count("/") == 6:
            _, obj = self._find(path)
            if obj is None:
                raise ApiError(404, b"{}", "GET", path)
            return msgspec.json.encode(obj)
        selector = dict(query or {}).get("labelSelector", "")
        plural = path.rsplit("/", 1)[-1]
        items = [o for o in self.objects.get(plural, []) if _matches(selector, o["metadata"].get("labels") or {})]
        return msgspec.json.encode({"items": items})

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> bytes:
        self.writes.append((method, path, body))
        if method == "POST":
            plural = path.rsplit("/", 1)[-1]
            name = body["metadata"]["name"]
            if any(o["metadata"]["name"] == name for o in self.objects.get(plural, [])):
                raise ApiError(409, b'{"reason":"AlreadyExists"}', method, path)
            self.objects.setdefault(plural, []).append(body)
        elif method == "DELETE":
            plural, obj = self._find(path)
            self.objects[plural] = [o for o in self.objects[plural] if o is not obj]
        elif method == "PATCH":
            _, obj = self._find(path)
            assert obj is not None
            obj["metadata"].setdefault("labels", {}).update(((body.get("metadata") or {}).get("labels")) or {})
        return b"{}"


def _delegate(name: str, home: str | None, proxy_uid: str = "uid-x", copies: str = "") -> dict[str, Any]:
    found = {"app.kubernetes.io/managed-by": "spillover", "spillover.io/proxy-uid": proxy_uid}
    found |= {"spillover.io/home-namespace": "shop", "spillover.io/home-name": name}
    if home:
        found[HOME] = home
    meta = {"namespace": "shop", "name": name, "labels": found, "creationTimestamp": OLD}
    return {"metadata": meta | {"annotations": {"spillover.io/copies": copies}}}


def _copy(name: str, home: str | None) -> dict[str, Any]:
    found = {"app.kubernetes.io/managed-by": "spillover", "spillover.io/copy": "true"}
    if home:
        found[HOME] = home
    return {
        "kind": "ConfigMap",
        "metadata": {"namespace": "shop", "name": name, "labels": found, "creationTimestamp": OLD},
    }


class HomePods:
    """The home apiserver, as far as adoption reads it: pods by namespace/name."""

    def __init__(self, uids: dict[str, str]) -> None:
        self.uids = uids

    async def get(self, path: str, query: Any = None) -> bytes:
        name = path.rsplit("/", 1)[-1]
        if name not in self.uids:
            raise ApiError(404, b"{}", "GET", path)
        return msgspec.json.encode({"metadata": {"namespace": "shop", "name": name, "uid": self.uids[name]}})


class Events:
    def record(self, ref: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        pass


class HomeA:
    """Delegation of home "home-a", its peer east answered by ``peer_api``."""

    def __init__(self, peer_api: SharedPeer, home: Any = None) -> None:
        self.state = Delegations()
        metrics = Metrics()
        writer = ProxyWriter(home, self.state, Events(), metrics)
        self.sweeper = OrphanSweeper(self.state, writer, metrics, "home-a", every=60)
        self.creator = DelegateCreator(home, self.state, writer, Events(), AvoidList(300), "home-a")
        runtime: Any = type("Runtime", (), {"state": peer("east"), "raw": peer_api})()
        self.entry = PeerDelegates(runtime=runtime)
        self.entry.reflector = SyncedReflector()  # type: ignore[assignment]
        self.entry.proxy_reflector = SyncedReflector()  # type: ignore[assignment]
        self.state.peers["east"] = self.entry


def test_delegates_and_copies_name_the_home_that_made_them() -> None:
    proxy = {"metadata": {"name": "web", "namespace": "shop", "uid": "u1"}, "spec": {"containers": []}}
    assert delegate_body(proxy, "east", "shop", [], "home-a")["metadata"]["labels"][HOME] == "home-a"
    original = {"kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}}
    assert copy_body(original, "shop", "shop", "home-a")["metadata"]["labels"][HOME] == "home-a"


async def test_the_sweep_and_the_detach_never_touch_another_homes_delegates_or_copies() -> None:
    peer_api = SharedPeer(
        {
            "pods": [_delegate("ours", "home-a"), _delegate("theirs", "home-b")],
            "configmaps": [_copy("ours", "home-a"), _copy("theirs", "home-b")],
        }
    )
    home_a = HomeA(peer_api)

    assert await home_a.sweeper.sweep("east") == 2  # our orphaned delegate and unneeded copy
    peer_api.objects["pods"].append(_delegate("ours-too", "home-a"))
    assert await home_a.sweeper.sweep("east", everything=True) == 1

    assert [o["metadata"]["name"] for o in peer_api.objects["pods"]] == ["theirs"]
    assert [o["metadata"]["name"] for o in peer_api.objects["configmaps"]] == ["theirs"]


async def test_a_copy_another_home_made_under_the_same_name_fails_the_bind_with_what_to_do() -> None:
    peer_api = SharedPeer({"configmaps": [_copy("settings", "home-b")]})

    class Home:
        async def get(self, path: str, query: Any = None) -> bytes:
            return msgspec.json.encode({"kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}})

    home_a = HomeA(peer_api, Home())
    spec = {"containers": [{"envFrom": [{"configMapRef": {"name": "settings"}}]}]}

    with pytest.raises(BindError, match=r"another home cluster \(home-b\).*spec.namespace"):
        await home_a.creator._copy_references(peer_api, {"spec": spec}, "shop", "shop", "east")  # type: ignore[arg-type]
    assert not [w for w in peer_api.writes if w[0] == "PATCH"], "their copy's data is left as it was"


async def test_unlabelled_delegates_whose_pod_is_here_are_adopted_with_their_copies_and_others_left_alone() -> None:
    peer_api = SharedPeer(
        {
            "pods": [
                _delegate("web-1", None, proxy_uid="u1", copies="ConfigMap/settings"),
                _delegate("web-2", None, proxy_uid="u2"),  # same name here, another pod: another home's
                _delegate("web-3", None, proxy_uid="u3"),  # no such pod here
            ],
            "configmaps": [_copy("settings", None)],
        }
    )
    home = HomePods({"web-1": "u1", "web-2": "other-uid"})

    assert await adopt_unlabelled(home, peer_api, "home-a") == 1  # type: ignore[arg-type]

    homes = {o["metadata"]["name"]: o["metadata"]["labels"].get(HOME) for o in peer_api.objects["pods"]}
    assert homes == {"web-1": "home-a", "web-2": None, "web-3": None}
    assert peer_api.objects["configmaps"][0]["metadata"]["labels"][HOME] == "home-a"
    assert not [w for w in peer_api.writes if w[0] == "DELETE"]


class Apiserver:
    def __init__(self, answers: list[bytes | Exception]) -> None:
        self.answers = answers

    async def get(self, path: str, query: Any = None) -> bytes:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_the_home_cluster_id_is_kube_systems_uid_read_once_the_apiserver_answers(monkeypatch: Any) -> None:
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    home = Apiserver([ConnectionRefusedError("refused"), b'{"metadata": {"uid": "0d5c-77"}}'])
    assert await kube_system_uid(home) == "0d5c-77"  # type: ignore[arg-type]


async def test_an_unreadable_home_cluster_id_says_how_to_fix_it() -> None:
    home = Apiserver([ApiError(403, b'{"message": "forbidden"}', "GET", "/api/v1/namespaces/kube-system")])
    with pytest.raises(RuntimeError, match="grant `get` on namespaces or set --cluster-id"):
        await kube_system_uid(home, wait=0)  # type: ignore[arg-type]


def test_a_cluster_id_that_is_not_a_label_value_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="cluster-id"):
        load(None, {"cluster_id": "home a!"})


async def _no_sleep(_: float) -> None:
    return None


async def test_a_bind_racing_the_peerclusters_deletion_creates_no_delegate_there() -> None:
    from extender.wire.core import Pod

    peer_api = SharedPeer({})
    home_a = HomeA(peer_api)
    state = home_a.entry.runtime.state
    state.detaching = "its PeerCluster is being deleted"  # seen after this bind's own checks passed
    raw_pod = {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"}, "spec": {"containers": []}}

    with pytest.raises(BindError, match="being detached"):
        await home_a.creator.create_delegate(raw_pod, msgspec.convert(raw_pod, Pod), state, "east-node-1")

    assert not [w for w in peer_api.writes if w[0] == "POST" and w[1].endswith("/pods")]
