"""The plan obeys every rule: node capacity in every resource, hints, tiers, gangs, limits, health."""

from __future__ import annotations

import pytest

from extender.planner import PeerLimit, PlanInput, PlanResult, PlanScores, Solver, plan
from extender.planner.packing import violations
from extender.wire.core import Taint, Toleration

from .helpers import GI, peer, pending

SOLVERS = [Solver.LP, Solver.CPSAT, Solver.GREEDY]


def where(result: PlanResult) -> dict[str, str]:
    return {p.pod: p.cluster for p in result.placements}


@pytest.mark.parametrize("solver", SOLVERS)
def test_no_node_is_overcommitted_in_any_resource(solver: Solver) -> None:
    # cpu would allow 4 pods per node, memory only 2: memory must bind.
    peers = [peer("a", {"a1": {"cpu": 4000, "memory": 4 * GI}, "a2": {"cpu": 4000, "memory": 4 * GI}})]
    pods = [pending(f"p{i}", cpu=1000, memory=2 * GI) for i in range(7)]
    result = plan(PlanInput(peers, pods), solver)
    assert len(result.placements) == 4
    assert violations(result.problem, result.assignment) == []
    assert all("too little memory" in u.reason for u in result.unplaced)


@pytest.mark.parametrize("solver", SOLVERS)
def test_gpu_dimension_is_respected(solver: Solver) -> None:
    peers = [peer("g", {"g1": {"cpu": 32000, "memory": 64 * GI, "nvidia.com/gpu": 2}}, gpu=1.0)]
    pods = [pending(f"t{i}", gpu=1) for i in range(3)]
    result = plan(PlanInput(peers, pods), solver)
    assert len(result.placements) == 2
    assert violations(result.problem, result.assignment) == []


@pytest.mark.parametrize("solver", SOLVERS)
def test_cheaper_peer_fills_first_then_the_next(solver: Solver) -> None:
    cheap = peer("cheap", {"c1": {"cpu": 2000, "memory": 8 * GI}}, cost=0.01)
    dear = peer("dear", {"d1": {"cpu": 8000, "memory": 8 * GI}}, cost=0.05)
    result = plan(PlanInput([dear, cheap], [pending(f"p{i}") for i in range(4)]), solver)
    clusters = sorted(where(result).values())
    assert clusters == ["cheap", "cheap", "dear", "dear"]


@pytest.mark.parametrize("solver", SOLVERS)
def test_lower_tier_fills_before_a_cheaper_higher_tier(solver: Solver) -> None:
    tier0 = peer("onprem", {"o1": {"cpu": 2000, "memory": 8 * GI}}, cost=0.5, tier=0)
    tier1 = peer("cloud", {"c1": {"cpu": 8000, "memory": 8 * GI}}, cost=0.01, tier=1)
    result = plan(PlanInput([tier1, tier0], [pending(f"p{i}") for i in range(3)]), solver)
    assert sorted(where(result).values()) == ["cloud", "onprem", "onprem"]


@pytest.mark.parametrize("solver", SOLVERS)
def test_clusters_avoid_clusters_and_max_cost_are_obeyed(solver: Solver) -> None:
    peers = [
        peer(n, {f"{n}1": {"cpu": 8000, "memory": 8 * GI}}, cost=c) for n, c in (("a", 0.01), ("b", 0.02), ("c", 0.03))
    ]
    pods = [
        pending("only-c", annotations={"spillover.io/clusters": "c"}),
        pending("not-a", annotations={"spillover.io/avoid-clusters": "a"}, workload="x"),
        pending("cheap-only", annotations={"spillover.io/max-cost": "0.015"}, workload="y"),
        pending("none", annotations={"spillover.io/max-cost": "0.001"}, workload="z"),
        pending("home", annotations={"spillover.io/policy": "local-only"}, workload="h"),
    ]
    result = plan(PlanInput(peers, pods), solver)
    got = where(result)
    assert got == {"ns/only-c": "c", "ns/not-a": "b", "ns/cheap-only": "a"}
    reasons = {u.pod: u.reason for u in result.unplaced}
    assert "above max-cost" in reasons["ns/none"]
    assert "local-only" in reasons["ns/home"]


@pytest.mark.parametrize("solver", SOLVERS)
def test_prefer_weight_wins_over_a_slightly_cheaper_peer(solver: Solver) -> None:
    peers = [
        peer("west", {"w": {"cpu": 8000, "memory": 8 * GI}}, cost=0.012),
        peer("east", {"e": {"cpu": 8000, "memory": 8 * GI}}, cost=0.010),
    ]
    result = plan(PlanInput(peers, [pending("p", annotations={"spillover.io/prefer": "west=3,east=1"})]), solver)
    assert where(result) == {"ns/p": "west"}


@pytest.mark.parametrize("solver", SOLVERS)
def test_taints_and_selectors_keep_pods_off_nodes(solver: Solver) -> None:
    taint = Taint(key="dedicated", value="gpu", effect="NoSchedule")
    tainted = peer("t", {"t1": {"cpu": 8000, "memory": 8 * GI}}, cost=0.001, taints=(taint,))
    plain = peer("p", {"p1": {"cpu": 8000, "memory": 8 * GI}}, cost=0.1, labels={"zone": "a"})
    pods = [
        pending("plain"),
        pending("tolerant", tolerations=[Toleration(key="dedicated", operator="Exists")], workload="t"),
        pending("zone-b", node_selector={"zone": "b"}, workload="z"),
    ]
    result = plan(PlanInput([tainted, plain], pods), solver)
    assert where(result) == {"ns/plain": "p", "ns/tolerant": "t"}
    assert "node selector mismatch" in result.unplaced[0].reason


