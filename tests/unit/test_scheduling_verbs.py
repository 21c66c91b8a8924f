from __future__ import annotations

import pytest

from extender.capacity.model import PeerState
from extender.scheduling.filter import Outcome, SelectorError, filter_nodes, selector_matches
from extender.scheduling.memory import OPTED_IN, InMemoryState, make_pod, node_capacity, peer
from extender.scheduling.preempt import UnknownNode, preempt
from extender.scheduling.prioritize import prioritize
from extender.wire.core import Pod, PodSpec
from extender.wire.extender import ExtenderPreemptionArgs, MetaPod, MetaVictims, Victims

HOME = ["home-1", "home-2"]
EAST, WEST = "spillover-east", "spillover-west"


def state(*peers: PeerState, plan: dict[str, int] | None = None) -> InMemoryState:
    chosen = peers or (peer("east", cost=1.0), peer("west", cost=2.0))
    return InMemoryState(chosen, home_nodes=HOME, namespaces={"shop": {"team": "web", **OPTED_IN}}, plan=plan)


def policy(name: str, **more: str) -> Pod:
    return make_pod(annotations={"spillover.io/policy": name, **more})


# --- filter ---------------------------------------------------------------------------------


def test_local_first_keeps_home_nodes_and_makes_virtual_nodes_unresolvable_when_home_has_room() -> None:
    out = filter_nodes(state(), make_pod(), [*HOME, EAST, WEST])
    assert out.outcome is Outcome.HOME
    assert out.result.NodeNames == HOME
    assert out.result.FailedAndUnresolvableNodes == {
        EAST: "local-first: the home cluster has room",
        WEST: "local-first: the home cluster has room",
    }
    assert out.result.FailedNodes == {}


def test_local_first_passes_only_the_best_ranked_peer_when_no_home_node_is_left() -> None:
    out = filter_nodes(state(), make_pod(), [EAST, WEST])
    assert out.outcome is Outcome.PEER
    assert out.result.NodeNames == [EAST]  # cheaper; one feasible node means no prioritize call
    assert "ranked below spillover-east" in out.result.FailedNodes[WEST]


def test_prefer_weights_can_outrank_a_cheaper_peer_in_filter() -> None:
    # The most preferred peer counts at half price: it wins unless more than twice as dear.
    pod = make_pod(annotations={"spillover.io/prefer": "west=10"})
    out = filter_nodes(state(peer("east", cost=1.0), peer("west", cost=1.8)), pod, [EAST, WEST])
    assert out.result.NodeNames == [WEST]


def test_the_plan_decides_the_ranking_when_there_is_one() -> None:
    out = filter_nodes(state(plan={"west": 9, "east": 2}), make_pod(), [EAST, WEST])
    assert out.result.NodeNames == [WEST]


def test_only_real_node_names_pass_through_untouched() -> None:
    out = filter_nodes(state(), make_pod(), HOME)
    assert out.result.NodeNames == HOME and out.outcome is Outcome.HOME
    assert filter_nodes(state(), make_pod(), []).outcome is Outcome.NONE


def test_a_peer_without_a_fitting_node_is_a_plain_failure_with_the_fit_reason() -> None:
    small = peer("east", nodes=2, cpu_m=1000)
    out = filter_nodes(state(small), make_pod(cpu="2"), [EAST])
    assert out.outcome is Outcome.NONE
    assert out.result.NodeNames == []
    assert out.result.FailedNodes == {EAST: "no node of east fits: 2 too little cpu"}


def test_a_peer_the_workload_was_withdrawn_from_is_unresolvable_with_the_reason() -> None:
    st = state()
    st.avoid["east"] = "withdrawn from east: unschedulable there"
    out = filter_nodes(st, make_pod(), [EAST, WEST])
    assert out.result.NodeNames == [WEST]
    assert out.result.FailedAndUnresolvableNodes == {EAST: "withdrawn from east: unschedulable there"}


