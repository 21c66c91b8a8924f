from __future__ import annotations

from extender.planner.live import LivePlanner
from extender.wire.core import OwnerReference
from tests.unit.fakes import make_pod, peer


async def test_candidates_seen_by_filter_get_a_plan_that_prefers_the_cheaper_peer() -> None:
    east, west = peer("east", cost=1.0), peer("west", cost=3.0)
    planner = LivePlanner(lambda: [east, west])
    pod = make_pod(name="web-1", cpu="500m")
    pod.metadata.owner_references = [OwnerReference(kind="ReplicaSet", name="web", uid="rs-1", controller=True)]
    planner.note_candidate(pod)
    result = await planner.solve()
    assert [p.cluster for p in result.placements] == ["east"]
    east_score, west_score = planner.score(pod, east), planner.score(pod, west)
    assert east_score is not None and west_score is not None and east_score > west_score
    assert planner.summary()["placed"] == {"east": 1}


async def test_a_vetoed_peer_gets_nothing_from_the_plan() -> None:
    east, west = peer("east", cost=1.0), peer("west", cost=3.0)
    planner = LivePlanner(lambda: [east, west], veto=lambda pod, p: "withdrawn" if p.name == "east" else None)
    planner.note_candidate(make_pod(name="web-1", cpu="500m"))
    result = await planner.solve()
    assert [p.cluster for p in result.placements] == ["west"]


async def test_bound_pods_leave_the_backlog() -> None:
    planner = LivePlanner(lambda: [peer("east")])
    pod = make_pod(name="web-1")
    planner.note_candidate(pod)
    planner.bound(pod, "east")
    assert len(planner.candidates) == 0


async def test_a_plan_solved_while_a_peer_was_down_says_nothing_once_it_is_back() -> None:
    east, west = peer("east", cost=1.0), peer("west", cost=3.0)
    east.reachable = False
    planner = LivePlanner(lambda: [east, west])
    pod = make_pod(name="api-1", cpu="500m")  # its own UID: class keys are cached by UID
    planner.note_candidate(pod)
    result = await planner.solve()
    assert [p.cluster for p in result.placements] == ["west"]
    assert planner.score(pod, west) == 10  # while east is down, the plan steers to west

    east.reachable = True  # back: the cheaper peer must not lose to a plan made without it
    assert planner.score(pod, east) is None and planner.score(pod, west) is None
    await planner.solve()
    east_score, west_score = planner.score(pod, east), planner.score(pod, west)
    assert east_score is not None and west_score is not None and east_score > west_score
