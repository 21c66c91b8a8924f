from __future__ import annotations

from typing import Any

import pytest

from extender.capacity.fit import (
    find_node,
    node_fit_rejection,
    placement_rejection,
    tolerates,
)
from extender.pod_requests import pod_requests
from extender.scheduling.memory import GI, make_pod, node_capacity, peer
from extender.wire.core import Taint, Toleration


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": op, "values": list(values)} if values else {"key": key, "operator": op}


def test_a_plain_pod_fits_an_empty_ready_node() -> None:
    assert placement_rejection(make_pod(), node_capacity("n")) is None
    assert node_fit_rejection(make_pod(), pod_requests(make_pod()), node_capacity("n")) is None


def test_cordoned_nodes_are_rejected() -> None:
    assert placement_rejection(make_pod(), node_capacity("n", unschedulable=True)) == "node unschedulable"


def test_a_pod_tolerating_the_unschedulable_taint_may_use_a_cordoned_node() -> None:
    tolerations = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    pod = make_pod(tolerations=tolerations)
    assert placement_rejection(pod, node_capacity("n", unschedulable=True)) is None


def test_node_selector_must_match_every_label() -> None:
    pod = make_pod(nodeSelector={"zone": "a", "disk": "ssd"})
    assert placement_rejection(pod, node_capacity("n", labels={"zone": "a", "disk": "ssd", "x": "y"})) is None
    assert placement_rejection(pod, node_capacity("n", labels={"zone": "a"})) == "node selector mismatch"


@pytest.mark.parametrize(
    ("requirement", "labels", "matches"),
    [
        (expr("zone", "In", "a", "b"), {"zone": "b"}, True),
        (expr("zone", "In", "a"), {"zone": "c"}, False),
        (expr("zone", "In", "a"), {}, False),
        (expr("zone", "NotIn", "a"), {"zone": "b"}, True),
        (expr("zone", "NotIn", "a"), {}, True),
        (expr("zone", "NotIn", "a"), {"zone": "a"}, False),
        (expr("gpu", "Exists"), {"gpu": ""}, True),
        (expr("gpu", "Exists"), {}, False),
        (expr("gpu", "DoesNotExist"), {}, True),
        (expr("gpu", "DoesNotExist"), {"gpu": "1"}, False),
        (expr("cores", "Gt", "8"), {"cores": "16"}, True),
        (expr("cores", "Gt", "8"), {"cores": "8"}, False),
        (expr("cores", "Lt", "8"), {"cores": "4"}, True),
        (expr("cores", "Lt", "8"), {"cores": "many"}, False),
        (expr("cores", "Gt", "x"), {"cores": "4"}, False),
        (expr("cores", "Bogus", "x"), {"cores": "4"}, False),
    ],
)
def test_required_node_affinity_operators_follow_kubernetes(
    requirement: dict[str, Any], labels: dict[str, str], matches: bool
) -> None:
    pod = make_pod(affinity=affinity({"matchExpressions": [requirement]}))
    reason = placement_rejection(pod, node_capacity("n", labels=labels))
    assert (reason is None) is matches
    if not matches:
        assert reason == "node affinity mismatch"


def test_affinity_terms_are_ored_and_requirements_within_a_term_anded() -> None:
    term_a = {"matchExpressions": [expr("zone", "In", "a"), expr("disk", "In", "ssd")]}
    term_b = {"matchExpressions": [expr("zone", "In", "b")]}
    pod = make_pod(affinity=affinity(term_a, term_b))
    assert placement_rejection(pod, node_capacity("n", labels={"zone": "b"})) is None
    assert placement_rejection(pod, node_capacity("n", labels={"zone": "a", "disk": "ssd"})) is None
    assert placement_rejection(pod, node_capacity("n", labels={"zone": "a"})) == "node affinity mismatch"


