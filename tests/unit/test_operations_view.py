"""The operator's view: decisions kept small and explained, spend at the peers' prices, the status
page's numbers, and `spillover explain`'s verdicts from the filter logic itself."""

from __future__ import annotations

import re
from typing import Any

from extender.capacity.model import PeerState
from extender.pod_requests import pod_requests
from extender.scheduling.memory import GI, InMemoryState, make_pod, node_capacity, peer
from extender.scheduling.state import SchedulingState
from extender.server import status_page
from extender.server.decisions import MAX_NAMES, Decisions
from extender.server.explain import explain
from extender.server.history import SpilledHistory
from extender.spend import Spend, SpilledPod, spend_per_hour
from extender.wire.extender import ExtenderFilterResult

# ---- decisions ------------------------------------------------------------------------------------


def test_decisions_keep_the_newest_and_say_why_in_one_line() -> None:
    decisions = Decisions(keep=3)
    home = ExtenderFilterResult(NodeNames=["home-1"])
    spill = ExtenderFilterResult(
        NodeNames=["spillover-east"],
        FailedNodes={"spillover-west": "fits, but ranked below spillover-east"},
        FailedAndUnresolvableNodes={"home-1": "remote-only: the pod runs only on peers"},
    )
    nowhere = ExtenderFilterResult(
        NodeNames=[], FailedNodes={"spillover-east": "no node of east fits: 2 too little cpu"}
    )
    decisions.record("shop", "a", "u-a", "home", 1, home)
    decisions.record("shop", "b", "u-b", "home", 1, home)
    decisions.record("shop", "c", "u-c", "peer", 3, spill)
    decisions.record("shop", "d", "u-d", "none", 2, nowhere)
    assert [d.name for d in decisions.latest()] == ["d", "c", "b"], "newest first, at most 3"
    assert decisions.last_for("u-a") is None
    c = decisions.last_for("u-c")
    assert c is not None and c.reason().startswith("spill to spillover-east (")
    assert "spillover-west: fits, but ranked below spillover-east" in c.reason()
    d = decisions.last_for("u-d")
    assert d is not None and d.reason() == "nowhere: spillover-east: no node of east fits: 2 too little cpu"
    b = decisions.last_for("u-b")
    assert b is not None and b.reason() == "home: 1 home nodes passed kube-scheduler's filters" and b.failed == {}


def test_a_decision_naming_thousands_of_nodes_keeps_the_peers_verdicts_and_few_others() -> None:
    unresolvable = {"spillover-east": "peer east is paused (PeerCluster spec.paused)"}
    unresolvable |= {f"home-{i}": "remote-only: the pod runs only on peers" for i in range(5000)}
    decisions = Decisions()
    decisions.record(
        "shop", "a", "u-a", "none", 5001, ExtenderFilterResult(NodeNames=[], FailedAndUnresolvableNodes=unresolvable)
    )
    kept = decisions.last_for("u-a")
    assert kept is not None and len(kept.failed) == MAX_NAMES
    assert kept.failed["spillover-east"] == "peer east is paused (PeerCluster spec.paused)"


# ---- spend ------------------------------------------------------------------------------------------


def test_spend_is_the_planners_price_of_the_pods_running_in_peers() -> None:
    east = peer("east", cost=2.0)
    east.cost_per_gib = 0.5
    pods = [
        SpilledPod("shop", "east", {"cpu": 500, "memory": 2 * GI}, "Running"),  # 0.5 x 2 + 2 x 0.5 = 2
        SpilledPod("shop", "east", {"cpu": 1000}, "Pending"),  # 2
        SpilledPod("lab", "east", {"cpu": 250}, "Running"),  # 0.5
        SpilledPod("shop", "east", {"cpu": 1000}, "Succeeded"),  # finished: nothing
        SpilledPod("shop", "east", {"cpu": 1000}, "Running", deleting=True),  # going: nothing
        SpilledPod("shop", "gone", {"cpu": 1000}, "Running"),  # peer unknown: nothing
    ]
    spend = spend_per_hour(pods, {"east": east})
    assert spend.by_namespace() == {"shop": 4.0, "lab": 0.5}
    assert spend.by_peer() == {"east": 4.5} and spend.total == 4.5
    assert spend.pods == {("shop", "east"): 2, ("lab", "east"): 1}


# ---- status page ------------------------------------------------------------------------------------


