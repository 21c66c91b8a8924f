"""The bind verb's writes: what reaches the apiserver, and what it can skip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from extender.capacity.reservations import Reservations
from extender.delegation.avoid import AvoidList
from extender.home_capacity import HomeCapacity
from extender.kube.api import NODES, PODS
from extender.live_state import HomeNamespaces, LiveState
from extender.peers.directory import PeerDirectory
from extender.scheduling.binder import Binder
from extender.scheduling.memory import InMemoryHome, InMemoryState, peer
from extender.scheduling.state import BindError
from extender.server.extender_app import ExtenderVerbs
from extender.server.metrics import Metrics
from extender.wire.core import Pod
from tests.unit.apiserver import FakeApiserver

FIXTURE = Path(__file__).parent.parent / "fixtures" / "extender" / "filter_args_virtual_only.json"


def binder_for(pod: dict[str, Any]) -> tuple[Binder, FakeApiserver]:
    east = peer("east")
    home = FakeApiserver((PODS, pod))
    home.calls.clear()
    return Binder(home, {east.virtual_node: east}, Reservations(), InMemoryHome()), home


def calls(home: FakeApiserver) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in home.calls]


async def test_a_pod_filter_sent_to_a_peer_is_bound_without_reading_it_back() -> None:
    args = json.loads(FIXTURE.read_bytes())
    pod = args["Pod"]
    meta = pod["metadata"]
    binder, home = binder_for(pod)
    state = InMemoryState([peer("east")], home_nodes=["home-1"])
    status, _ = ExtenderVerbs(state, Metrics()).filter(FIXTURE.read_bytes())
    assert status == 200
    remembered_pod, remembered_body = state.remembered[meta["uid"]]
    assert json.loads(remembered_body) == pod  # the scheduler's own JSON, as sent
    assert remembered_pod.metadata.uid == meta["uid"]
    binder.filtered_pods.update(state.remembered)

    await binder.bind(meta["namespace"], meta["name"], meta["uid"], "spillover-east")

    assert calls(home) == [("POST", PODS.item(meta["name"], meta["namespace"], "binding"))]


async def test_a_pod_not_seen_by_filter_is_read_from_the_apiserver_first() -> None:
    pod = json.loads(FIXTURE.read_bytes())["Pod"]
    meta = pod["metadata"]
    binder, home = binder_for(pod)

    await binder.bind(meta["namespace"], meta["name"], meta["uid"], "spillover-east")

    path = PODS.item(meta["name"], meta["namespace"])
    assert calls(home) == [("GET", path), ("POST", path + "/binding")]


async def test_a_remembered_pod_of_another_uid_is_not_trusted() -> None:
    pod = json.loads(FIXTURE.read_bytes())["Pod"]
    meta = pod["metadata"]
    binder, home = binder_for(pod)
    stale = dict(pod, metadata=dict(meta, uid="older-pod-same-name"))
    stale_body = json.dumps(stale).encode()
    binder.filtered_pods[meta["uid"]] = (msgspec.json.decode(stale_body, type=Pod), stale_body)

    await binder.bind(meta["namespace"], meta["name"], meta["uid"], "spillover-east")

    assert calls(home)[0][0] == "GET"


class RecordingDelegation:
    """A delegator that only records: the binder's side of the two-phase bind."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.undone: list[str] = []

    async def create_delegate(self, raw_pod: Any, pod: Pod, peer: Any, peer_node: str) -> Any:
        self.created.append(pod.metadata.name)

        async def undo() -> None:
            self.undone.append(pod.metadata.name)

        return undo, {"spillover.io/cluster": peer.name, "spillover.io/delegate": f"shop/{pod.metadata.name}-x"}

    def bound(self, pod: Pod, peer: Any, peer_node: str) -> None:
        pass

    def avoided(self, pod: Pod, peer: str) -> str | None:
        return None


async def test_a_spilled_pods_annotations_ride_on_its_binding_so_the_proxy_gets_no_write_of_its_own() -> None:
    pod = json.loads(FIXTURE.read_bytes())["Pod"]
    meta = pod["metadata"]
    east = peer("east")
    home = FakeApiserver((PODS, pod))
    home.calls.clear()
    delegation = RecordingDelegation()
    binder = Binder(home, {east.virtual_node: east}, Reservations(), InMemoryHome(), delegation)

    await binder.bind(meta["namespace"], meta["name"], meta["uid"], "spillover-east")

    path = PODS.item(meta["name"], meta["namespace"])
    assert calls(home) == [("GET", path), ("POST", path + "/binding")]  # no PATCH of the proxy
    bodies = [c.body for c in home.writes()]
    assert bodies[0]["metadata"]["annotations"] == {
        "spillover.io/cluster": "east",
        "spillover.io/delegate": f"shop/{meta['name']}-x",
    }
    assert bodies[0]["target"]["name"] == "spillover-east" and delegation.created == [meta["name"]]
    assert delegation.undone == []


def live_state(home: FakeApiserver) -> LiveState:
    binder = Binder(home, {}, Reservations(), InMemoryHome())
    return LiveState(home, PeerDirectory(), HomeCapacity(), HomeNamespaces(), binder, AvoidList(300))


async def test_a_home_node_missing_from_the_cache_is_looked_up_in_the_apiserver() -> None:
    home = FakeApiserver((NODES, {"metadata": {"name": "home-node-9"}}))
    state = live_state(home)
    assert await state.confirm_home_node("home-node-9")
    assert not await state.confirm_home_node("home-node-10")
    assert [c.path for c in home.calls] == [NODES.item("home-node-9"), NODES.item("home-node-10")]


async def test_a_node_lookup_the_apiserver_cannot_answer_fails_the_bind_for_a_retry_and_odd_names_are_not_asked() -> (
    None
):
    home = FakeApiserver()
    home.fail("GET", NODES.item("home-node-9"), 503)
    state = live_state(home)
    with pytest.raises(BindError, match="cannot tell whether node home-node-9 exists"):
        await state.confirm_home_node("home-node-9")
    assert not await state.confirm_home_node("../secrets/x") and not await state.confirm_home_node("A" * 300)
    assert [c.path for c in home.calls] == [NODES.item("home-node-9")]


def _no_answer(error: Exception) -> Any:
    def handler(_: Any) -> Any:
        raise error

    return handler


@pytest.mark.parametrize(
    ("unanswered", "undone"),
    [(None, True), (TimeoutError(), False), (ConnectionResetError("the apiserver went away"), False)],
)
async def test_a_binding_refused_is_undone_but_one_left_unanswered_keeps_its_delegate(
    unanswered: Exception | None, undone: bool
) -> None:
    """A Binding with no answer may have been stored (the apiserver restarting mid-burst):
    deleting its delegate could leave a bound pod with none, so only a definite refusal undoes."""
    pod = json.loads(FIXTURE.read_bytes())["Pod"]
    meta = pod["metadata"]
    east = peer("east")
    home = FakeApiserver((PODS, pod))
    binding = PODS.item(meta["name"], meta["namespace"], "binding")
    if unanswered is None:
        home.fail("POST", binding, 409, "pod is already assigned to a node")
    else:
        home.answer("POST", binding, _no_answer(unanswered))
    delegation = RecordingDelegation()
    binder = Binder(home, {east.virtual_node: east}, Reservations(), InMemoryHome(), delegation)

    with pytest.raises(BindError):
        await binder.bind(meta["namespace"], meta["name"], meta["uid"], "spillover-east")

    assert delegation.undone == ([meta["name"]] if undone else [])
