"""Spillover's fit against the verdicts of the real kube-scheduler v1.36.2, on the same objects.

tests/fixtures/fit/scenes.json was recorded in the lab by hack/fixtures/capture_fit_scenes.py:
every node and bound pod as the apiserver returned them, then pod after pod, the pod as created
(defaulted and admitted by the apiserver) and what the scheduler did with it: the node it bound
it to, or its FailedScheduling message, which counts the nodes each filter plugin turned down.
Each scene is replayed here through the same decoders and capacity cache the peer watches feed,
and Spillover must agree node for node: the scheduler's node fits, and a pod the scheduler could
not place fits nowhere, for the same number of nodes per reason.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from extender.capacity.fit import find_node, node_fit_rejection, placement_rejection, without_marker
from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.capacity.tracker import PeerTracker
from extender.pod_requests import pod_requests
from extender.resources import PODS
from extender.wire.core import PeerNode, PeerPod, Pod, pod_decoder

RECORD: dict[str, Any] = json.loads((Path(__file__).parents[1] / "fixtures" / "fit" / "scenes.json").read_text())
SCENES = {scene["pod"]["metadata"]["name"]: scene for scene in RECORD["scenes"]}
_node_decoder = msgspec.json.Decoder(PeerNode)
_pod_decoder = msgspec.json.Decoder(PeerPod)


def peer_as_recorded(scene: dict[str, Any]) -> PeerState:
    """The peer's capacity cache fed the recorded nodes and pods, as the watches would feed it."""
    nodes = {n["metadata"]["name"]: n for n in RECORD["nodes"]}
    nodes.update({n["metadata"]["name"]: n for n in scene.get("nodes", ())})
    peer = PeerState(name="east", virtual_node="spillover-east", reachable=True, synced=True)
    tracker = PeerTracker(peer, lambda _: None)
    tracker.nodes.replace([_node_decoder.decode(json.dumps(n)) for n in nodes.values()])
    tracker.pods.replace([_pod_decoder.decode(json.dumps(p)) for p in RECORD["pods"]])
    return peer


def pending(scene: dict[str, Any]) -> Pod:
    return pod_decoder.decode(json.dumps(scene["pod"]))


_PLUGIN_REASONS = {
    "node unschedulable": "node(s) were unschedulable",
    "untolerated taint": "node(s) had untolerated taint(s)",
    "node selector mismatch": "node(s) didn't match Pod's node affinity/selector",
    "node affinity mismatch": "node(s) didn't match Pod's node affinity/selector",
}


def scheduler_counts(message: str) -> Counter[str]:
    """'0/10 nodes are available: 1 Too many pods, 6 Insufficient cpu. preemption: ...' as counts."""
    match = re.match(r"0/\d+ nodes are available: (.*?)\. ", message)
    assert match, message
    return Counter({reason: int(count) for count, reason in (part.split(" ", 1) for part in match[1].split(", "))})


def our_counts(pod: Pod, peer: PeerState) -> Counter[str]:
    """Our verdict per node in the scheduler's words. NodeResourcesFit lists every short resource
    of a node (and Too many pods), so for nodes that get that far all shortfalls are counted."""
    counts: Counter[str] = Counter()
    wanted = without_marker(pod_requests(pod))
    for node in peer.nodes.values():
        placement = placement_rejection(pod, node)
        if placement is not None:
            counts[next(said for ours, said in _PLUGIN_REASONS.items() if placement.startswith(ours))] += 1
            continue
        free = node.free()
        for name, amount in wanted.items():
            if amount > free.get(name, 0):
                counts["Too many pods" if name == PODS else f"Insufficient {name}"] += 1
    return counts


@pytest.mark.parametrize("name", sorted(SCENES))
def test_spillover_fits_a_pod_exactly_where_kube_scheduler_would(name: str) -> None:
    scene = SCENES[name]
    peer, pod = peer_as_recorded(scene), pending(scene)
    requests = pod_requests(pod)
    decided = scene["scheduler"]
    if "node" in decided:
        chosen = peer.nodes[decided["node"]]
        assert node_fit_rejection(pod, requests, chosen) is None
        assert find_node(pod, requests, peer, tightest=False).fits
    else:
        assert all(node_fit_rejection(pod, requests, node) is not None for node in peer.nodes.values())
        assert not find_node(pod, requests, peer).fits
        assert our_counts(pod, peer) == scheduler_counts(decided["failed"])


def test_the_recording_covers_every_rule_the_issue_names() -> None:
    # Guards the fixture itself: a re-recording must keep a scene for each rule, with the verdict
    # that makes it a test (a pod that fits only if the rule is modelled right, or the reverse).
    expected = {
        "pod-level-big": "failed",  # 6 CPUs of pod-level requests on 4-CPU nodes, containers ask 100m
        "sidecars-2250m": "failed",  # restartable init containers + overhead: 2250m on a 2-CPU node
        "sidecars-on-8": "node",
        "ephemeral-untolerated": "failed",  # nodes without ephemeral-storage offer none
        "gpu-three": "failed",
        "hugepages": "node",
        "after-resize": "failed",  # the resized pod counts 1500m allocated, not its 500m spec
        "too-many-pods": "failed",
        "not-ready-tolerated": "node",  # Ready=False: only the node lifecycle controller's taint counts
        "no-ready-condition": "node",  # no Ready condition at all and no taint: the scheduler places pods
    }
    assert {name: next(iter(SCENES[name]["scheduler"])) for name in expected} == expected


def test_an_in_place_resize_counts_the_larger_of_spec_allocated_and_actuated() -> None:
    peer = peer_as_recorded(SCENES["after-resize"])
    soft = peer.nodes["fit-soft"]
    resized = next(p for p in RECORD["pods"] if p["metadata"]["name"] == "resized")
    assert resized["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "500m"
    assert soft.requested["cpu"] == 1500  # from status.containerStatuses[].allocatedResources


def test_a_node_whose_ready_condition_is_false_but_untainted_still_takes_pods() -> None:
    # kube-scheduler v1.36 reads no node condition (no plugin looks at status.conditions); the node
    # lifecycle controller turns conditions into taints (TaintNodesByCondition), and those count.
    # Live, the controller taints such a node within a second (the recording shows the tainted
    # node refused and the tolerating pod placed); here is the moment before, from the same node.
    scene = SCENES["not-ready-untolerated"]
    node_json = next(n for n in scene.get("nodes", RECORD["nodes"]) if n["metadata"]["name"] == "fit-not-ready")
    assert {c["type"]: c["status"] for c in node_json["status"]["conditions"]}["Ready"] == "False"
    untainted = dict(node_json, spec={})
    peer = PeerState(name="east", virtual_node="spillover-east", reachable=True, synced=True)
    PeerTracker(peer, lambda _: None).nodes.replace([_node_decoder.decode(json.dumps(untainted))])
    pod = pending(scene)
    assert node_fit_rejection(pod, pod_requests(pod), peer.nodes["fit-not-ready"]) is None
    tainted = next(n for n in peer_as_recorded(scene).nodes.values() if n.name == "fit-not-ready")
    assert placement_rejection(pod, tainted) == "untolerated taint node.kubernetes.io/not-ready:NoSchedule"


def test_nodes_the_recording_names_are_what_the_scheduler_saw() -> None:
    peer = peer_as_recorded(SCENES["gpu"])
    gpu: NodeCapacity = peer.nodes["fit-gpu"]
    assert gpu.allocatable["nvidia.com/gpu"] == 2 and gpu.allocatable["hugepages-2Mi"] == 64 * 2**20
    assert "ephemeral-storage" not in peer.nodes["east-node-1"].allocatable