def test_an_empty_term_selects_no_node() -> None:
    pod = make_pod(affinity=affinity({}))
    assert placement_rejection(pod, node_capacity("n")) == "node affinity mismatch"


def test_match_fields_select_by_node_name() -> None:
    pod = make_pod(affinity=affinity({"matchFields": [expr("metadata.name", "In", "west-2")]}))
    assert placement_rejection(pod, node_capacity("west-2")) is None
    assert placement_rejection(pod, node_capacity("west-1")) == "node affinity mismatch"
    not_in = make_pod(affinity=affinity({"matchFields": [expr("metadata.name", "NotIn", "west-2")]}))
    assert placement_rejection(not_in, node_capacity("west-1")) is None
    assert placement_rejection(not_in, node_capacity("west-2")) == "node affinity mismatch"
    # A node has no other field: fields.Set reads it as "" (In never matches, NotIn always does).
    other_field = make_pod(affinity=affinity({"matchFields": [expr("metadata.uid", "In", "west-2")]}))
    assert placement_rejection(other_field, node_capacity("west-2")) == "node affinity mismatch"
    other_not_in = make_pod(affinity=affinity({"matchFields": [expr("metadata.uid", "NotIn", "x")]}))
    assert placement_rejection(other_not_in, node_capacity("west-2")) is None


@pytest.mark.parametrize(
    "term",
    [
        {"matchFields": [expr("metadata.name", "In", "a", "b")]},  # matchFields take exactly one value
        {"matchFields": [expr("metadata.name", "Exists")]},  # and only In / NotIn
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": []}]},
        {"matchExpressions": [expr("zone", "Exists", "a")]},
        {"matchExpressions": [expr("cores", "Gt", "4.5")]},  # Gt/Lt: one integer
        {"matchExpressions": [expr("cores", "Gt", "1", "2")]},
        {"matchExpressions": [expr("bad key!", "Exists")]},
        {"matchExpressions": [expr("zone", "In", "not a label value")]},
    ],
)
def test_a_term_that_labels_new_requirement_refuses_matches_no_node_but_other_terms_still_count(
    term: dict[str, Any],
) -> None:
    labels = {"zone": "a", "cores": "8"}
    assert placement_rejection(make_pod(affinity=affinity(term)), node_capacity("a", labels=labels)) is not None
    other = {"matchExpressions": [expr("zone", "In", "a")]}
    assert placement_rejection(make_pod(affinity=affinity(term, other)), node_capacity("a", labels=labels)) is None


@pytest.mark.parametrize(("value", "matches"), [("+8", True), ("008", True), (" 8", False), ("8_0", False)])
def test_gt_parses_label_values_as_go_parse_int_does(value: str, matches: bool) -> None:
    pod = make_pod(affinity=affinity({"matchExpressions": [expr("cores", "Gt", "4")]}))
    assert (placement_rejection(pod, node_capacity("n", labels={"cores": value})) is None) is matches


def test_node_selector_needs_each_label_present_and_equal_even_when_empty() -> None:
    pod = make_pod(nodeSelector={"gpu": ""})
    assert placement_rejection(pod, node_capacity("n", labels={"gpu": ""})) is None
    assert placement_rejection(pod, node_capacity("n", labels={})) == "node selector mismatch"


def test_an_untolerated_taint_is_reported_before_a_selector_mismatch_as_the_scheduler_orders_plugins() -> None:
    pod = make_pod(nodeSelector={"zone": "a"})
    node = node_capacity("n", taints=[Taint(key="k", effect="NoSchedule")])
    assert placement_rejection(pod, node) == "untolerated taint k:NoSchedule"


def test_zero_requests_fit_anywhere_with_a_pod_slot_and_non_zero_defaults_are_for_scoring_only() -> None:
    pod = make_pod(cpu="0", memory="0")
    node = node_capacity("n", cpu_m=0, memory=0)
    assert node_fit_rejection(pod, pod_requests(pod), node) is None
    assert node_fit_rejection(pod, pod_requests(pod), node_capacity("n", cpu_m=0, memory=0, pods=0)) == (
        "too many pods"
    )


