"""Repatriation: spilled pods come home once home has had room for them for their delay, by the
Eviction API, one pod of a workload at a time, dearest first, gangs whole, never against a hint,
and a workload that ping-pongs is held back. Home is a fake apiserver watched as app.py watches it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest_asyncio

from extender.capacity.model import PeerState
from extender.hints import parse_hints
from extender.home_capacity import HomeCapacity
from extender.kube.api import NODES, PODS, delete_options
from extender.kube.fanout import FanOut
from extender.kube.raw import ApiError
from extender.kube.reflector import Reflector
from extender.kube.tasks import TaskSet
from extender.kube.times import rfc3339
from extender.peers.directory import PeerDirectory
from extender.peers.model import PeerCluster, PeerClusterSpec
from extender.planner.types import workload_of
from extender.repatriation.controller import PDB_RETRY, Repatriation
from extender.repatriation.moves import recreated_pod
from extender.repatriation.pingpong import PingPong
from extender.repatriation.pingpong_store import PingPongStore
from extender.repatriation.policy import terms
from extender.scheduling.memory import make_pod, peer
from extender.server.metrics import Metrics
from extender.wire.core import Node, Pod
from tests.unit.apiserver import FakeApiserver, Object
from tests.unit.fakes import OLD, RecordedEvents, until

DELAY = 300.0


def node(name: str, cpu: str = "4", **spec: Any) -> Object:
    resources = {"cpu": cpu, "memory": "8Gi", "pods": "110"}
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": spec,
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(
    name: str,
    node_name: str,
    cpu: str = "1",
    owner: str | None = "web",
    annotations: dict[str, str] | None = None,
    created: str = OLD,
    phase: str = "Running",
) -> Object:
    meta: dict[str, Any] = {"namespace": "shop", "name": name, "creationTimestamp": created}
    if owner is not None:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": f"rs-{owner}", "controller": True}]
    if annotations:
        meta["annotations"] = annotations
    requests = {"cpu": cpu, "memory": "64Mi", "spillover.io/spillable": "1"}
    return {
        "metadata": meta,
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "app", "image": "app:1", "resources": {"requests": requests}}],
            "tolerations": [{"key": "spillover.io/virtual", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "status": {"phase": phase},
    }


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


class Home:
    """Home as a fake apiserver, its capacity cache and the controller, fed by real watches."""

    def __init__(self, *peers: PeerState) -> None:
        self.api = FakeApiserver()
        self.capacity = HomeCapacity()
        self.directory = PeerDirectory()
        for state in peers or (peer("east", cost=1.0),):
            self.directory.by_virtual_node[state.virtual_node] = state
        self.events = RecordedEvents()
        self.metrics = Metrics()
        self.clock = Clock()
        self.controller = Repatriation(
            self.api, self.capacity, self.directory, self.events, self.metrics, DELAY, clock=self.clock
        )
        self.tasks = TaskSet("home")

    async def start(self) -> None:
        pods = FanOut([self.capacity.pods, self.controller.pods])
        nodes = Reflector(self.api, NODES.collection(), Node, self.capacity.nodes)
        watch = Reflector(self.api, PODS.collection(), Pod, pods)
        self.tasks.spawn(nodes.run())
        self.tasks.spawn(watch.run())
        await until(lambda: nodes.synced.is_set() and watch.synced.is_set())

    def add(self, obj: Object, kind: str = "pod") -> Object:
        return self.api.add(NODES if kind == "node" else PODS, obj)

    @staticmethod
    async def settle() -> None:
        """Let the watches deliver what was just written (they run in this event loop)."""
        for _ in range(10):
            await asyncio.sleep(0)

    async def at(self, seconds: float) -> None:
        """One pass of the controller, ``seconds`` after the clock's start."""
        await self.settle()
        self.clock.now = 1000.0 + seconds
        await self.controller.step()
        await self.settle()

    def evictions(self, dry_run: bool = False) -> list[str]:
        return [
            c.path.split("/")[-2]
            for c in self.api.calls
            if c.method == "POST" and c.path.endswith("/eviction") and (c.query.get("dryRun") == "All") == dry_run
        ]

    def told(self, reason: str) -> list[str]:
        return [message for told, message in self.events.told if told == reason]

    async def replace_at_home(self, gone: str, new: str, node_name: str, owner: str | None = "web") -> None:
        """What the ReplicaSet and kube-scheduler do after an eviction: a new pod of the workload is
        bound at home, and the evicted proxy goes (its delegate with it)."""
        self.api.add(PODS, pod(new, node_name, owner=owner, created=rfc3339()))
        await self.delete(gone)

    async def delete(self, name: str) -> None:
        await self.api.request("DELETE", PODS.item(name, "shop"), delete_options(grace=0))

    async def bind(self, name: str, node_name: str) -> None:
        body = {"metadata": {"name": name}, "target": {"name": node_name}}
        await self.api.request("POST", PODS.item(name, "shop", "binding"), body)

    async def close(self) -> None:
        await self.tasks.cancel()


