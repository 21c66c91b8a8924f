"""Home's capacity cache: real nodes only, the requests of the pods bound to each counted as
kube-scheduler counts them, and a pod judged against it by every rule filter uses for peers."""

from __future__ import annotations

from typing import Any

import msgspec

from extender.capacity.fit import placement_rejection
from extender.home_capacity import HomeCapacity
from extender.pod_requests import pod_requests
from extender.scheduling.memory import make_pod, pod_dict
from extender.wire.core import Node, Pod


def node(name: str, cpu: str = "4", ready: bool = True, virtual: bool = False, **spec: Any) -> Node:
    labels = {"spillover.io/virtual": "true"} if virtual else {"disk": "ssd"}
    resources = {"cpu": cpu, "memory": "8Gi", "pods": "110"}
    body = {
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {"allocatable": resources, "conditions": [{"type": "Ready", "status": str(ready)}]},
    }
    return msgspec.convert(body, Node)


def bound(name: str, node_name: str, cpu: str = "1", phase: str = "Running") -> Pod:
    body = pod_dict(name, cpu=cpu)
    body["spec"]["nodeName"] = node_name
    body["status"] = {"phase": phase}
    return msgspec.convert(body, Pod)


def test_only_real_nodes_and_the_pods_bound_to_them_count() -> None:
    home = HomeCapacity()
    home.nodes.replace([node("h1"), node("spillover-east", cpu="100", virtual=True)])
    home.pods.replace(
        [bound("a", "h1", cpu="3"), bound("proxy", "spillover-east", cpu="50"), bound("done", "h1", phase="Succeeded")]
    )
    assert set(home.names) == {"h1"}
    assert home.state.nodes["h1"].requested["cpu"] == 3000
    pod = make_pod(cpu="1")
    assert home.room_for(pod, pod_requests(pod)).node == "h1"
    home.pods.upsert(bound("b", "h1", cpu="500m"))
    fit = home.room_for(pod, pod_requests(pod))
    assert fit.node is None and fit.reason == "no node of home fits: 1 too little cpu"
    home.pods.delete(bound("a", "h1", cpu="3"))
    assert home.room_for(pod, pod_requests(pod)).node == "h1"


def test_room_is_judged_by_every_rule_and_held_for_pods_coming_home() -> None:
    home = HomeCapacity()
    taints = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    # A NotReady node as the node lifecycle controller leaves it: tainted (the taint is what counts).
    down = node("down", ready=False, taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}])
    home.nodes.replace([node("tainted", taints=taints), node("cordoned", unschedulable=True), down])
    pod = make_pod(cpu="1")
    fit = home.room_for(pod, pod_requests(pod))
    assert fit.node is None
    assert "untolerated taint dedicated=gpu:NoSchedule" in fit.reason and "node unschedulable" in fit.reason
    assert "untolerated taint node.kubernetes.io/not-ready:NoSchedule" in fit.reason
    home.nodes.upsert(node("h2", cpu="1"))
    assert home.room_for(pod, pod_requests(pod)).node == "h2"
    home.hold("coming", "h2", pod_requests(pod))
    assert home.room_for(pod, pod_requests(pod)).node is None, "promised to a pod coming home"
    home.release("coming")
    assert home.room_for(pod, pod_requests(pod)).node == "h2"


def test_bind_judges_no_node_condition_readiness_is_the_schedulers_call() -> None:
    home = HomeCapacity()
    home.nodes.replace([node("down", ready=False)])
    seen = home.node("down")
    assert seen is not None and placement_rejection(make_pod(), seen) is None


def test_a_pod_on_a_virtual_node_is_spilled_and_one_on_a_real_node_is_not() -> None:
    home = HomeCapacity()
    home.nodes.replace([node("h1")])
    assert home.is_spilled(bound("p", "spillover-east")) and not home.is_spilled(bound("q", "h1"))
    assert not home.is_spilled(make_pod())