@pytest.mark.parametrize("solver", SOLVERS)
def test_gang_goes_whole_to_one_peer(solver: Solver) -> None:
    # Neither peer alone... only b holds all four; a (cheaper) holds three.
    a = peer("a", {"a1": {"cpu": 3000, "memory": 8 * GI}}, cost=0.01)
    b = peer("b", {"b1": {"cpu": 2000, "memory": 8 * GI}, "b2": {"cpu": 2000, "memory": 8 * GI}}, cost=0.05)
    gang = {"spillover.io/gang": "g", "spillover.io/gang-size": "4"}
    result = plan(PlanInput([a, b], [pending(f"m{i}", annotations=gang) for i in range(4)]), solver)
    assert set(where(result).values()) == {"b"} and len(result.placements) == 4


@pytest.mark.parametrize("solver", SOLVERS)
def test_incomplete_or_unfittable_gang_spills_nothing(solver: Solver) -> None:
    a = peer("a", {"a1": {"cpu": 3000, "memory": 8 * GI}}, cost=0.01)
    b = peer("b", {"b1": {"cpu": 3000, "memory": 8 * GI}}, cost=0.02)
    waiting = {"spillover.io/gang": "w", "spillover.io/gang-size": "3"}
    too_big = {"spillover.io/gang": "big", "spillover.io/gang-size": "4"}
    pods = [pending(f"w{i}", annotations=waiting) for i in range(2)]
    pods += [pending(f"b{i}", annotations=too_big, workload="b") for i in range(4)]
    result = plan(PlanInput([a, b], pods), solver)
    assert result.placements == []
    reasons = {u.pod: u.reason for u in result.unplaced}
    assert "2 of 3 members pending" in reasons["ns/w0"]
    assert "gang big" in reasons["ns/b0"]


@pytest.mark.parametrize("solver", SOLVERS)
def test_per_peer_limit_caps_a_workload(solver: Solver) -> None:
    cheap = peer("cheap", {"c1": {"cpu": 16000, "memory": 32 * GI}}, cost=0.01)
    dear = peer("dear", {"d1": {"cpu": 16000, "memory": 32 * GI}}, cost=0.05)
    pods = [pending(f"p{i}", workload="web") for i in range(6)]
    result = plan(PlanInput([cheap, dear], pods, limits=[PeerLimit("cheap", "web", max_share=0.5)]), solver)
    assert sorted(where(result).values()) == ["cheap"] * 3 + ["dear"] * 3


def test_unhealthy_peer_gets_nothing_and_says_why() -> None:
    sick = peer("sick", {"s1": {"cpu": 8000, "memory": 8 * GI}}, healthy=False)
    result = plan(PlanInput([sick], [pending("p")]))
    assert result.placements == []
    assert "unreachable" in result.unplaced[0].reason


def test_scale_up_advice_counts_fewest_nodes_of_existing_shapes() -> None:
    small = peer("a", {"a1": {"cpu": 4000, "memory": 16 * GI, "pods": 110}}, cost=0.02, gib=0.001)
    small.nodes["a1"].requested = {"cpu": 4000, "memory": 16 * GI, "pods": 10}
    result = plan(PlanInput([small], [pending(f"p{i}", cpu=1000) for i in range(10)]))
    assert len(result.unplaced) == 10
    (row,) = result.advice
    assert (row.cluster, row.nodes, row.pods) == ("a", 3, 10)  # 4 pods per 4-cpu node
    assert row.cost_per_hour == pytest.approx(3 * (4 * 0.02 + 16 * 0.001))


def test_plan_scores_planned_peer_highest_until_its_quota_is_consumed() -> None:
    cheap = peer("cheap", {"c1": {"cpu": 1000, "memory": 8 * GI}}, cost=0.01)
    dear = peer("dear", {"d1": {"cpu": 8000, "memory": 8 * GI}}, cost=0.05)
    # Without an explicit workload, as the live server builds them (workload from the owner).
    pods = [pending(f"p{i}", workload=None, owner="web-abc") for i in range(3)]
    live = PlanScores(plan(PlanInput([cheap, dear], pods)), ttl=30, now=0.0)
    pod = pods[0].pod
    assert live.score(pod, "cheap", now=1.0) == 10
    assert live.score(pod, "dear", now=1.0) == 9
    live.consume(pod, "cheap")
    assert live.score(pod, "cheap", now=1.0) == 5  # no planned room left: an ordinary allowed peer
    assert live.score(pod, "dear", now=1.0) == 9
    assert live.score(pod, "dear", now=31.0) is None  # expired
    stranger = pending("other", cpu=123, workload="other").pod
    assert live.score(stranger, "cheap", now=1.0) is None


def test_plan_names_the_peer_holding_a_gang() -> None:
    a = peer("a", {"a1": {"cpu": 8000, "memory": 8 * GI}})
    gang = {"spillover.io/gang": "g", "spillover.io/gang-size": "2"}
    live = PlanScores(plan(PlanInput([a], [pending(f"m{i}", annotations=gang) for i in range(2)])))
    assert live.gang_peer("ns", "g") == "a"
    assert live.gang_peer("ns", "missing") is None
