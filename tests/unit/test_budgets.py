"""Spend caps: a namespace's pods stay home rather than take it over its cap, in filter and in
bind (where binds in flight count, so a burst cannot overshoot), from the spend home's pod watch
shows; a cap that does not parse keeps the namespace's pods home; other namespaces go as before."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from extender.budgets import Budgets, CapError, parse_cap
from extender.capacity.reservations import Reservations
from extender.delegation.avoid import AvoidList
from extender.home_capacity import HomeCapacity
from extender.kube.api import PODS
from extender.live_state import HomeNamespaces, LiveState, Namespace
from extender.peers.directory import PeerDirectory
from extender.scheduling.binder import Binder
from extender.scheduling.filter import filter_nodes
from extender.scheduling.memory import OPTED_IN, InMemoryHome, make_pod, peer, pod_dict
from extender.scheduling.state import BindError
from extender.wire.core import Pod
from tests.unit.apiserver import FakeApiserver

EAST, WEST = "spillover-east", "spillover-west"


def namespace(name: str, cap: str | None = None) -> Namespace:
    annotations = {"spillover.io/max-spend-per-hour": cap} if cap is not None else None
    return msgspec.convert({"metadata": {"name": name, "labels": OPTED_IN, "annotations": annotations}}, Namespace)


def spilled(name: str, ns: str = "shop", node: str = EAST, cpu: str = "1", **status: Any) -> Pod:
    body = pod_dict(name, namespace=ns, cpu=cpu, memory="0")
    body["spec"]["nodeName"] = node
    body["status"] = {"phase": "Running", **status}
    return msgspec.convert(body, Pod)


class Setup:
    def __init__(self, **caps: str) -> None:
        self.east, self.west = peer("east", cost=1.0), peer("west", cost=0.25)
        self.directory = PeerDirectory()
        for state in (self.east, self.west):
            self.directory.by_virtual_node[state.virtual_node] = state
        self.retries: list[int] = []
        self.namespaces = HomeNamespaces(on_cap_change=lambda: self.retries.append(1))
        self.namespaces.replace([namespace(ns, cap) for ns, cap in {"shop": None, "lab": None, **caps}.items()])
        self.capacity = HomeCapacity()
        self.budgets = Budgets(self.directory.by_virtual_node, self.namespaces, self.capacity.is_spilled)


def test_a_pod_on_a_virtual_node_that_spillover_did_not_prepare_costs_nothing() -> None:
    s = Setup()
    foreign = msgspec.to_builtins(spilled("agent"))  # a DaemonSet's pod the default binder put there
    del foreign["spec"]["containers"][0]["resources"]["requests"]["spillover.io/spillable"]
    del foreign["spec"]["containers"][0]["resources"]["limits"]["spillover.io/spillable"]
    s.budgets.replace([msgspec.convert(foreign, Pod), spilled("a")])
    assert s.budgets.spent("shop") == 1.0  # a's price on east; the agent runs nowhere


@pytest.mark.parametrize(("value", "cap"), [("2", 2.0), ("0.75", 0.75), ("0", 0.0), (".5", 0.5), ("10.25", 10.25)])
def test_a_cap_is_a_plain_non_negative_decimal(value: str, cap: float) -> None:
    assert parse_cap({"spillover.io/max-spend-per-hour": value}) == cap


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "2/h", "", " 2", "nan", "inf", "1." + "0" * 40])
def test_a_bad_cap_is_refused_naming_the_value(value: str) -> None:
    with pytest.raises(CapError) as err:
        parse_cap({"spillover.io/max-spend-per-hour": value})
    assert repr(value) in str(err.value) and "spillover.io/max-spend-per-hour" in str(err.value)


def test_spend_counts_the_live_pods_on_virtual_nodes_of_each_namespace_at_their_peers_prices() -> None:
    s = Setup()
    s.budgets.replace(
        [
            spilled("a"),  # 1 on east
            spilled("b", node=WEST, cpu="2"),  # 2 x 0.25
            spilled("c", phase="Succeeded"),
            spilled("home", node="home-1"),
            spilled("other", ns="lab"),
        ]
    )
    s.budgets.upsert(spilled("d"))
    assert s.budgets.spent("shop") == 2.5
    deleting = spilled("d")
    deleting.metadata.deletion_timestamp = "2026-11-30T00:00:00Z"
    s.budgets.upsert(deleting)
    assert s.budgets.spent("shop") == 1.5 and s.budgets.spent("lab") == 1.0
    spend = s.budgets.spend()
    assert spend.by_namespace_peer == {("shop", "east"): 1.0, ("shop", "west"): 0.5, ("lab", "east"): 1.0}
    s.east.cost = 2.0  # a PeerCluster price change shows at once
    assert s.budgets.spent("shop") == 2.5


def test_the_cap_refusal_names_the_cap_and_the_spend_and_leaves_other_namespaces_and_cheaper_peers_alone() -> None:
    s = Setup(shop="2.5")
    s.budgets.replace([spilled("a"), spilled("b")])
    requests = {"cpu": 1000}
    refused = s.budgets.refusal("shop", s.east, requests)
    assert refused == (
        "namespace shop is capped at spillover.io/max-spend-per-hour=2.5 per hour in peers and spends 2/h now; "
        "this pod would add 1/h on east (3/h): it waits at home until the spend falls or the cap is raised"
    )
    assert s.budgets.refusal("shop", s.west, requests) is None, "0.25/h more fits under the cap"
    assert s.budgets.refusal("lab", s.east, requests) is None


def test_binds_in_flight_count_so_a_burst_cannot_overshoot_and_a_failed_bind_gives_its_share_back() -> None:
    s = Setup(shop="3")
    s.budgets.replace([spilled("a"), spilled("b")])
    requests = {"cpu": 1000}
    assert s.budgets.hold("u1", "shop", s.east, requests) is None
    refused = s.budgets.hold("u2", "shop", s.east, requests)
    assert refused is not None and "spends 2/h now + 1/h being placed" in refused
    s.budgets.release("u1")
    assert s.budgets.hold("u2", "shop", s.east, requests) is None
    bound = spilled("c")
    bound.metadata.uid = "u2"
    s.budgets.upsert(bound)  # the pod shows up bound: its price is spend now, not a hold
    assert s.budgets.spent("shop") == 3.0 and s.budgets.held("shop") == 0.0


def test_a_hold_whose_pod_never_shows_up_lapses() -> None:
    now = [0.0]
    s = Setup(shop="1")
    budgets = Budgets(s.directory.by_virtual_node, s.namespaces, s.capacity.is_spilled, timer=lambda: now[0])
    assert budgets.hold("u1", "shop", s.east, {"cpu": 1000}) is None
    assert budgets.hold("u2", "shop", s.east, {"cpu": 1000}) is not None
    now[0] = 61.0
    assert budgets.hold("u2", "shop", s.east, {"cpu": 1000}) is None


def test_a_cap_that_does_not_parse_keeps_the_namespace_home_and_a_changed_cap_retries_waiting_pods() -> None:
    s = Setup(shop="lots")
    refused = s.budgets.refusal("shop", s.west, {"cpu": 1})
    assert refused is not None and "'lots' is invalid" in refused
    assert "shop's pods stay home until it is fixed" in refused
    before = len(s.retries)
    s.namespaces.upsert(namespace("shop", "lots"))
    assert len(s.retries) == before, "the same cap again: nothing to retry"
    s.namespaces.upsert(namespace("shop", "4"))
    assert len(s.retries) == before + 1 and s.namespaces.cap("shop") == 4.0
    assert s.budgets.budgets() == [{"namespace": "shop", "cap": 4.0, "spendPerHour": 0.0, "leftPerHour": 4.0}]
    s.namespaces.upsert(namespace("shop"))
    assert len(s.retries) == before + 2 and s.namespaces.cap("shop") is None
    assert s.budgets.budgets() == []


def live_state(s: Setup, home: FakeApiserver) -> tuple[LiveState, Binder]:
    binder = Binder(
        home, s.directory.by_virtual_node, Reservations(), InMemoryHome(), budgets=s.budgets
    )
    state = LiveState(home, s.directory, s.capacity, s.namespaces, binder, AvoidList(300), budgets=s.budgets)
    return state, binder


def test_filter_keeps_a_pod_home_rather_than_over_its_namespaces_cap_and_says_why() -> None:
    s = Setup(shop="1.5")
    s.west.cost = 2.0
    s.budgets.replace([spilled("a")])
    state, _ = live_state(s, FakeApiserver())
    pod = make_pod(cpu="1")
    out = filter_nodes(state, pod, [EAST, WEST]).result
    assert out.NodeNames == []
    assert "capped at spillover.io/max-spend-per-hour=1.5 per hour in peers and spends 1/h now" in (
        out.FailedAndUnresolvableNodes[EAST]
    )
    assert "would add 2/h on west" in out.FailedAndUnresolvableNodes[WEST]
    other = make_pod(name="lab-1", namespace="lab", cpu="1")
    assert filter_nodes(state, other, [EAST, WEST]).result.NodeNames == [EAST]


async def test_bind_checks_the_cap_again_counting_the_binds_in_flight() -> None:
    s = Setup(shop="1.5")
    first, second = pod_dict("web-1", cpu="1", memory="0"), pod_dict("web-2", cpu="1", memory="0")
    home = FakeApiserver((PODS, first), (PODS, second))
    _, binder = live_state(s, home)
    held = home.hold("POST", PODS.item("web-1", "shop", "binding"))
    binding = asyncio.create_task(binder.bind("shop", "web-1", "uid-web-1", EAST))
    await asyncio.sleep(0.01)
    with pytest.raises(BindError, match="1/h being placed; this pod would add 1/h on east"):
        await binder.bind("shop", "web-2", "uid-web-2", EAST)
    held.set()
    await binding
    home.fail("POST", PODS.item("web-2", "shop", "binding"), 500)
    s.namespaces.upsert(namespace("shop", "5"))
    with pytest.raises(BindError):
        await binder.bind("shop", "web-2", "uid-web-2", EAST)
    assert s.budgets.held("shop") == 1.0, "the failed bind gave its share back; web-1's is still held"