@pytest.mark.parametrize(
    ("toleration", "taint", "tolerated"),
    [
        (Toleration(key="k", operator="Exists"), Taint(key="k", value="v", effect="NoSchedule"), True),
        (Toleration(key="k", operator="Equal", value="v"), Taint(key="k", value="v", effect="NoExecute"), True),
        (Toleration(key="k", value="v"), Taint(key="k", value="v", effect="NoSchedule"), True),
        (Toleration(key="k", operator="Equal", value="w"), Taint(key="k", value="v", effect="NoSchedule"), False),
        (Toleration(key="k", operator="Exists", effect="NoExecute"), Taint(key="k", effect="NoSchedule"), False),
        (Toleration(operator="Exists"), Taint(key="anything", effect="NoExecute"), True),
        (Toleration(key="other", operator="Exists"), Taint(key="k", effect="NoSchedule"), False),
        (Toleration(key="k", operator="Weird"), Taint(key="k", effect="NoSchedule"), False),
        # Lt/Gt need the alpha TaintTolerationComparisonOperators gate, off in v1.36
        (Toleration(key="k", operator="Gt", value="1"), Taint(key="k", value="5", effect="NoSchedule"), False),
        (Toleration(value="v"), Taint(key="any", value="v", effect="NoSchedule"), True),
    ],
)
def test_tolerations_follow_the_kubernetes_rules(toleration: Toleration, taint: Taint, tolerated: bool) -> None:
    assert tolerates(toleration, taint) is tolerated


def test_untolerated_hard_taints_reject_but_prefer_no_schedule_does_not() -> None:
    pod = make_pod(tolerations=[])
    soft = node_capacity("n", taints=[Taint(key="k", effect="PreferNoSchedule")])
    hard = node_capacity("n", taints=[Taint(key="gpu", value="a100", effect="NoSchedule")])
    assert placement_rejection(pod, soft) is None
    assert placement_rejection(pod, hard) == "untolerated taint gpu=a100:NoSchedule"


def test_resource_shortfall_names_the_short_resource() -> None:
    pod = make_pod(cpu="3", memory="1Gi")
    node = node_capacity("n", cpu_m=4000, used_cpu_m=2000)
    assert node_fit_rejection(pod, pod_requests(pod), node) == "too little cpu"
    full = node_capacity("n", pods=0)
    assert node_fit_rejection(make_pod(), pod_requests(make_pod()), full) == "too many pods"


def test_the_marker_resource_is_ignored_because_peer_nodes_never_advertise_it() -> None:
    pod = make_pod()
    assert pod_requests(pod)["spillover.io/spillable"] == 1
    assert node_fit_rejection(pod, pod_requests(pod), node_capacity("n")) is None
    assert find_node(pod, pod_requests(pod), peer("west", nodes=1)).node == "west-0"


def test_reservations_count_against_free_room() -> None:
    node = node_capacity("n", cpu_m=1000)
    node.reserved = {"cpu": 800}
    pod = make_pod(cpu="500m")
    assert node_fit_rejection(pod, pod_requests(pod), node) == "too little cpu"


def test_find_node_picks_the_tightest_fit() -> None:
    nodes = [
        node_capacity("roomy", cpu_m=8000, memory=32 * GI),
        node_capacity("snug", cpu_m=2000, memory=4 * GI),
        node_capacity("small", cpu_m=400),
    ]
    pod = make_pod(cpu="1", memory="1Gi")
    result = find_node(pod, pod_requests(pod), peer("west", nodes=nodes))
    assert result.fits and result.node == "snug" and result.reason == ""


