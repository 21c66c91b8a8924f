"""Property: on random snapshots no solver ever overcommits a node or breaks a hint, gang or limit."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.planner import PeerLimit, PlanInput, Solver, plan
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
            )
            for i in range(count)
        ]
    limits = []
    if draw(st.booleans()):
        limits.append(PeerLimit(draw(st.sampled_from(NAMES)), "w0", max_pods=draw(st.integers(0, 3))))
    return PlanInput(peers, pods, limits=limits)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan_input=inputs(), solver=st.sampled_from([Solver.LP, Solver.CPSAT, Solver.GREEDY]))
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
