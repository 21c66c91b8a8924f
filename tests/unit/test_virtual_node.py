"""A virtual node says NotReady only when the peer cannot run what it holds: pausing a peer keeps
its node Ready with no room, so the node-lifecycle controller never taints it NoExecute; and a
restart does not flap it NotReady while the new process fills its cache of the peer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from extender.kube.api import NODES
from extender.peers import virtual_node
from extender.peers.virtual_node import VirtualNodes, node_status
from extender.scheduling.memory import peer
from tests.unit.apiserver import FakeApiserver
from tests.unit.fakes import until


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


def _ready_of(home: FakeApiserver, name: str) -> dict[str, str]:
    node = home.get_object(NODES, name)
    assert node is not None
    (condition,) = node["status"]["conditions"]
    found: dict[str, str] = condition
    return found


async def test_a_restarted_process_leaves_the_node_ready_while_it_syncs_the_peer_then_writes_it() -> None:
    home = FakeApiserver()
    east = peer("east")
    await VirtualNodes(home).sync(east)  # the earlier process: Ready, with room
    restarted = VirtualNodes(home)
    east.synced = False  # the new process's cache of east is still filling
    restarted.add(east)

    await restarted.sync(east)

    assert _ready_of(home, "spillover-east")["reason"] == "PeerReady"
    assert not any(c.path.endswith("/status") for c in home.writes("PATCH")[-1:])
    assert restarted.caught_up()  # nothing to write yet: kept on purpose
    east.synced = True
    east.generation += 1
    await restarted.sync(east)
    assert _ready_of(home, "spillover-east")["message"].endswith("capacity cache is synced")
    assert home.writes("PATCH")[-1].path.endswith("/status")
    assert restarted.caught_up()


async def test_a_peer_found_unreachable_at_restart_turns_its_node_not_ready_at_once() -> None:
    home = FakeApiserver()
    east = peer("east")
    await VirtualNodes(home).sync(east)
    restarted = VirtualNodes(home)
    east.synced, east.reachable, east.unreachable_reason = False, False, "connection refused"
    restarted.add(east)

    await restarted.sync(east)

    ready = _ready_of(home, "spillover-east")
    assert (ready["status"], ready["reason"]) == ("False", "PeerUnreachable")


async def test_the_old_status_is_kept_only_for_the_grace_then_written_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    home = FakeApiserver()
    east = peer("east")
    await VirtualNodes(home).sync(east)
    restarted = VirtualNodes(home)
    east.synced = False
    await restarted.sync(east)
    assert _ready_of(home, "spillover-east")["status"] == "True"

    monkeypatch.setattr(virtual_node, "ADOPT_GRACE", 0.0)
    restarted.add(east)
    assert not restarted.caught_up()
    await restarted.sync(east)

    ready = _ready_of(home, "spillover-east")
    assert (ready["status"], ready["message"]) == ("False", "peer east capacity cache has not synced yet")
    assert restarted.caught_up()


async def test_a_new_node_is_not_caught_up_until_written() -> None:
    home = FakeApiserver()
    nodes = VirtualNodes(home)
    nodes.add(peer("east"))
    assert not nodes.caught_up()
    await nodes.sync(nodes.peers["east"])
    assert nodes.caught_up() and home.get_object(NODES, "spillover-east") is not None


async def test_only_the_leader_writes_its_kubelet_address_and_it_rewrites_every_node_when_it_takes_the_lead() -> None:
    home = FakeApiserver()
    east = peer("east")
    await VirtualNodes(home, ("10.0.0.1", 10250)).sync(east)  # a replica since gone created it
    follower = VirtualNodes(home, ("10.0.0.2", 10250))
    follower.add(east)
    await follower.sync(east)
    east.generation += 1
    await follower.sync(east)  # a capacity change written by a replica that does not lead

    def address() -> str:
        node = home.get_object(NODES, "spillover-east")
        assert node is not None
        found: str = node["status"]["addresses"][0]["address"]
        return found

    assert address() == "10.0.0.1"
    leading = asyncio.create_task(follower.lead())
    try:
        await until(lambda: follower.leading)
        await follower.sync(east)
        assert address() == "10.0.0.2"
    finally:
        leading.cancel()
        await asyncio.gather(leading, return_exceptions=True)
    assert not follower.leading


async def test_a_restarted_process_is_not_caught_up_until_it_wrote_the_node_of_a_peer_that_came_back() -> None:
    home = FakeApiserver()
    east = peer("east", healthy=False)
    await VirtualNodes(home).sync(east)  # the earlier process saw east unreachable: NotReady
    restarted = VirtualNodes(home)
    east.reachable, east.unreachable_reason, east.synced = True, "", False
    restarted.add(east)
    await restarted.sync(east)  # reachable, still syncing: the node is left as it was
    assert _ready_of(home, "spillover-east")["status"] == "False" and restarted.caught_up()

    east.synced = True  # synced now; the flush has not run yet

    assert not restarted.caught_up()
    await restarted.sync(east)
    assert restarted.caught_up() and _ready_of(home, "spillover-east")["status"] == "True"