@pytest_asyncio.fixture
async def home() -> AsyncIterator[Home]:
    h = Home(peer("east", cost=1.0), peer("west", cost=3.0))
    h.add(node("h1"), "node")
    h.add(pod("busy", "h1", cpu="4", owner="other"))  # h1 is full
    yield h
    await h.close()


async def test_a_spilled_pod_comes_home_after_home_has_had_room_for_its_delay(home: Home) -> None:
    home.add(pod("web-1", "spillover-east"))
    await home.start()
    await home.at(0)
    assert home.evictions() == [] and home.controller.rows()[0]["state"] == "no room"

    home.add(node("h2"), "node")
    await home.at(1)
    row = home.controller.rows()[0]
    assert row["state"] == "waiting" and row["homeNode"] == "h2"
    await home.at(DELAY)
    assert home.evictions() == [], "room for 299 s is not room for 300 s"
    await home.at(DELAY + 1)
    assert home.evictions() == ["web-1"]
    (message,) = home.told("Repatriating")
    assert "evicted from peer east, where it cost 1/h" in message and "its ReplicaSet web creates it again" in message
    assert home.capacity.state.nodes["h2"].reserved.get("cpu") == 1000, "its room at home is held"

    await home.replace_at_home("web-1", "web-2", "h2")
    await home.at(DELAY + 2)
    (arrived,) = home.told("Repatriated")
    assert "came home from peer east to node h2, in place of shop/web-1" in arrived and "saves 1/h" in arrived
    assert home.capacity.state.nodes["h2"].reserved.get("cpu", 0) == 0, "the new pod itself counts now"
    assert home.controller.moves == {}
    assert home.metrics.repatriated.labels("east")._value.get() == 1
    assert home.metrics.repatriation_saved.labels("east")._value.get() == 1.0


async def test_a_young_pod_waits_its_delay_even_when_home_had_room_all_along(home: Home) -> None:
    home.add(node("h2"), "node")
    home.add(pod("web-1", "spillover-east", created=rfc3339()))  # seconds old
    await home.start()
    await home.at(0)
    await home.at(DELAY + 1)
    assert home.evictions() == []
    assert "comes home in" in home.controller.rows()[0]["reason"]


async def test_the_pdb_decides_a_429_is_told_once_and_asked_again_after_a_while(home: Home) -> None:
    home.add(node("h2"), "node")
    home.add(pod("web-1", "spillover-east"))
    await home.start()
    path = PODS.item("web-1", "shop", "eviction")
    status = {
        "kind": "Status",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy "
                                "pods and has 2 currently"}]},
    }

    def refuse(_: Any) -> Any:  # as kube-apiserver's EvictionREST.checkAndDecrement answers
        raise ApiError(429, msgspec.json.encode(status), "POST", path)

    home.api.answer("POST", path, refuse)
    await home.at(0)
    await home.at(DELAY + 1)
    await home.at(DELAY + 2)
    assert home.evictions() == ["web-1"], "asked once, then not again before the retry"
    (blocked,) = home.told("RepatriationBlocked")
    assert blocked.startswith("PDB: the PodDisruptionBudget allows no disruption now")
    assert "needs 2 healthy pods and has 2 currently" in blocked
    assert home.controller.rows()[0]["state"] == "blocked"
    await home.at(DELAY + 2 + PDB_RETRY)
    assert home.evictions() == ["web-1", "web-1"]
    assert len(home.told("RepatriationBlocked")) == 1, "told once per pod and reason in ten minutes"
    assert home.metrics.repatriation_blocked.labels("PDB")._value.get() == 1


async def test_one_pod_of_a_workload_moves_at_a_time_unless_its_limit_says_more(home: Home) -> None:
    home.add(node("h2"), "node")
    home.add(pod("web-1", "spillover-east"))
    home.add(pod("web-2", "spillover-east"))
    limit = {"spillover.io/repatriate-max-in-flight": "2"}
    home.add(pod("api-1", "spillover-east", owner="api", annotations=limit, cpu="500m"))
    home.add(pod("api-2", "spillover-east", owner="api", annotations=limit, cpu="500m"))
    await home.start()
    await home.at(0)
    await home.at(DELAY + 1)
    evicted = sorted(home.evictions())
    assert evicted[:2] == ["api-1", "api-2"] and len(evicted) == 3, "api's limit is 2; web's is 1"
    waiting = "shop/web-2" if evicted[2] == "web-1" else "shop/web-1"
    states = {row["pod"]: row["state"] for row in home.controller.rows()}
    assert states[waiting] == "waiting its turn"