def test_gang_members_wait_at_home_until_the_plan_holds_one_peer_for_the_whole_gang() -> None:
    st = state()
    gang = make_pod(annotations={"spillover.io/gang": "train", "spillover.io/gang-size": "4"})
    waiting = filter_nodes(st, gang, [EAST, WEST])
    assert waiting.result.NodeNames == []
    assert "waiting for the planner to place the whole gang of 4 members" in waiting.result.FailedNodes[EAST]
    st.gang_reasons["train"] = "gang train: 2 of 4 members pending; none spill until all are"
    told = filter_nodes(st, gang, [EAST, WEST])
    assert told.result.FailedNodes[EAST] == "gang train: 2 of 4 members pending; none spill until all are"
    st.gangs["train"] = "west"
    held = filter_nodes(st, gang, [EAST, WEST])
    assert held.result.NodeNames == [WEST]
    assert "holds room for the whole gang on peer west" in held.result.FailedAndUnresolvableNodes[EAST]


def test_unhealthy_and_paused_peers_are_unresolvable() -> None:
    down = peer("east", healthy=False)
    paused = peer("west")
    paused.paused = True
    out = filter_nodes(state(down, paused), make_pod(), [EAST, WEST])
    assert out.result.NodeNames == []
    assert out.result.FailedAndUnresolvableNodes[EAST] == "peer east is unreachable: connection refused"
    assert "paused" in out.result.FailedAndUnresolvableNodes[WEST]


def test_a_virtual_name_without_a_peer_is_unresolvable() -> None:
    out = filter_nodes(state(), make_pod(), ["spillover-gone"])
    assert "no peer behind it" in out.result.FailedAndUnresolvableNodes["spillover-gone"]


def test_hints_restrict_peers() -> None:
    pod = make_pod(annotations={"spillover.io/clusters": "west"})
    out = filter_nodes(state(), pod, [EAST, WEST])
    assert out.result.NodeNames == [WEST]
    assert out.result.FailedAndUnresolvableNodes == {EAST: "spillover.io/clusters does not include peer east"}
    avoid = filter_nodes(state(), make_pod(annotations={"spillover.io/avoid-clusters": "west"}), [EAST, WEST])
    assert avoid.result.FailedAndUnresolvableNodes == {WEST: "spillover.io/avoid-clusters excludes peer west"}


def test_max_cost_excludes_expensive_peers() -> None:
    out = filter_nodes(state(), make_pod(annotations={"spillover.io/max-cost": "1.5"}), [EAST, WEST])
    assert out.result.NodeNames == [EAST]
    assert out.result.FailedAndUnresolvableNodes == {WEST: "peer west costs 2, above spillover.io/max-cost=1.5"}


def test_hints_that_do_not_parse_make_virtual_nodes_unresolvable_with_the_message() -> None:
    pod = make_pod(annotations={"spillover.io/max-cost": "cheap"})
    out = filter_nodes(state(), pod, ["home-1", EAST])
    assert out.result.NodeNames == ["home-1"]
    assert "spillover.io/max-cost='cheap' is invalid" in out.result.FailedAndUnresolvableNodes[EAST]


def test_peer_namespace_rules_use_home_namespace_labels() -> None:
    allow_web = peer("east", allowed_namespaces={"matchLabels": {"team": "web"}})
    allow_data = peer(
        "west", allowed_namespaces={"matchExpressions": [{"key": "team", "operator": "In", "values": ["data"]}]}
    )
    out = filter_nodes(state(allow_web, allow_data), make_pod(), [EAST, WEST])
    assert out.result.NodeNames == [EAST]
    assert out.result.FailedAndUnresolvableNodes == {
        WEST: "peer west does not allow namespace shop (PeerCluster allowedNamespaces)"
    }


def test_an_invalid_namespace_selector_rejects_with_its_problem() -> None:
    broken = peer("east", allowed_namespaces={"matchExpressions": [{"key": "team", "operator": "Near"}]})
    out = filter_nodes(state(broken), make_pod(), [EAST])
    assert "invalid allowedNamespaces selector" in out.result.FailedAndUnresolvableNodes[EAST]


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        (None, True),
        ({}, True),
        ({"matchLabels": {"team": "web"}}, True),
        ({"matchLabels": {"team": "data"}}, False),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["data"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, True),
    ],
)
def test_label_selector_semantics(selector: dict[str, object] | None, matches: bool) -> None:
    assert selector_matches(selector, {"team": "web"}) is matches


