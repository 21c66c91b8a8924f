"""bind trusts no caller: it binds only pods Spillover prepared, only where their own rules let
them go, and judges a pod from the apiserver unless its filter's caller can only be the scheduler."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from extender.capacity.node import NodeCapacity
from extender.capacity.reservations import Reservations
from extender.kube.api import PODS
from extender.pod_security import Level
from extender.scheduling.binder import Binder
from extender.scheduling.memory import InMemoryHome, peer
from extender.scheduling.state import BindError, BindRefused
from extender.wire.core import Pod, Taint
from tests.unit.apiserver import FakeApiserver

FIXTURE = Path(__file__).parent.parent / "fixtures" / "extender" / "filter_args_virtual_only.json"
PREPARED: dict[str, Any] = json.loads(FIXTURE.read_bytes())["Pod"]
"""A pod as kube-scheduler sends it after the webhook prepared it (namespace shop, marker, toleration)."""


def prepared(**spec: Any) -> dict[str, Any]:
    pod = copy.deepcopy(PREPARED)
    pod["spec"].update(spec)
    return pod


def unprepared() -> dict[str, Any]:
    """A pod of namespace plain the webhook never saw: no marker, no toleration."""
    pod = copy.deepcopy(PREPARED)
    pod["metadata"]["namespace"] = "plain"
    container = pod["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "500m"}}
    pod["spec"]["tolerations"] = [t for t in pod["spec"]["tolerations"] if t["key"] != "spillover.io/virtual"]
    return pod


class Delegation:
    def __init__(self, refuse: str = "") -> None:
        self.refuse = refuse
        self.created: list[str] = []

    async def create_delegate(self, raw_pod: Any, pod: Pod, peer: Any, peer_node: str) -> Any:
        if self.refuse:
            raise BindRefused(self.refuse)
        self.created.append(pod.metadata.name)

        async def undo() -> None:
            pass

        return undo, {}

    def bound(self, pod: Pod, peer: Any, peer_node: str) -> None:
        pass

    def avoided(self, pod: Pod, peer: str) -> str | None:
        return None


ZONE_A = [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
NAMESPACES = {"shop": {"spillover.io/enabled": "true"}, "plain": {}}


def binder_for(
    pod: dict[str, Any],
    nodes: list[NodeCapacity] | None = None,
    trust_filtered: bool = True,
    delegation: Delegation | None = None,
    level: Level = Level.BASELINE,
) -> tuple[Binder, FakeApiserver, Delegation]:
    east = peer("east")
    east.pod_security = level
    home = FakeApiserver((PODS, pod))
    home.calls.clear()
    delegation = delegation or Delegation()
    view = InMemoryHome(NAMESPACES, nodes)
    binder = Binder(
        home,
        {east.virtual_node: east},
        Reservations(),
        view,
        delegation,
        trust_filtered=trust_filtered,
    )
    return binder, home, delegation


def meta(pod: dict[str, Any]) -> tuple[str, str, str]:
    m = pod["metadata"]
    return m["namespace"], m["name"], m["uid"]


def bindings(home: FakeApiserver) -> list[str]:
    return [c.path for c in home.writes("POST")]


@pytest.mark.parametrize("node", ["home-1", "spillover-east"])
async def test_a_forged_bind_of_a_pod_spillover_never_prepared_is_refused_and_nothing_is_written(node: str) -> None:
    pod = unprepared()
    binder, home, delegation = binder_for(pod)
    with pytest.raises(BindError, match=r"does not request spillover\.io/spillable: Spillover binds only the pods"):
        await binder.bind(*meta(pod), node)
    assert bindings(home) == [] and delegation.created == []


@pytest.mark.parametrize(
    ("spec", "node", "reason"),
    [
        ({"nodeSelector": {"disk": "ssd"}}, NodeCapacity("home-1"), "node selector mismatch"),
        (
            {},
            NodeCapacity("home-1", taints=(Taint("node-role.kubernetes.io/control-plane", "", "NoSchedule"),)),
            "untolerated taint node-role.kubernetes.io/control-plane:NoSchedule",
        ),
        ({}, NodeCapacity("home-1", unschedulable=True), "node unschedulable"),
        (
            {
                "affinity": {
                    "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": ZONE_A}}
                }
            },
            NodeCapacity("home-1", labels={"zone": "b"}),
            "node affinity mismatch",
        ),
    ],
)
async def test_a_bind_to_a_home_node_the_pod_does_not_fit_by_its_own_rules_is_refused(
    spec: dict[str, Any], node: NodeCapacity, reason: str
) -> None:
    pod = prepared(**spec)
    binder, home, _ = binder_for(pod, nodes=[node])
    with pytest.raises(BindError, match=f"does not fit node home-1: {reason}"):
        await binder.bind(*meta(pod), "home-1")
    assert bindings(home) == []


async def test_a_bind_to_a_home_node_the_pod_fits_is_one_binding_and_no_read() -> None:
    pod = prepared(nodeSelector={"disk": "ssd"})
    binder, home, _ = binder_for(pod, nodes=[NodeCapacity("home-1", labels={"disk": "ssd"})])
    binder.filtered_pods[pod["metadata"]["uid"]] = (msgspec.convert(pod, Pod), json.dumps(pod).encode())
    await binder.bind(*meta(pod), "home-1")
    assert [c.method for c in home.calls] == ["POST"]


async def test_a_bind_to_a_home_node_not_in_the_cache_is_refused_for_a_retry() -> None:
    pod = prepared()
    binder, _, _ = binder_for(pod, nodes=[])
    with pytest.raises(BindError, match="node home-1 is not in Spillover's home node cache yet"):
        await binder.bind(*meta(pod), "home-1")


async def test_a_pod_already_bound_is_refused_before_any_delegate() -> None:
    pod = prepared(nodeName="home-2")
    binder, home, delegation = binder_for(pod)
    with pytest.raises(BindError, match="already bound to home-2"):
        await binder.bind(*meta(pod), "spillover-east")
    assert delegation.created == [] and bindings(home) == []


async def test_a_prepared_pod_whose_namespace_was_opted_out_goes_home_but_never_to_a_peer() -> None:
    pod = prepared()
    pod["metadata"]["namespace"] = "plain"
    binder, home, delegation = binder_for(pod)
    with pytest.raises(BindError, match="namespace plain is not opted in to Spillover"):
        await binder.bind(*meta(pod), "spillover-east")
    assert delegation.created == []
    await binder.bind(*meta(pod), "home-1")
    assert bindings(home) == ["/api/v1/namespaces/plain/pods/web-7d4b9c6f5d-x8k2p/binding"]


async def test_a_pod_without_the_virtual_toleration_is_never_bound_to_a_virtual_node() -> None:
    pod = prepared(tolerations=[])
    binder, _, delegation = binder_for(pod)
    with pytest.raises(BindError, match=r"does not tolerate the virtual node's taint spillover\.io/virtual=east"):
        await binder.bind(*meta(pod), "spillover-east")
    assert delegation.created == []


async def test_a_pod_whose_hints_exclude_the_peer_is_not_bound_there() -> None:
    pod = prepared()
    pod["metadata"]["annotations"] = {"spillover.io/avoid-clusters": "east"}
    binder, _, delegation = binder_for(pod)
    with pytest.raises(BindError, match="placement hints exclude peer east"):
        await binder.bind(*meta(pod), "spillover-east")
    assert delegation.created == []


async def test_a_pod_the_peers_pod_security_level_refuses_is_not_bound_there_but_a_privileged_peer_takes_it() -> None:
    pod = prepared(hostNetwork=True)
    binder, _, delegation = binder_for(pod, level=Level.BASELINE)
    with pytest.raises(BindError, match=r'enforces Pod Security "baseline".*host namespaces \(hostNetwork=true\)'):
        await binder.bind(*meta(pod), "spillover-east")
    assert delegation.created == []
    binder, _, delegation = binder_for(pod, level=Level.PRIVILEGED)
    await binder.bind(*meta(pod), "spillover-east")
    assert delegation.created == [pod["metadata"]["name"]]


async def test_a_lasting_refusal_from_the_peer_is_remembered_for_filter() -> None:
    pod = prepared()
    why = "the pod references Secret db and Secret shop/db in peer east was not copied there by Spillover"
    binder, _, _ = binder_for(pod, delegation=Delegation(refuse=why))
    with pytest.raises(BindRefused, match="not copied there by Spillover"):
        await binder.bind(*meta(pod), "spillover-east")
    assert binder.refused_before(msgspec.convert(pod, Pod), peer("east")) == why
    assert binder.refused_before(msgspec.convert(pod, Pod), peer("west")) is None


async def test_when_the_caller_may_not_be_the_scheduler_the_pod_filter_saw_is_not_believed() -> None:
    """A forged filter claimed the pod tolerates everything; the apiserver's copy does not."""
    truth = prepared(tolerations=[])
    claimed = prepared()
    binder, home, delegation = binder_for(truth, trust_filtered=False)
    binder.filtered_pods[claimed["metadata"]["uid"]] = (msgspec.convert(claimed, Pod), json.dumps(claimed).encode())
    with pytest.raises(BindError, match="does not tolerate the virtual node's taint"):
        await binder.bind(*meta(truth), "spillover-east")
    assert home.calls[0].method == "GET" and delegation.created == []
