"""Peer Nodes and Pods as a v1.36 apiserver sends them, for the capacity cache's tests.

Built from a node and a pod the lab's apiserver returned (tests/fixtures/fit/scenes.json), with
only the fields a test varies replaced, and decoded through the same models as the peer watches.
"""

from __future__ import annotations

import copy
import json
import zlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

import msgspec

from extender import labels
from extender.kube.reflector import Listing
from extender.wire.core import PeerNode, PeerPod

_RECORD = json.loads((Path(__file__).parents[1] / "fixtures" / "fit" / "scenes.json").read_text())
NODE_TEMPLATE: dict[str, Any] = next(n for n in _RECORD["nodes"] if n["metadata"]["name"] == "east-node-1")
POD_TEMPLATE: dict[str, Any] = next(p for p in _RECORD["pods"] if p["metadata"]["name"] == "small-a")
_node_decoder = msgspec.json.Decoder(PeerNode)
_pod_decoder = msgspec.json.Decoder(PeerPod)


def node_json(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    extra_labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
    heartbeat: str = "2026-11-30T15:25:31Z",
    version: int = 1,
) -> dict[str, Any]:
    node = copy.deepcopy(NODE_TEMPLATE)
    meta = node["metadata"]
    meta["name"] = name
    meta["uid"] = f"00000000-0000-4000-8000-{zlib.crc32(name.encode()):012d}"
    meta["resourceVersion"] = str(version)
    meta["labels"]["kubernetes.io/hostname"] = name
    meta["labels"].update(extra_labels or {})
    node["spec"] = {}
    if taints:
        node["spec"]["taints"] = taints
    if unschedulable:
        node["spec"]["unschedulable"] = True
    offer = {"cpu": cpu, "memory": memory, "pods": pods}
    node["status"]["allocatable"] = dict(offer)
    node["status"]["capacity"] = dict(offer)
    for condition in node["status"]["conditions"]:
        condition["lastHeartbeatTime"] = heartbeat
    return node


def pod_uid(n: int) -> str:
    return f"c637a600-bc4e-43f7-ae2c-{n:012x}"


def pod_json(
    n: int,
    node: str,
    cpu: str = "100m",
    phase: str = "Running",
    delegate_of: str | None = None,
    allocated_cpu: str | None = None,
    version: int = 1,
) -> dict[str, Any]:
    """Pod number ``n`` bound to ``node`` (unbound when ""); ``allocated_cpu``: mid in-place resize."""
    pod = copy.deepcopy(POD_TEMPLATE)
    meta = pod["metadata"]
    meta["name"] = f"pod-{n}"
    meta["uid"] = pod_uid(n)
    meta["resourceVersion"] = str(version)
    if delegate_of is not None:
        meta["labels"] = {**meta["labels"], labels.PROXY_UID: delegate_of, labels.MANAGED_BY: "spillover"}
    spec = pod["spec"]
    spec["containers"][0]["resources"] = {"requests": {"cpu": cpu}}
    if node:
        spec["nodeName"] = node
    else:
        spec.pop("nodeName", None)
    pod["status"]["phase"] = phase
    if allocated_cpu is not None:
        status = pod["status"]["containerStatuses"][0]
        status["allocatedResources"] = {"cpu": allocated_cpu}
        status["resources"] = {"requests": {"cpu": allocated_cpu}}
    return pod


def as_node(raw: dict[str, Any]) -> PeerNode:
    return _node_decoder.decode(json.dumps(raw))


def as_pod(raw: dict[str, Any]) -> PeerPod:
    return _pod_decoder.decode(json.dumps(raw))


def finish(listing: Listing[Any]) -> None:
    """Complete a list outside an event loop: run its (possibly turn-taking) ``done`` to the end."""
    finishing = listing.done()
    if finishing is None:
        return
    coroutine = cast(Coroutine[Any, Any, None], finishing)
    try:
        while True:
            coroutine.send(None)  # asyncio.sleep(0) yields a bare None: no loop needed
    except StopIteration:
        pass