@pytest.mark.parametrize(
    "selector",
    [
        {"matchLabels": ["x"]},
        {"matchExpressions": {"key": "x"}},
        {"matchExpressions": [{"key": "team", "operator": "In"}]},
        {"matchExpressions": ["x"]},
    ],
)
def test_malformed_selectors_raise(selector: dict[str, object]) -> None:
    with pytest.raises(SelectorError):
        selector_matches(selector, {"team": "web"})


def test_remote_first_prefers_fitting_peers_over_home() -> None:
    out = filter_nodes(state(), policy("remote-first"), [*HOME, EAST])
    assert out.outcome is Outcome.PEER
    assert out.result.NodeNames == [EAST]
    assert out.result.FailedAndUnresolvableNodes == {
        "home-1": "remote-first: a peer has room",
        "home-2": "remote-first: a peer has room",
    }


def test_remote_first_falls_back_to_home_when_no_peer_fits() -> None:
    full = peer("east", nodes=1, cpu_m=100)
    out = filter_nodes(state(full), policy("remote-first"), [*HOME, EAST])
    assert out.outcome is Outcome.HOME
    assert out.result.NodeNames == HOME
    assert EAST in out.result.FailedNodes


def test_remote_only_never_uses_home() -> None:
    full = peer("east", nodes=1, cpu_m=100)
    out = filter_nodes(state(full), policy("remote-only"), [*HOME, EAST])
    assert out.outcome is Outcome.NONE
    assert out.result.NodeNames == []
    assert out.result.FailedAndUnresolvableNodes == {n: "remote-only: the pod runs only on peers" for n in HOME}
    assert EAST in out.result.FailedNodes


def test_remote_only_waits_when_the_scheduler_examined_no_virtual_node() -> None:
    out = filter_nodes(state(), policy("remote-only"), HOME)
    assert out.outcome is Outcome.NONE and out.result.NodeNames == []
    assert set(out.result.FailedNodes) == set(HOME), "resolvable: the next attempt may examine the peers"
    assert all("no peer was among the nodes the scheduler examined" in why for why in out.result.FailedNodes.values())
    assert filter_nodes(state(), policy("remote-first"), HOME).result.NodeNames == HOME, "a preference: home it is"


def test_local_only_never_uses_peers() -> None:
    out = filter_nodes(state(), policy("local-only"), [EAST])
    assert out.outcome is Outcome.NONE
    assert out.result.FailedAndUnresolvableNodes == {EAST: "local-only: the pod never leaves the home cluster"}


def test_every_rejected_node_carries_a_reason_and_every_name_is_accounted_for() -> None:
    down = peer("north", healthy=False)
    names = [*HOME, EAST, WEST, down.virtual_node, "spillover-gone"]
    for pod in (make_pod(), policy("remote-first"), policy("remote-only"), make_pod(cpu="100")):
        result = filter_nodes(state(peer("east"), peer("west"), down), pod, names).result
        judged = [*result.NodeNames, *result.FailedNodes, *result.FailedAndUnresolvableNodes]
        assert sorted(judged) == sorted(names)
        assert all(result.FailedNodes.values()) and all(result.FailedAndUnresolvableNodes.values())


def test_requests_that_do_not_parse_are_unresolvable_not_a_crash() -> None:
    pod = make_pod(cpu="lots")
    out = filter_nodes(state(), pod, [EAST])
    assert "do not parse" in out.result.FailedAndUnresolvableNodes[EAST]


# --- prioritize -----------------------------------------------------------------------------


def scores(st: InMemoryState, pod: Pod, names: list[str]) -> dict[str, int]:
    return {hp.Host: hp.Score for hp in prioritize(st, pod, names)}


