"""The bind verb's writes: what reaches the apiserver, and what it can skip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from extender.capacity.tracker import Reservations
from extender.kube.raw import ApiError
from extender.scheduling.binder import Binder
from extender.scheduling.state import BindError
from extender.server.extender_app import ExtenderVerbs
from extender.server.metrics import Metrics
from extender.wire.core import Pod
from tests.unit.fakes import FakeHomeView, FakeState, peer

FIXTURE = Path(__file__).parent.parent / "fixtures" / "extender" / "filter_args_virtual_only.json"


class RecordingHome:
    """The home apiserver as the binder sees it: answers reads with the pod, records every call."""

    def __init__(self, pod: dict[str, Any]) -> None:
        self.pod = json.dumps(pod).encode()
        self.calls: list[tuple[str, str]] = []

    async def get(self, path: str, query: Any = ()) -> bytes:
        self.calls.append(("GET", path))
        return self.pod

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> bytes:
        self.calls.append((method, path))
        return b"{}"


def binder_for(pod: dict[str, Any]) -> tuple[Binder, RecordingHome]:
    east = peer("east")
    home = RecordingHome(pod)
    return Binder(home, {east.virtual_node: east}, Reservations(), FakeHomeView()), home  # type: ignore[arg-type]


async def test_a_pod_filter_sent_to_a_peer_is_bound_without_reading_it_back() -> None:
    args = json.loads(FIXTURE.read_bytes())
    pod = args["Pod"]
    meta = pod["metadata"]
    binder, home = binder_for(pod)
    state = FakeState([peer("east")], home_nodes=["home-1"])
    status, _ = ExtenderVerbs(state, Metrics()).filter(FIXTURE.read_bytes())
    assert status == 200
    remembered_pod, remembered_body = state.remembered[meta["uid"]]
    assert json.loads(remembered_body) == pod  # the scheduler's own JSON, as sent
    assert remembered_pod.metadata.uid == meta["uid"]
    binder.filtered_pods.update(state.remembered)

    await binder.bind(meta["namespace"], meta["name"], meta["uid"], "spillover-east")

    assert home.calls == [("POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding")]


async def test_a_pod_not_seen_by_filter_is_read_from_the_apiserver_first() -> None:
    pod = json.loads(FIXTURE.read_bytes())["Pod"]
    meta = pod["metadata"]
    binder, home = binder_for(pod)

    await binder.bind(meta["namespace"], meta["name"], meta["uid"], "spillover-east")

    path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
    assert home.calls == [("GET", path), ("POST", path + "/binding")]


async def test_a_remembered_pod_of_another_uid_is_not_trusted() -> None:
    pod = json.loads(FIXTURE.read_bytes())["Pod"]
    meta = pod["metadata"]
    binder, home = binder_for(pod)
    stale = dict(pod, metadata=dict(meta, uid="older-pod-same-name"))
    stale_body = json.dumps(stale).encode()
    binder.filtered_pods[meta["uid"]] = (msgspec.json.decode(stale_body, type=Pod), stale_body)

    await binder.bind(meta["namespace"], meta["name"], meta["uid"], "spillover-east")

    assert home.calls[0][0] == "GET"


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
    bodies: list[Any] = []

    class Home(RecordingHome):
        async def request(self, method: str, path: str, body: Any = None, **_: Any) -> bytes:
            bodies.append(body)
            return await super().request(method, path, body)

    home = Home(pod)
    delegation = RecordingDelegation()
    binder = Binder(home, {east.virtual_node: east}, Reservations(), FakeHomeView(), delegation)  # type: ignore[arg-type]

    await binder.bind(meta["namespace"], meta["name"], meta["uid"], "spillover-east")

    path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
    assert home.calls == [("GET", path), ("POST", path + "/binding")]  # no PATCH of the proxy
    assert bodies[0]["metadata"]["annotations"] == {
        "spillover.io/cluster": "east",
        "spillover.io/delegate": f"shop/{meta['name']}-x",
    }
    assert bodies[0]["target"]["name"] == "spillover-east" and delegation.created == [meta["name"]]
    assert delegation.undone == []


class NodeLookup:
    """The home apiserver as a node lookup sees it."""

    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.asked: list[str] = []

    async def get(self, path: str, query: object = None) -> bytes:
        self.asked.append(path)
        if self.answer != 200:
            raise ApiError(self.answer, b'{"message": "nope"}', "GET", path)
        return b"{}"


@pytest.mark.parametrize(("answer", "exists"), [(200, True), (404, False)])
async def test_a_home_node_missing_from_the_cache_is_looked_up_in_the_apiserver(answer: int, exists: bool) -> None:
    from extender.runtime import LiveState

    home = NodeLookup(answer)
    state = LiveState(None, None, None, type("B", (), {"home": home})(), None)  # type: ignore[arg-type]
    assert await state.confirm_home_node("home-node-9") is exists
    assert home.asked == ["/api/v1/nodes/home-node-9"]


async def test_a_node_lookup_the_apiserver_cannot_answer_fails_the_bind_for_a_retry_and_odd_names_are_not_asked() -> (
    None
):
    from extender.runtime import LiveState

    home = NodeLookup(503)
    state = LiveState(None, None, None, type("B", (), {"home": home})(), None)  # type: ignore[arg-type]
    with pytest.raises(BindError, match="cannot tell whether node home-node-9 exists"):
        await state.confirm_home_node("home-node-9")
    assert not await state.confirm_home_node("../secrets/x") and not await state.confirm_home_node("A" * 300)
    assert home.asked == ["/api/v1/nodes/home-node-9"]