def test_summed_capacity_never_decides_one_node_must_fit() -> None:
    # Four nodes with 1 CPU free each: 4 CPUs free in total, yet a 2-CPU pod fits nowhere.
    nodes = [node_capacity(f"west-{i}", cpu_m=4000, used_cpu_m=3000) for i in range(4)]
    pod = make_pod(cpu="2")
    result = find_node(pod, pod_requests(pod), peer("west", nodes=nodes))
    assert result.node is None
    assert result.reason == "no node of west fits: 4 too little cpu"


def test_find_node_summarises_reasons_most_common_first() -> None:
    nodes = [
        node_capacity("a", cpu_m=100),
        node_capacity("b", cpu_m=100),
        node_capacity("c", labels={"zone": "b"}),
        node_capacity("d", unschedulable=True),
    ]
    pod = make_pod(cpu="1", nodeSelector={"zone": "a"})
    result = find_node(pod, pod_requests(pod), peer("west", nodes=nodes))
    assert result.reason == "no node of west fits: 3 node selector mismatch, 1 node unschedulable"
    unconstrained = make_pod(cpu="1")
    assert find_node(unconstrained, pod_requests(unconstrained), peer("west", nodes=nodes)).node == "c"


def test_first_fit_mode_returns_some_fitting_node_and_same_reasons_when_none_fits() -> None:
    pod = make_pod(cpu="1")
    fitting = peer("west", nodes=[node_capacity("a", cpu_m=100), node_capacity("b"), node_capacity("c")])
    assert find_node(pod, pod_requests(pod), fitting, tightest=False).node in ("b", "c")
    full = peer("west", nodes=[node_capacity("a", cpu_m=100), node_capacity("b", pods=0)])
    assert (
        find_node(pod, pod_requests(pod), full, tightest=False).reason == find_node(pod, pod_requests(pod), full).reason
    )


def test_a_peer_without_nodes_says_so() -> None:
    assert (
        find_node(make_pod(), {"cpu": 1}, peer("west", nodes=[])).reason
        == "no node of west fits: the peer has no nodes"
    )


def test_a_pod_bigger_than_any_nodes_free_room_is_refused_by_the_bound_and_the_bound_follows_capacity() -> None:
    from extender.capacity.reservations import Reservations

    west = peer("west", nodes=[node_capacity("a", cpu_m=2000), node_capacity("b", cpu_m=1000)])
    big = make_pod(cpu="3")
    assert west.free_bounds().largest["cpu"] == 2000
    refused = find_node(big, pod_requests(big), west, tightest=False)
    assert refused.node is None and refused.reason == "no node of west fits: 2 too little cpu"

    pod = make_pod(cpu="1500m")
    reservations = Reservations()
    reservations.hold("uid-1", west, "a", {"cpu": 1000})  # bumps the generation: the bound is redone
    assert west.free_bounds().largest["cpu"] == 1000
    assert find_node(pod, pod_requests(pod), west, tightest=False).node is None
    reservations.release("uid-1")
    assert find_node(pod, pod_requests(pod), west, tightest=False).node == "a"


def test_when_only_restricted_nodes_have_room_only_they_are_checked_and_the_reasons_still_add_up() -> None:
    nodes = [node_capacity(f"full-{i}", cpu_m=1000, used_cpu_m=900) for i in range(5)]
    nodes.append(node_capacity("cordoned", cpu_m=4000, unschedulable=True))
    west = peer("west", nodes=nodes)
    pod = make_pod(cpu="500m")
    assert west.free_bounds().restricted == (nodes[-1],)
    first = find_node(pod, pod_requests(pod), west, tightest=False)  # only the cordoned node is checked
    west.invalidate()
    second = find_node(pod, pod_requests(pod), west, tightest=False)  # the same from rebuilt bounds
    assert first.reason == second.reason == "no node of west fits: 5 too little cpu, 1 node unschedulable"

    tolerant = make_pod(cpu="500m", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}])
    assert find_node(tolerant, pod_requests(tolerant), west, tightest=False).node == "cordoned"
