from __future__ import annotations

from extender.planner.live import BacklogPods, LivePlanner
from extender.planner.types import GangMembersScheduled
from extender.scheduling.memory import make_pod, peer
from extender.wire.core import OwnerReference, Pod


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


async def test_a_pod_whose_bind_holds_room_is_not_planned_twice_and_its_bind_uses_none_of_the_plan() -> None:
    east, west = peer("east", nodes=1, cost=1.0, cpu_m=2000), peer("west", cost=3.0)
    in_flight = make_pod(name="batch-a", cpu="1")
    waiting = make_pod(name="batch-b", cpu="1")
    east.nodes["east-0"].reserved = {"cpu": 1000}  # batch-a's bind holds its room on east
    planner = LivePlanner(lambda: [east, west], in_flight=lambda uid: uid == in_flight.metadata.uid)
    planner.note_candidate(in_flight)
    planner.note_candidate(waiting)

    result = await planner.solve()

    assert [p.cluster for p in result.placements] == ["east"]  # batch-b alone: east still has room
    east.nodes["east-0"].reserved = {}
    east.nodes["east-0"].requested = {"cpu": 1000, "pods": 1}
    planner.bound(in_flight, "east")  # its delegate now counts on east; the plan's room stays
    east_score, west_score = planner.score(waiting, east), planner.score(waiting, west)
    assert east_score == 10 and west_score is not None and west_score < east_score


async def planned_gang(gang: str, size: int) -> tuple[LivePlanner, list[Pod]]:
    """A gang of ``size`` 500m members, all noted, solved onto the cheaper of east and west."""
    east, west = peer("east", cost=1.0), peer("west", cost=3.0)
    hints = {"spillover.io/gang": gang, "spillover.io/gang-size": str(size)}
    members = [make_pod(name=f"{gang}-{i}", cpu="500m", annotations=hints) for i in range(size)]
    planner = LivePlanner(lambda: [east, west])
    for member in members:
        planner.note_candidate(member)
    await planner.solve()
    assert planner.gang_peer(members[0], gang) == "east"
    return planner, members


async def test_a_gang_placed_by_one_plan_keeps_its_peer_while_its_members_bind_across_solves() -> None:
    planner, members = await planned_gang("train", 3)

    planner.bound(members[0], "east")  # one member bound, then a solve with two of three pending
    await planner.solve()

    assert planner.gang_peer(members[1], "train") == "east"  # not "waiting for all 3" forever


async def test_once_its_last_member_is_bound_a_gang_name_is_planned_afresh() -> None:
    planner, first = await planned_gang("nightly", 2)
    gang = {"spillover.io/gang": "nightly", "spillover.io/gang-size": "2"}
    for member in first:
        planner.bound(member, "east")
    assert ("shop", "nightly") not in planner.committed_gangs

    rerun = make_pod(name="nightly-rerun-0", cpu="500m", annotations=gang)  # its partner not created yet
    planner.note_candidate(rerun)
    await planner.solve()
    assert planner.gang_peer(rerun, "nightly") is None  # waits for its gang, not pinned to east alone


def _gang_pod(name: str, node: str = "") -> Pod:
    pod = make_pod(name=name, cpu="400m", annotations={"spillover.io/gang": "g3", "spillover.io/gang-size": "3"})
    pod.spec.node_name = node
    return pod


async def test_a_gang_member_scheduled_at_home_counts_so_the_rest_spill_together() -> None:
    west = peer("west", cost=1.0)
    home_member, waiting = _gang_pod("g3-0", node="home-1"), [_gang_pod("g3-1"), _gang_pod("g3-2")]
    backlog = BacklogPods()
    backlog.replace([home_member, *waiting])
    planner = LivePlanner(lambda: [west], backlog=backlog, peer_of_node=lambda node: None)
    for pod in waiting:
        planner.note_candidate(pod)
    result = await planner.solve()
    assert sorted(p.cluster for p in result.placements) == ["west", "west"]
    assert planner.gang_peer(waiting[0], "g3") == "west"


async def test_without_the_count_the_gang_waits_and_filter_is_told_how_many_are_pending() -> None:
    planner = LivePlanner(lambda: [peer("west")])
    pod = _gang_pod("g3-9")
    planner.note_candidate(pod)
    await planner.solve()
    assert planner.gang_reason(pod, "g3") == "gang g3: 1 of 3 members pending; none spill until all are"


async def test_deleted_candidates_leave_the_backlog_and_the_plan_summary() -> None:
    pods = [_gang_pod(f"gone-{i}") for i in range(2)]
    backlog = BacklogPods()
    backlog.replace(pods)
    planner = LivePlanner(lambda: [peer("west")], backlog=backlog)
    for pod in pods:
        planner.note_candidate(pod)
    await planner.solve()
    assert len(planner.summary()["unplaced"]) == 2
    for pod in pods:  # the Deployment was deleted: the watch says so
        backlog.delete(pod)
    await planner.solve()
    assert planner.summary()["pending"] == 0 and planner.summary()["unplaced"] == []


async def test_candidates_scheduled_or_gone_from_a_relist_leave_the_backlog_and_unseen_ones_stay() -> None:
    scheduled, vanished, unseen = make_pod(name="a"), make_pod(name="b"), make_pod(name="c")
    backlog = BacklogPods()
    backlog.replace([scheduled, vanished])  # the watch has not seen ``unseen`` yet
    planner = LivePlanner(lambda: [peer("west")], backlog=backlog)
    for pod in (scheduled, vanished, unseen):
        planner.note_candidate(pod)
    bound = make_pod(name="a")
    bound.spec.node_name = "home-1"
    backlog.upsert(bound)  # scheduled at home after all
    backlog.replace([])  # a re-list after the watch expired: ``vanished`` is gone
    result = await planner.solve()
    assert [p.pod for p in result.placements] == ["shop/c"]
    assert set(planner.candidates) == {unseen.metadata.uid}


async def test_gang_members_running_on_a_peer_pull_the_rest_there_and_finished_ones_do_not_count() -> None:
    east, west = peer("east", cost=1.0), peer("west", cost=2.0)
    on_west, done = _gang_pod("g3-0", node="spillover-west"), _gang_pod("g3-1", node="spillover-west")
    waiting = _gang_pod("g3-2")
    backlog = BacklogPods()
    backlog.replace([on_west, done, waiting])
    assert done.status is not None
    done.status.phase = "Succeeded"
    backlog.upsert(done)  # a member that finished no longer counts (and no longer runs anywhere)
    assert backlog.scheduled(lambda node: "west") == {("shop", "g3"): GangMembersScheduled(1, "west")}
    planner = LivePlanner(lambda: [east, west], backlog=backlog, peer_of_node=lambda node: "west")
    planner.note_candidate(waiting)
    await planner.solve()
    reason = planner.gang_reason(waiting, "g3")
    assert reason == "gang g3: 1 of 3 members pending (1 already scheduled); none spill until all are"