async def test_the_dearest_peers_pods_come_home_first_when_home_has_room_for_one(home: Home) -> None:
    home.add(node("h2", cpu="1"), "node")
    home.add(pod("cheap", "spillover-east", owner="a"))
    home.add(pod("dear", "spillover-west", owner="b"))
    await home.start()
    await home.at(0)
    await home.at(DELAY + 1)
    assert home.evictions() == ["dear"]
    states = {row["pod"]: row["state"] for row in home.controller.rows()}
    assert states["shop/cheap"] == "no room", "the room went to the dearer pod"


async def test_a_gang_comes_home_whole_or_not_at_all(home: Home) -> None:
    gang = {"spillover.io/gang": "train", "spillover.io/gang-size": "2"}
    home.add(node("h2", cpu="1"), "node")
    home.add(pod("train-0", "spillover-east", owner="job", annotations=gang))
    home.add(pod("train-1", "spillover-east", owner="job", annotations=gang))
    await home.start()
    await home.at(0)
    await home.at(DELAY + 1)
    assert home.evictions() == [] and home.evictions(dry_run=True) == []
    told = home.told("RepatriationBlocked")
    assert len(told) == 2 and all(m.startswith("Gang: gang train: not all 2 spilled members fit") for m in told)

    home.add(node("h3", cpu="1"), "node")
    await home.at(DELAY + 2)
    await home.at(2 * DELAY + 3)
    assert sorted(home.evictions(dry_run=True)) == ["train-0", "train-1"], "every member's budget asked first"
    assert sorted(home.evictions()) == ["train-0", "train-1"]


async def test_a_gang_member_the_budget_refuses_keeps_the_whole_gang_in_the_peer(home: Home) -> None:
    gang = {"spillover.io/gang": "train", "spillover.io/gang-size": "2"}
    home.add(node("h2"), "node")
    home.add(pod("train-0", "spillover-east", owner="job", annotations=gang))
    home.add(pod("train-1", "spillover-east", owner="job", annotations=gang))
    await home.start()
    home.api.fail("POST", PODS.item("train-1", "shop", "eviction"), 429, "would violate the disruption budget")
    await home.at(0)
    await home.at(DELAY + 1)
    assert home.evictions() == [], "no member moved alone"
    assert len(home.evictions(dry_run=True)) == 2


async def test_hints_keep_a_pod_in_its_peer_and_say_so_once_home_has_had_room(home: Home) -> None:
    home.add(node("h2"), "node")
    home.add(pod("bare", "spillover-east", owner=None))
    home.add(pod("pinned", "spillover-east", annotations={"spillover.io/repatriate": "false"}))
    home.add(pod("remote", "spillover-east", owner="r", annotations={"spillover.io/policy": "remote-first"}))
    await home.start()
    await home.at(0)
    await home.at(DELAY + 1)
    assert home.evictions() == []
    told = sorted(home.told("RepatriationBlocked"))
    assert len(told) == 3 and all(m.startswith("Hint: home has had room for it for 5m") for m in told)
    assert any('a bare pod (no controller) stays unless spillover.io/repatriate: "true"' in m for m in told)
    assert any('spillover.io/repatriate: "false"' in m for m in told)
    assert any("its policy remote-first prefers peers" in m for m in told)


async def test_a_bare_pod_that_asks_to_come_home_is_created_again_at_home_once_it_is_gone(home: Home) -> None:
    home.add(node("h2"), "node")
    annotations = {"spillover.io/repatriate": "true", "spillover.io/cluster": "east", "spillover.io/delegate": "x"}
    home.add(pod("solo", "spillover-east", owner=None, annotations=annotations))
    await home.start()
    await home.at(0)
    await home.at(DELAY + 1)
    assert home.evictions() == ["solo"]
    assert "Spillover creates it again, at home" in home.told("Repatriating")[0]
    await home.delete("solo")
    await home.at(DELAY + 2)
    again = home.api.get_object(PODS, "solo", "shop")
    assert again is not None and "nodeName" not in again["spec"]
    assert again["metadata"]["annotations"] == {"spillover.io/repatriate": "true"}, "Spillover's own notes dropped"
    await home.bind("solo", "h2")
    await home.at(DELAY + 3)
    assert len(home.told("Repatriated")) == 1


