"""Spend caps in the planner: with a cap that pays for only some of a namespace's pods, every solver
places the most pods the cap pays for, at the least cost, and leaves the rest unplaced with the
cap as the reason; other namespaces are planned as before; `spillover simulate` reads `budgets:`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from extender.cli.main import main
from extender.planner import PlanInput, Solver, plan
from extender.planner.cpsat import solve_cpsat
from extender.planner.live import LivePlanner
from extender.planner.objective import score, weights
from extender.planner.packing import violations
from extender.planner.problem import build
from extender.planner.relaxation import relax
from extender.planner.snapshot import SnapshotError, parse
from extender.planner.solve import PlanResult
from extender.planner.work import Work
from extender.scheduling.memory import make_pod
from extender.scheduling.memory import peer as live_peer

from .helpers import GI, peer, pending

SNAPSHOT = Path(__file__).resolve().parents[2] / "fixtures" / "snapshots" / "budgets.yaml"


def competing() -> PlanInput:
    """Team lab (no cap) arrives first and would take the cheap peer b; team shop may spend 2.5/h:
    its 1-CPU pods cost 0.5/h on b and 1/h on a, its 3-CPU pod 3/h on a (it does not fit b)."""
    a = peer("a", {"a0": {"cpu": 16000, "memory": 64 * GI}}, cost=1.0)
    b = peer("b", {"b0": {"cpu": 2000, "memory": 64 * GI}}, cost=0.5)
    pods = [pending(f"free-{i}", 1000, GI, namespace="lab", workload="lab") for i in range(3)]
    pods.append(pending("big", 3000, GI, namespace="shop", workload="big"))
    pods += [pending(f"small-{i}", 1000, GI, namespace="shop", workload="small") for i in range(4)]
    return PlanInput([a, b], pods, budgets={"shop": 2.5})


def shop_spend(result: PlanResult) -> float:
    return sum(p.cost_per_hour for p in result.placements if p.pod.startswith("shop/"))


@pytest.mark.parametrize("solver", [Solver.AUTO, Solver.LP, Solver.CPSAT])
def test_a_cap_that_pays_for_some_pods_gets_the_most_pods_it_pays_for_at_the_least_cost(solver: Solver) -> None:
    plan_input = competing()
    result = plan(plan_input, solver, time_limit=2.0, advice=False, workers=1)
    assert violations(result.problem, result.assignment) == []
    placed = sorted(p.pod for p in result.placements)
    assert len(placed) == 6, "three of lab's and three of shop's: shop's small pods take the cheap peer"
    assert sum(p.startswith("shop/small") for p in placed) == 3 and "shop/big" not in placed
    assert shop_spend(result) == 2.0
    unplaced = {u.pod: u.reason for u in result.unplaced}
    assert unplaced["shop/big"] == (
        "namespace shop's spend cap (spillover.io/max-spend-per-hour) leaves 0.5/h for the pods waiting to spill; "
        "this pod costs 3/h on the cheapest peer it may use, a"
    ), "b has no node big enough for it: a is the cheapest it may use"
    assert unplaced["shop/small-3"].endswith("this pod costs 1/h on the cheapest peer with room, a")
    assert result.budgets == [{"namespace": "shop", "left_per_hour": 2.5, "planned_per_hour": 2.0}]
    greedy = plan(plan_input, Solver.GREEDY, advice=False)
    assert score(result.problem, result.assignment) <= score(greedy.problem, greedy.assignment)


def test_cp_sat_alone_keeps_each_cap_as_one_linear_constraint() -> None:
    problem = build(competing())
    exact = Work(problem)
    outcome = solve_cpsat(exact, 2.0, workers=1)
    assert outcome.status == "optimal"
    assert violations(problem, exact.x) == []
    assert int(exact.x.sum()) == 6 and problem.spend(exact.x).tolist() == [2.0]
    assert float(exact.budget_left[0]) == 0.5


def test_the_lp_relaxation_has_a_row_per_cap_so_its_bound_counts_only_what_the_cap_pays_for() -> None:
    problem = build(competing())
    work = Work(problem)
    relaxation = relax(problem, work, np.arange(problem.n_classes), weights(problem), time.perf_counter() + 2.0)
    assert relaxation is not None and relaxation.proven
    # shop: two small pods on b (1/h) and one and a half on a (1.5/h) spend its 2.5; lab's three go
    assert relaxation.placed == pytest.approx(6.5)


def test_greedy_keeps_the_cap_too_but_places_fewer_in_arrival_order() -> None:
    result = plan(competing(), Solver.GREEDY, advice=False)
    assert violations(result.problem, result.assignment) == []
    assert len(result.placements) == 5 and shop_spend(result) == 2.0


def test_without_the_cap_the_same_backlog_spills_whole() -> None:
    plan_input = competing()
    plan_input.budgets = {}
    result = plan(plan_input, Solver.AUTO, advice=False, workers=1)
    assert len(result.placements) == 8 and result.budgets == []


def test_a_spent_cap_keeps_its_namespace_home_and_advises_no_nodes_for_it() -> None:
    plan_input = competing()
    plan_input.budgets = {"shop": 0.0}
    result = plan(plan_input, Solver.AUTO, workers=1)
    assert {p.pod.split("/")[0] for p in result.placements} == {"lab"}
    assert all("spend cap" in u.reason for u in result.unplaced)
    assert result.advice == [], "nodes would not let a capped namespace spend more"


@pytest.mark.parametrize("solver", [Solver.AUTO, Solver.LP, Solver.CPSAT, Solver.GREEDY])
def test_a_gang_its_cap_cannot_pay_for_whole_stays_home_whole(solver: Solver) -> None:
    a = peer("a", {"a0": {"cpu": 16000, "memory": 64 * GI}}, cost=1.0)
    gang = {"spillover.io/gang": "train", "spillover.io/gang-size": "3"}
    pods = [pending(f"train-{i}", 1000, GI, namespace="ml", annotations=gang) for i in range(3)]
    result = plan(PlanInput([a], pods, budgets={"ml": 2.0}), solver, advice=False, workers=1)
    assert result.placements == []
    assert "gang train: its namespace's spend cap (spillover.io/max-spend-per-hour) leaves 2/h" in (
        result.gang_reasons[("ml", "train")]
    )


async def test_the_live_planner_asks_what_each_backlog_namespace_may_still_spend() -> None:
    east = live_peer("east", cost=1.0)
    asked: list[set[str]] = []

    def left(namespaces: Iterable[str]) -> dict[str, float]:
        asked.append(set(namespaces))
        return {"shop": 1.0}

    planner = LivePlanner(lambda: [east], budgets=left)
    for i in range(3):
        planner.note_candidate(make_pod(name=f"web-{i}", cpu="500m"))
    result = await planner.solve()
    assert asked == [{"shop"}]
    assert len(result.placements) == 2, "1/h pays for two 0.5-core pods at cost 1"


def test_simulate_reads_budgets_from_the_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--snapshot", str(SNAPSHOT), "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["budgets"] == [{"namespace": "shop", "left_per_hour": 3.0, "planned_per_hour": 3.0}]
    assert sum(p["pod"].startswith("shop/") for p in doc["placements"]) == 3
    assert all("spend cap" in u["reason"] for u in doc["unplaced"])
    assert main(["simulate", "--snapshot", str(SNAPSHOT)]) == 0
    assert "CAP LEFT/H" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("budgets", "expected"),
    [
        ([{"namespace": "nope", "maxSpendPerHour": 1}], "budgets[0].namespace: no pods belong to namespace 'nope'"),
        ([{"namespace": "shop", "maxSpendPerHour": -1}], "budgets[0].maxSpendPerHour: must be a non-negative number"),
        (
            [{"namespace": "shop", "maxSpendPerHour": 1}, {"namespace": "shop", "maxSpendPerHour": 2}],
            "budgets[1].namespace: 'shop' has a budget already",
        ),
        ([{"namespace": "shop", "maxSpend": 1}], "budgets[0]: object contains unknown field `maxSpend`"),
    ],
)
def test_a_bad_budget_in_a_snapshot_is_refused_naming_the_place(
    budgets: list[dict[str, object]], expected: str
) -> None:
    data = {
        "clusters": [{"name": "a", "nodes": [{"name": "n", "capacity": {"cpu": 4}}]}],
        "pods": [{"name": "p", "namespace": "shop", "requests": {"cpu": 1}}],
        "budgets": budgets,
    }
    with pytest.raises(SnapshotError, match="^" + expected.replace("[", r"\[").replace("]", r"\]")):
        parse(data)
