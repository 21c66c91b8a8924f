"""Gangs: the reasons every solver gives, members already scheduled, and sizes that disagree."""

from __future__ import annotations

import pytest

from extender.planner import PlanInput, Solver, plan
from extender.planner.packing import violations
from extender.planner.types import GangMembersScheduled

from .helpers import peer, pending

SOLVERS = [Solver.AUTO, Solver.LP, Solver.CPSAT, Solver.GREEDY]
BIG = {"cpu": 8000, "memory": 16 * 2**30}


def gang(name: str, size: int, **extra: str) -> dict[str, str]:
    return {"spillover.io/gang": name, "spillover.io/gang-size": str(size), **extra}


@pytest.mark.parametrize("solver", SOLVERS)
def test_members_with_no_common_peer_are_told_so_by_every_solver(solver: Solver) -> None:
    peers = [peer("a", {"a1": BIG}), peer("b", {"b1": BIG})]
    pods = [
        pending("m0", annotations=gang("g", 2, **{"spillover.io/clusters": "a"})),
        pending("m1", annotations=gang("g", 2, **{"spillover.io/clusters": "b"})),
    ]
    result = plan(PlanInput(peers, pods), solver)
    assert result.placements == []
    reason = "gang g: no peer is allowed for every member (hints, health or namespace rules)"
    assert {u.reason for u in result.unplaced} == {reason}


@pytest.mark.parametrize("solver", SOLVERS)
def test_members_that_disagree_on_the_gang_size_are_refused_with_what_to_do(solver: Solver) -> None:
    pods = [pending("m0", annotations=gang("g", 2)), pending("m1", annotations=gang("g", 3))]
    result = plan(PlanInput([peer("a", {"a1": BIG})], pods), solver)
    assert result.placements == []
    advice = "disagree on spillover.io/gang-size (2, 3); give every member the same value"
    assert all(advice in u.reason for u in result.unplaced)


@pytest.mark.parametrize("solver", SOLVERS)
def test_members_already_scheduled_count_toward_the_gang_size(solver: Solver) -> None:
    # One member of three runs at home: the two pending ones spill together.
    pods = [pending(f"m{i}", cpu=400, annotations=gang("g3", 3)) for i in range(2)]
    alone = plan(PlanInput([peer("west", {"w1": BIG})], pods), solver)
    assert alone.placements == [] and "2 of 3 members pending" in alone.unplaced[0].reason
    counted = plan(
        PlanInput([peer("west", {"w1": BIG})], pods, scheduled={("ns", "g3"): GangMembersScheduled(1)}), solver
    )
    assert sorted(p.cluster for p in counted.placements) == ["west", "west"]
    assert violations(counted.problem, counted.assignment) == []


@pytest.mark.parametrize("solver", SOLVERS)
def test_members_join_the_peer_their_gang_already_runs_on(solver: Solver) -> None:
    peers = [peer("cheap", {"c1": BIG}, cost=0.1), peer("dear", {"d1": BIG}, cost=1.0)]
    pods = [pending(f"m{i}", annotations=gang("g", 3)) for i in range(2)]
    scheduled = {("ns", "g"): GangMembersScheduled(1, "dear")}
    result = plan(PlanInput(peers, pods, scheduled=scheduled), solver)
    assert sorted(p.cluster for p in result.placements) == ["dear", "dear"]
    assert violations(result.problem, result.assignment) == []