async def ping_pong(home: Home) -> None:
    """web-1 comes home to h2, then home fills again and the workload scales up: its next pod,
    web-3, spills (a strike) at DELAY + 3."""
    home.add(node("h2"), "node")
    home.add(pod("web-1", "spillover-east"))
    await home.start()
    await home.at(0)
    await home.at(DELAY + 1)
    await home.replace_at_home("web-1", "web-2", "h2")
    await home.at(DELAY + 2)
    home.add(pod("web-3", "spillover-east"))
    await home.at(DELAY + 3)


async def test_a_workload_that_spills_again_soon_after_coming_home_is_held_back(home: Home) -> None:
    await ping_pong(home)
    (told,) = home.told("RepatriationBlocked")
    assert told.startswith("PingPong: a pod of shop/ReplicaSet/web was sent home within the last hour")
    assert "held back for 10m (strike 1" in told
    assert home.metrics.ping_pong.labels("east")._value.get() == 1
    await home.at(DELAY + 4)
    await home.at(2 * DELAY + 5)
    assert home.evictions() == ["web-1"]
    assert {r["pod"]: r["state"] for r in home.controller.rows()}["shop/web-3"] == "held back"
    await home.at(DELAY + 3 + 2 * DELAY + 1)
    assert home.evictions() == ["web-1", "web-3"], "after the hold it may come home again"


def test_the_hold_back_doubles_with_each_strike_and_only_within_the_hour() -> None:
    memory = PingPong()
    assert memory.spilled("w", 0.0, 300.0) is None, "never sent home: no strike"
    memory.sent_home("w", 0.0)
    assert memory.spilled("w", 3601.0, 300.0) is None, "spilled after the hour: no strike"
    memory.sent_home("w", 4000.0)
    assert memory.spilled("w", 4100.0, 300.0) == 600.0
    memory.sent_home("w", 5000.0)
    assert memory.spilled("w", 5100.0, 300.0) == 1200.0
    assert memory.held_until("w") == 6300.0 and memory.strikes("w") == 2


def test_the_delay_comes_from_the_pod_else_its_peercluster_else_the_server() -> None:
    owned = {"ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": "rs", "controller": True}]}
    plain = make_pod()
    assert terms(plain, None, 300).after == 300 and not terms(plain, None, 300).allowed, "bare: off by default"
    hinted = make_pod(annotations={"spillover.io/repatriate-after": "90s"})
    assert terms(hinted, 60, 300).after == 90
    assert terms(make_pod(), 60, 300).after == 60
    owned_pod = msgspec.convert({"metadata": {"namespace": "shop", "name": "b", **owned}}, Pod)
    assert terms(owned_pod, None, 300).allowed and workload_of(owned_pod) == "shop/ReplicaSet/web"
    spec = PeerCluster(spec=PeerClusterSpec(repatriate_after_seconds=45))
    directory = PeerDirectory()
    directory.specs["east"] = spec
    assert directory.repatriate_after("east") == 45.0 and directory.repatriate_after("west") is None


def test_a_recreated_bare_pod_keeps_its_name_labels_and_spec_but_not_its_node() -> None:
    raw = {
        "metadata": {
            "name": "solo",
            "namespace": "shop",
            "uid": "u1",
            "resourceVersion": "9",
            "labels": {"app": "solo"},
            "annotations": {
                "keep": "me",
                "spillover.io/cluster": "east",
                "controller.kubernetes.io/pod-deletion-cost": "-1000",
            },
        },
        "spec": {"nodeName": "spillover-east", "containers": [{"name": "app"}]},
        "status": {"phase": "Running"},
    }
    assert recreated_pod(raw) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "solo", "namespace": "shop", "labels": {"app": "solo"}, "annotations": {"keep": "me"}},
        "spec": {"containers": [{"name": "app"}]},
    }


def test_repatriation_hints_parse() -> None:
    hints = parse_hints(
        {
            "spillover.io/repatriate": "true",
            "spillover.io/repatriate-after": "5m",
            "spillover.io/repatriate-max-in-flight": "3",
        }
    )
    assert (hints.repatriate, hints.repatriate_after, hints.repatriate_max_in_flight) == (True, 300.0, 3)


async def test_a_new_leader_holds_back_the_workload_the_last_one_struck(home: Home) -> None:
    home.controller.store = PingPongStore(home.api, "spillover-system")
    await ping_pong(home)  # the strike, written for the next leader at the end of its pass
    assert len(home.told("RepatriationBlocked")) == 1

    successor = Repatriation(
        home.api,
        HomeCapacity(),
        home.directory,
        home.events,
        home.metrics,
        DELAY,
        store=PingPongStore(home.api, "spillover-system"),
    )
    leading = asyncio.create_task(successor.lead())
    try:
        await until(lambda: successor.ping_pong.strikes("shop/ReplicaSet/web") == 1)
    finally:
        leading.cancel()
        await asyncio.gather(leading, return_exceptions=True)
