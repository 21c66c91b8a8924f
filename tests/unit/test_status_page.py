"""The status page's per-node view of the capacity cache (/capacity.json)."""

from __future__ import annotations

import msgspec

from extender.capacity.model import PeerState
from extender.capacity.reservations import Reservations
from extender.capacity.tracker import PeerTracker
from extender.server.status_page import capacity
from tests.unit.peer_objects import as_node, as_pod, node_json, pod_json


def test_every_peer_node_is_shown_with_what_it_offers_what_is_used_held_and_free() -> None:
    east = PeerState(name="east", virtual_node="spillover-east", reachable=True, synced=True)
    tracker = PeerTracker(east, lambda _: None)
    tracker.nodes.replace([as_node(node_json("n1")), as_node(node_json("n2"))])
    tracker.pods.replace([as_pod(pod_json(1, "n1", "1500m", delegate_of="p-1")), as_pod(pod_json(2, "gone", "1"))])
    Reservations().hold("p-9", east, "n2", {"cpu": 500, "pods": 1})
    west = PeerState(name="west", virtual_node="spillover-west")

    shown = msgspec.json.decode(msgspec.json.encode(capacity([east, west], "east")))

    assert set(shown["peers"]) == {"east"}
    nodes = shown["peers"]["east"]["nodes"]
    assert nodes["n1"]["requested"] == {"cpu": 1500, "pods": 1} == nodes["n1"]["delegated"]
    assert nodes["n1"]["free"]["cpu"] == 2500 and nodes["n2"]["free"]["cpu"] == 3500
    assert nodes["n2"]["reserved"] == {"cpu": 500, "pods": 1}
    assert shown["peers"]["east"]["ghosts"] == {"gone": {"requested": {"cpu": 1000, "pods": 1}, "reserved": {}}}
