"""A virtual node says NotReady only when the peer cannot run what it holds: pausing a peer keeps
its node Ready with no room, so the node-lifecycle controller never taints it NoExecute."""

from __future__ import annotations

from typing import Any

from extender.peers.virtual_node import node_status
from extender.scheduling.memory import peer


def _ready(status: dict[str, Any]) -> dict[str, str]:
    (condition,) = status["conditions"]
    ready: dict[str, str] = condition
    return ready


def test_a_paused_peer_keeps_its_node_ready_with_no_room_and_says_why() -> None:
    east = peer("east")
    east.paused = True

    status = node_status(east)

    ready = _ready(status)
    assert (ready["status"], ready["reason"]) == ("True", "PeerPaused")
    assert "nothing new is placed" in ready["message"]
    assert status["allocatable"] == {"cpu": "0", "memory": "0", "pods": "0"}


def test_a_healthy_peer_is_ready_with_its_room() -> None:
    status = node_status(peer("east"))

    assert _ready(status)["reason"] == "PeerReady"
    assert status["allocatable"]["pods"] != "0"


def test_an_unreachable_or_detaching_peer_is_not_ready() -> None:
    lost = peer("east", healthy=False)
    leaving = peer("west")
    leaving.detaching = "its PeerCluster is being deleted"

    assert (_ready(node_status(lost))["status"], _ready(node_status(lost))["reason"]) == ("False", "PeerUnreachable")
    assert _ready(node_status(leaving))["reason"] == "PeerDetaching"
