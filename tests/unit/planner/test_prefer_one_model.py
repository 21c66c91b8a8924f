"""`prefer` against price: the live path (plan scores, filter's ranking, prioritize) and `simulate`
place the same pod on the same peer, from one model (`pricing.placement_key`)."""

from __future__ import annotations

import pytest

from extender.capacity.model import PeerState
from extender.planner import PendingPod, PlanInput, Solver, plan
from extender.planner.live import LivePlanner
from extender.scheduling.filter import filter_nodes
from extender.scheduling.memory import InMemoryState, make_pod, peer
from extender.scheduling.prioritize import prioritize

PREFER = {"spillover.io/prefer": "west=3,east=1"}


@pytest.mark.parametrize(
    ("east_cost", "west_cost", "expected"),
    [
        (1.0, 2.0, "east"),  # west 2 x 0.5 = 1.0 against east 1 x 0.83: the discount does not cover 2x
        (1.0, 1.5, "west"),  # west 0.75 against 0.83: the preference wins
        (2.0, 1.0, "west"),
    ],
)
async def test_live_ranking_plan_and_simulate_agree_on_prefer_against_price(
    east_cost: float, west_cost: float, expected: str
) -> None:
    def peers() -> list[PeerState]:
        return [peer("east", cost=east_cost), peer("west", cost=west_cost)]

    pod = make_pod(name=f"web-{east_cost}-{west_cost}", cpu="500m", annotations=PREFER)
    nodes = ["spillover-east", "spillover-west"]

    simulated = plan(PlanInput(peers(), [PendingPod.from_pod(pod)]), Solver.AUTO)
    assert [p.cluster for p in simulated.placements] == [expected]

    no_plan = InMemoryState(peers())
    assert filter_nodes(no_plan, pod, nodes).result.NodeNames == [f"spillover-{expected}"]
    scores = {h.Host: h.Score for h in prioritize(no_plan, pod, nodes)}
    assert max(scores, key=lambda h: scores[h]) == f"spillover-{expected}"

    live_peers = peers()
    planner = LivePlanner(lambda: live_peers)
    planner.note_candidate(pod)
    result = await planner.solve()
    assert [p.cluster for p in result.placements] == [expected]
    planned = InMemoryState(live_peers, plan={p.name: planner.score(pod, p) or 0 for p in live_peers})
    assert filter_nodes(planned, pod, nodes).result.NodeNames == [f"spillover-{expected}"]
