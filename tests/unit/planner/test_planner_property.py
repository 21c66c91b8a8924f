"""Property: on random snapshots no solver ever overcommits a node or breaks a hint, gang, limit or
spend cap, nor places fewer pods (by the rules) than greedy."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.planner import PeerLimit, PlanInput, Solver, plan
from extender.planner.objective import score
from extender.planner.packing import violations
from extender.planner.pricing import hint_rejection
from extender.wire.core import Taint, Toleration

from .helpers import GI, peer, pending

NAMES = ["a", "b", "c", "d"]
TAINT = Taint(key="dedicated", value="x", effect="NoSchedule")


@st.composite
def inputs(draw: st.DrawFn) -> PlanInput:
    peers = []
    for i in range(draw(st.integers(1, 4))):
        nodes = {
            f"{NAMES[i]}{n}": {
                "cpu": draw(st.sampled_from([1000, 2000, 4000, 8000])),
                "memory": draw(st.sampled_from([1, 2, 4, 8])) * GI,
                "nvidia.com/gpu": draw(st.sampled_from([0, 0, 1, 2])),
                "pods": draw(st.integers(1, 8)),
            }
            for n in range(draw(st.integers(0, 4)))
        }
        peers.append(
            peer(
                NAMES[i],
                nodes,
                cost=draw(st.sampled_from([0.01, 0.02, 0.05])),
                tier=draw(st.integers(0, 1)),
                taints=(TAINT,) if draw(st.booleans()) and i else (),
                healthy=draw(st.integers(0, 5)) > 0,
            )
        )
        for node in peers[-1].nodes.values():
            node.requested = {"cpu": draw(st.sampled_from([0, 500, 1000])), "pods": 1}
    pods = []
    for g in range(draw(st.integers(1, 6))):
        annotations: dict[str, str] = {}
        if draw(st.booleans()):
            annotations["spillover.io/clusters"] = ",".join(
                draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True))
            )
        if draw(st.booleans()):
            annotations["spillover.io/avoid-clusters"] = draw(st.sampled_from(NAMES[1:]))
            if annotations.get("spillover.io/clusters") == annotations["spillover.io/avoid-clusters"]:
                del annotations["spillover.io/avoid-clusters"]
        if draw(st.booleans()):
            annotations["spillover.io/max-cost"] = draw(st.sampled_from(["0.015", "0.03"]))
        count = draw(st.integers(1, 6))
        if draw(st.integers(0, 3)) == 0:
            annotations["spillover.io/gang"] = f"g{g}"
            annotations["spillover.io/gang-size"] = str(count + draw(st.sampled_from([0, 0, 1])))
        tolerations = [Toleration(key="dedicated", operator="Exists")] if draw(st.booleans()) else None
        namespace = draw(st.sampled_from(["ns", "capped", "capped"]))
        cpu = draw(st.sampled_from([250, 500, 1000, 3000]))
        mem = draw(st.sampled_from([GI // 4, GI, 3 * GI]))
        gpu = draw(st.sampled_from([0, 0, 1]))
        pods += [
            pending(
                f"w{g}-{i}",
                cpu,
                mem,
                gpu=gpu,
                annotations=annotations or None,
                workload=f"w{g}",
                tolerations=tolerations,
                namespace=namespace,
            )
            for i in range(count)
        ]
    limits = []
    if draw(st.booleans()):
        limits.append(PeerLimit(draw(st.sampled_from(NAMES)), "w0", max_pods=draw(st.integers(0, 3))))
    budgets = {"capped": draw(st.sampled_from([0.0, 0.01, 0.03, 0.1, 1.0]))} if draw(st.booleans()) else {}
    return PlanInput(peers, pods, limits=limits, budgets=budgets)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan_input=inputs(), solver=st.sampled_from([Solver.AUTO, Solver.LP, Solver.CPSAT, Solver.GREEDY]))
def test_no_solver_ever_overcommits_a_node_or_breaks_a_hint(plan_input: PlanInput, solver: Solver) -> None:
    result = plan(plan_input, solver, time_limit=2.0, advice=False, workers=1)
    assert violations(result.problem, result.assignment) == []
    peers = {p.name: p for p in plan_input.peers}
    hints = {p.name: p.hints for p in plan_input.pods}
    for placed in result.placements:
        target = peers[placed.cluster]
        assert target.healthy
        assert hint_rejection(hints[placed.pod], target) is None
    assert len(result.placements) + len(result.unplaced) == len(plan_input.pods)
    assert all(u.reason for u in result.unplaced)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan_input=inputs(),
    solver=st.sampled_from([Solver.AUTO, Solver.LP, Solver.CPSAT]),
    limit=st.sampled_from([0.01, 2.0]),
)
def test_no_solver_is_worse_than_greedy_by_the_rules_even_after_a_time_out(
    plan_input: PlanInput, solver: Solver, limit: float
) -> None:
    greedy = plan(plan_input, Solver.GREEDY, advice=False)
    result = plan(plan_input, solver, time_limit=limit, advice=False, workers=1)
    assert score(result.problem, result.assignment) <= score(greedy.problem, greedy.assignment)
    assert result.status in ("optimal", "feasible")


@st.composite
def competing(draw: st.DrawFn) -> PlanInput:
    """Hint-limited pods competing with free ones for the cheap peers, and CPU-heavy pods that
    must share nodes with memory-heavy ones: where a per-node relaxation lost pods and money."""
    node = {"cpu": 16000, "memory": 64 * GI}
    cheap = [
        peer(n, {f"{n}{i}": node for i in range(draw(st.integers(1, 3)))}, cost=c)
        for n, c in (("a", 0.01), ("b", 0.012))
    ]
    dear = [peer(n, {f"{n}{i}": node for i in range(3)}, cost=c) for n, c in (("c", 0.03), ("d", 0.05))]
    limited = {"spillover.io/max-cost": "0.015"}
    pods = [pending(f"free-{i}", 1000, 2 * GI, workload="free") for i in range(draw(st.integers(0, 40)))]
    pods += [
        pending(f"ltd-{i}", 1000, 4 * GI, annotations=limited, workload="ltd") for i in range(draw(st.integers(0, 30)))
    ]
    pods += [pending(f"cpu-{i}", 4000, 4 * GI, workload="cpu") for i in range(draw(st.integers(0, 12)))]
    pods += [pending(f"mem-{i}", 1000, 14 * GI, workload="mem") for i in range(draw(st.integers(0, 12)))]
    order = draw(st.permutations(range(len(pods))))
    return PlanInput(cheap + dear, [pods[i] for i in order])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan_input=competing())
def test_hint_limited_and_paired_pods_are_placed_as_the_rules_want(plan_input: PlanInput) -> None:
    greedy = plan(plan_input, Solver.GREEDY, advice=False)
    result = plan(plan_input, Solver.AUTO, time_limit=2.0, advice=False, workers=1)
    assert violations(result.problem, result.assignment) == []
    mine, base = score(result.problem, result.assignment), score(greedy.problem, greedy.assignment)
    assert mine <= base
    # The limited pods fit the cheap peers alone (16 per node): the free ones must make way.
    limited = [p for p in plan_input.pods if p.workload == "ltd"]
    cheap_nodes = sum(len(p.nodes) for p in plan_input.peers if p.cost < 0.015)
    if len(limited) <= 16 * cheap_nodes:
        placed = {p.pod for p in result.placements}
        assert all(p.name in placed for p in limited)
    if result.status == "optimal":
        assert result.gap_pods == 0