class _Source:
    def __init__(self, peers: list[PeerState], pods: list[SpilledPod]) -> None:
        self._peers = peers
        self._pods = pods
        self.decisions = Decisions()
        self.history = SpilledHistory(lambda: len(pods))
        self.reservations: list[Any] = []
        self.planner = None

    def ready(self) -> tuple[bool, str]:
        return True, "ok"

    def peers(self) -> list[PeerState]:
        return self._peers

    def spilled_pods(self) -> list[SpilledPod]:
        return self._pods

    def spend(self) -> Spend:
        return spend_per_hour(self._pods, {p.name: p for p in self._peers})

    def budgets(self) -> list[dict[str, Any]]:
        return [{"namespace": "shop", "cap": 2.0, "spendPerHour": 1.0, "leftPerHour": 1.0}]

    def repatriation(self) -> list[dict[str, Any]]:
        return [{"pod": "shop/web-1", "peer": "east", "perHour": 1.0, "state": "waiting", "reason": "home has room"}]


def test_the_status_page_draws_each_bar_part_in_proportion_to_its_number() -> None:
    east = peer("east", nodes=[node_capacity("e1", cpu_m=4000, used_cpu_m=1000), node_capacity("e2", cpu_m=4000)])
    east.nodes["e2"].reserved = {"cpu": 2000}
    source = _Source([east, peer("west", healthy=False)], [SpilledPod("shop", "east", {"cpu": 1000}, "Running")])
    source.history.sample(now=0)  # older than an hour: off the chart
    source.history.sample()
    data = status_page.snapshot(source)
    cpu = next(r for r in data["peers"][0]["resources"] if r["resource"] == "cpu")
    assert (cpu["allocatable"], cpu["used"], cpu["reserved"], cpu["free"]) == (8.0, 1.0, 2.0, 5.0)
    page = status_page.render(data)
    bar = re.search(r'data-resource="cpu" data-allocatable="8.0".*?</div>', page)
    assert bar is not None
    widths = dict(re.findall(r'data-part="(\w+)" data-value="[\d.]+" style="width:([\d.]+)%"', bar.group(0)))
    assert widths == {"used": "12.500", "reserved": "25.000", "free": "62.500"}
    assert "not placing" in page and "peer west is unreachable" in page
    assert "<polyline" in page and "<script" not in page
    assert ">shop<" in page and data["spendTotal"] == 1.0
    assert "Spend caps" in page and "Coming home" in page and "shop/web-1" in page


# ---- explain ----------------------------------------------------------------------------------------


class _ExplainSource:
    def __init__(self, state: InMemoryState, peers: list[PeerState]) -> None:
        self.home: Any = None
        self.state: SchedulingState = state
        self.decisions = Decisions()
        self._peers = peers

    def peers(self) -> list[PeerState]:
        return self._peers

    def spend(self) -> Spend:
        return Spend()

    def gang(self, namespace: str, gang: str) -> dict[str, Any]:
        return {"name": gang, "membersWaiting": 2, "peerHoldingRoom": None, "boundTo": None}

    def spilled(self, namespace: str, name: str) -> None:
        return None

    def budget(self, namespace: str) -> str:
        return f"cap 2/h for {namespace}"

    def coming_home(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None


def test_explain_gives_each_peers_verdict_the_ranking_by_price_and_leaves_the_backlog_alone() -> None:
    cheap, dear = peer("east", cost=1.0), peer("west", cost=3.0)
    small = peer("tiny", nodes=[node_capacity("t1", cpu_m=100)])
    state = InMemoryState(peers=[cheap, dear, small])
    pod = make_pod(cpu="500m", annotations={"spillover.io/policy": "remote-only", "spillover.io/max-cost": "2"})
    out = explain(_ExplainSource(state, [cheap, dear, small]), {}, pod)

    rows = {row["peer"]: row for row in out["peers"]}
    assert rows["east"]["verdict"] == "passes" and rows["east"]["rank"] == 1
    assert rows["east"]["pricePerHour"] == 0.5
    assert rows["west"]["verdict"] == "excluded" and "above spillover.io/max-cost=2" in rows["west"]["reason"]
    assert rows["tiny"]["verdict"] == "no room" and "too little cpu" in rows["tiny"]["reason"]
    assert out["hints"]["policy"] == "remote-only" and out["hints"]["maxCost"] == 2
    assert out["spend"]["budget"] == "cap 2/h for shop"
    assert out["summary"].startswith("pending; no filter decision recorded")
    assert state.candidates == [], "explaining a pod must not put it in the planner's backlog"
    assert pod_requests(pod)["cpu"] == 500


def test_explain_names_a_misspelled_hint_and_a_hint_that_does_not_parse() -> None:
    state = InMemoryState(peers=[peer("east")])
    pod = make_pod(annotations={"spillover.io/polciy": "remote-only"})
    out = explain(_ExplainSource(state, [peer("east")]), {}, pod)
    assert "did you mean spillover.io/policy?" in out["warnings"][0]
    bad = make_pod(annotations={"spillover.io/policy": "sometimes"})
    out = explain(_ExplainSource(state, [peer("east")]), {}, bad)
    assert out["summary"].startswith("its hints do not parse, so it never spills")
    assert out["peers"][0]["verdict"] == "excluded"
