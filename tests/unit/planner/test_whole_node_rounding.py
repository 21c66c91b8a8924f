"""The LP is made whole a node at a time (patterns), warm-started, and repaired by exact repacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from extender.planner import PeerLimit, PlanInput, Solver, plan
from extender.planner.lp import LinearProgram, SparseColumns
from extender.planner.objective import score
from extender.planner.packing import violations
from extender.planner.problem import build
from extender.planner.repack import place_more, repack
from extender.planner.snapshot import load_snapshot
from extender.planner.work import Work

from .helpers import GI, peer, pending

SNAPSHOTS = Path(__file__).resolve().parents[3] / "hack" / "snapshots"


def test_sparse_columns_sort_each_column_by_row_sum_repeated_entries_and_keep_given_zeros() -> None:
    # [[0, 5, 0], [2, 0, 0], [1+3, 0.0, 0]] given out of order, (2, 0) twice, (2, 1) an explicit zero
    columns = SparseColumns.of([1.0, 5.0, 0.0, 2.0, 3.0], [2, 0, 2, 1, 2], [0, 1, 1, 0, 0], 3)
    assert columns.start.tolist() == [0, 2, 4, 4]  # the third column is empty
    assert columns.index.tolist() == [1, 2, 0, 2]
    assert columns.value.tolist() == [2.0, 4.0, 5.0, 0.0]
    assert columns.start.dtype == columns.index.dtype == np.int32  # what HiGHS takes, no copy


def test_a_matrix_that_does_not_fit_the_lp_is_refused_naming_its_size() -> None:
    with pytest.raises(ValueError, match="rows up to 2 does not fit 1 columns of 2 rows"):
        outside = SparseColumns.of([1.0], [2], [0], 1)  # row 2 of an LP with rows 0 and 1
        LinearProgram(np.ones(1), outside, np.zeros(2), np.ones(2), np.zeros(1), np.ones(1))


def test_a_warm_resolve_after_a_new_column_or_bound_finds_the_new_optimum_with_its_duals() -> None:
    # min x0 + 2 x1  s.t.  x0 + x1 = 3,  x0 <= 1
    matrix = SparseColumns.of([1.0, 1.0, 1.0], [0, 1, 0], [0, 0, 1], 2)  # [[1, 1], [1, 0]]
    lp = LinearProgram(
        np.array([1.0, 2.0]),
        matrix,
        np.array([3.0, -np.inf]),
        np.array([3.0, 1.0]),
        np.zeros(2),
        np.full(2, np.inf),
    )
    first = lp.solve()
    assert first is not None and first.objective == 5.0
    assert list(first.row_duals) == [2.0, -1.0]  # one more unit of demand costs 2; of room on x0 saves 1
    lp.add_columns(np.array([0.5]), SparseColumns.of([1.0], [0], [0], 1), np.zeros(1), np.full(1, np.inf))
    second = lp.solve()
    assert second is not None and second.objective == 1.5 and list(second.x) == [0.0, 0.0, 3.0]
    lp.set_column_bounds(np.array([2]), np.zeros(1), np.ones(1))
    third = lp.solve()
    assert third is not None and third.objective == 0.5 + 1.0 + 2.0
    lp.set_row_bounds(np.array([0]), np.array([9.0]), np.array([9.0]))
    lp.set_column_bounds(np.array([0, 1]), np.zeros(2), np.zeros(2))
    assert lp.solve() is None  # 9 units with room for 1: no answer, not a wrong one


def test_cpu_heavy_and_memory_heavy_pods_share_every_cheap_node_three_and_three() -> None:
    result = plan(load_snapshot(SNAPSHOTS / "cpu-memory-pairing.yaml"), Solver.LP, advice=False)
    per_node: dict[str, list[str]] = {}
    for placement in result.placements:
        assert placement.cluster == "cheap"
        per_node.setdefault(placement.node, []).append(placement.pod.split("/")[1].split("-")[0])
    assert len(per_node) == 20
    assert all(sorted(kinds) == ["encode"] * 3 + ["index"] * 3 for kinds in per_node.values())
    assert result.status == "optimal"


def test_pairs_are_found_on_nodes_whose_free_room_differs() -> None:
    # No two cheap nodes alike: the pairing must come from the fills, not from averaging twins.
    cheap = {f"c{i}": {"cpu": 16000 + 100 * i, "memory": (64 + i) * GI} for i in range(12)}
    dear = {f"d{i}": {"cpu": 16000, "memory": 64 * GI} for i in range(20)}
    peers = [peer("cheap", cheap, cost=1.0, gib=0.1), peer("dear", dear, cost=2.5, gib=0.25)]
    pods = [pending(f"enc-{i}", 4000, 4 * GI, workload="enc") for i in range(36)]
    pods += [pending(f"idx-{i}", 1000, 14 * GI, workload="idx") for i in range(36)]
    greedy = plan(PlanInput(peers, pods), Solver.GREEDY, advice=False)
    result = plan(PlanInput(peers, pods), Solver.LP, advice=False)
    on_cheap = sum(1 for p in result.placements if p.cluster == "cheap")
    assert on_cheap >= 70 > sum(1 for p in greedy.placements if p.cluster == "cheap")
    assert result.gap is not None and result.gap < 0.02


def test_whole_node_fills_respect_a_per_peer_limit() -> None:
    cheap = {f"c{i}": {"cpu": 16000, "memory": 64 * GI} for i in range(4)}
    dear = {f"d{i}": {"cpu": 16000, "memory": 64 * GI} for i in range(8)}
    peers = [peer("cheap", cheap, cost=1.0, gib=0.1), peer("dear", dear, cost=2.5, gib=0.25)]
    pods = [pending(f"enc-{i}", 4000, 4 * GI, workload="enc") for i in range(12)]
    pods += [pending(f"idx-{i}", 1000, 14 * GI, workload="idx") for i in range(12)]
    plan_input = PlanInput(peers, pods, limits=[PeerLimit("cheap", "idx", max_pods=5)])
    for solver in (Solver.LP, Solver.AUTO):
        result = plan(plan_input, solver, advice=False)
        assert violations(result.problem, result.assignment) == []
        assert len(result.placements) == 24
        on_cheap = sum(1 for p in result.placements if p.cluster == "cheap" and "/idx-" in p.pod)
        assert on_cheap <= 5
    assert on_cheap == 5 and result.status == "optimal"  # auto: 3 encode a node, 5 index beside them


def _two_peers_one_limited() -> tuple[Work, int, int]:
    """A 4-CPU node on the only peer a limited pod may use, taken by a pod that may run anywhere."""
    only = peer("only", {"o": {"cpu": 4000, "memory": 8 * GI}}, cost=1.0)
    other = peer("other", {"x": {"cpu": 4000, "memory": 8 * GI}}, cost=2.0)
    free = pending("free", 2000, GI, workload="free")
    limited = pending("limited", 4000, GI, workload="limited", annotations={"spillover.io/clusters": "only"})
    problem = build(PlanInput([only, other], [free, limited]))
    work = Work(problem)
    c_free = next(c for c, cls in enumerate(problem.classes) if cls.example.workload == "free")
    c_limited = next(c for c, cls in enumerate(problem.classes) if cls.example.workload == "limited")
    work.commit(c_free, np.array([0]), np.array([1]))  # the free pod on the limited pod's only node
    return work, c_free, c_limited


def test_a_pod_only_one_peer_allows_gets_in_when_a_pod_that_may_run_anywhere_moves_out() -> None:
    work, c_free, c_limited = _two_peers_one_limited()
    better = place_more(work, deadline=float("inf"))
    assert better.x[c_limited, 0] == 1 and better.x[c_free, 1] == 1
    assert score(work.problem, better.x).unplaced == 0
    assert violations(work.problem, better.x) == []


def test_a_repack_that_cannot_do_better_changes_nothing() -> None:
    work, _, _ = _two_peers_one_limited()
    assert repack(work, np.array([1]), 1.0) is None  # the other peer's node: nothing to gain there