def test_cheaper_peers_score_higher_and_scores_stay_within_0_to_10() -> None:
    result = scores(state(peer("east", cost=1.0), peer("west", cost=4.0)), make_pod(), [EAST, WEST])
    assert result[EAST] > result[WEST]
    assert all(0 <= s <= 10 for s in result.values())


def test_real_nodes_all_get_the_same_score() -> None:
    result = scores(state(), make_pod(), [*HOME, EAST])
    assert result["home-1"] == result["home-2"]


def test_prefer_weights_can_outweigh_cost() -> None:
    pod = make_pod(annotations={"spillover.io/prefer": "west=10,east=0"})
    result = scores(state(peer("east", cost=1.0), peer("west", cost=1.5)), pod, [EAST, WEST])
    assert result[WEST] > result[EAST]


def test_more_headroom_wins_between_equal_cost_peers() -> None:
    busy = peer("east", cost=1.0, used_cpu_m=3500, used_memory=0)
    idle = peer("west", cost=1.0)
    result = scores(state(busy, idle), make_pod(), [EAST, WEST])
    assert result[WEST] > result[EAST]


def test_headroom_is_recomputed_when_the_peer_capacity_generation_changes() -> None:
    east = peer("east", cost=1.0)
    st = state(east, peer("west", cost=1.0))
    before = scores(st, make_pod(), [EAST, WEST])
    for node in east.nodes.values():
        node.requested = {"cpu": 3900, "memory": node.allocatable["memory"] - 1}
    east.generation += 1
    after = scores(st, make_pod(), [EAST, WEST])
    assert before[EAST] == before[WEST] and after[EAST] < after[WEST]


def test_the_planner_score_wins_when_there_is_one() -> None:
    st = state(peer("east", cost=1.0), peer("west", cost=9.0), plan={"west": 10, "east": 3})
    assert scores(st, make_pod(), [EAST, WEST]) == {EAST: 3, WEST: 10}
    clamped = state(peer("east"), plan={"east": 99})
    assert scores(clamped, make_pod(), [EAST]) == {EAST: 10}


def test_prioritize_answers_every_name_in_order() -> None:
    names = [EAST, "home-1", "spillover-gone", WEST]
    assert [hp.Host for hp in prioritize(state(), make_pod(), names)] == names


# --- preempt --------------------------------------------------------------------------------


def test_preempt_never_offers_victims_on_virtual_nodes() -> None:
    args = ExtenderPreemptionArgs(
        Pod=make_pod(),
        NodeNameToMetaVictims={
            "home-1": MetaVictims(Pods=[MetaPod(UID="a")], NumPDBViolations=1),
            EAST: MetaVictims(Pods=[MetaPod(UID="b")]),
            "spillover-gone": None,
        },
    )
    result = preempt(state(), args)
    assert result.NodeNameToMetaVictims == {"home-1": MetaVictims(Pods=[MetaPod(UID="a")], NumPDBViolations=1)}


def test_preempt_converts_full_victims_to_meta_victims() -> None:
    victim = make_pod(name="low")
    args = ExtenderPreemptionArgs(
        Pod=make_pod(),
        NodeNameToVictims={"home-2": Victims(Pods=[victim], NumPDBViolations=0), WEST: Victims(Pods=[victim])},
    )
    result = preempt(state(), args)
    assert result.NodeNameToMetaVictims == {"home-2": MetaVictims(Pods=[MetaPod(UID="uid-low")])}


def test_preempt_refuses_unknown_node_names() -> None:
    args = ExtenderPreemptionArgs(Pod=Pod(spec=PodSpec()), NodeNameToMetaVictims={"mystery": MetaVictims()})
    with pytest.raises(UnknownNode, match="mystery"):
        preempt(state(), args)


def test_fit_reason_reflects_real_nodes_not_the_summary() -> None:
    spread = peer("east", nodes=[node_capacity(f"east-{i}", cpu_m=1000) for i in range(8)])
    out = filter_nodes(state(spread), make_pod(cpu="2"), [EAST])
    assert out.result.FailedNodes == {EAST: "no node of east fits: 8 too little cpu"}
