"""Repatriation's ping-pong memory outlives its leader: written to a ConfigMap, read by the next
leader, with its times carried over from one process's monotonic clock to another's."""

from __future__ import annotations

import json

from extender.kube.api import CONFIGMAPS
from extender.repatriation.pingpong import PingPong
from extender.repatriation.pingpong_store import KEY, NAME, PingPongStore
from tests.unit.apiserver import FakeApiserver

NS = "spillover-system"


def struck() -> PingPong:
    """A workload sent home at 4000 and spilled again at 4100 (monotonic clock of the old leader)."""
    memory = PingPong()
    memory.sent_home("shop/ReplicaSet/web", 4000.0)
    assert memory.spilled("shop/ReplicaSet/web", 4100.0, 300.0) == 600.0
    memory.sent_home("shop/ReplicaSet/api", 4150.0)  # a trip home not (yet) followed by a spill
    return memory


def test_the_memory_keeps_its_holds_and_strikes_across_clocks() -> None:
    exported = struck().export(now=4200.0, wall=1_800_000_000.0)
    taken = PingPong()
    # the next leader's monotonic clock reads 50.0 when the wall clock has moved on 10 s
    assert taken.restore(json.loads(json.dumps(exported)), now=50.0, wall=1_800_000_010.0) == 2

    assert taken.strikes("shop/ReplicaSet/web") == 1
    assert taken.held_until("shop/ReplicaSet/web") == 50.0 + (4700.0 - 4200.0) - 10.0
    # the trip home of api is still recent: a spill now is a strike
    assert taken.spilled("shop/ReplicaSet/api", 60.0, 300.0) == 600.0


def test_an_entry_that_does_not_read_is_skipped_and_the_rest_taken() -> None:
    taken = PingPong()
    count = taken.restore({"a": {"strikes": "many"}, "b": "not an object", "c": {"strikes": 1}}, 0.0, 0.0)
    assert count == 1 and taken.strikes("c") == 1


async def test_the_next_leader_reads_what_the_last_one_wrote_and_unchanged_memory_is_not_written() -> None:
    home = FakeApiserver()
    memory = struck()
    store = PingPongStore(home, NS)
    await store.save(memory, 4200.0, 1_800_000_000.0)
    await store.save(memory, 4201.0, 1_800_000_001.0)  # nothing new: no write
    assert [c.method for c in home.writes()] == ["PATCH", "POST"]  # not there yet: created

    memory.sent_home("shop/ReplicaSet/web", 4300.0)
    await store.save(memory, 4300.0, 1_800_000_100.0)
    assert [c.method for c in home.writes()][-1] == "PATCH"
    saved = home.get_object(CONFIGMAPS, NAME, NS)
    assert saved is not None and saved["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "spillover"}

    next_leader = PingPong()
    await PingPongStore(home, NS).load(next_leader, 10.0, 1_800_000_100.0)
    assert next_leader.strikes("shop/ReplicaSet/web") == 1
    assert next_leader.spilled("shop/ReplicaSet/web", 20.0, 300.0) == 1200.0, "the second strike doubles the hold"


async def test_a_missing_or_unreadable_configmap_leaves_the_memory_as_it_is() -> None:
    home = FakeApiserver()
    memory = PingPong()
    await PingPongStore(home, NS).load(memory, 0.0, 0.0)  # none yet: nothing to take
    home.add(CONFIGMAPS, {"metadata": {"name": NAME, "namespace": NS}, "data": {KEY: "[1, 2"}})
    await PingPongStore(home, NS).load(memory, 0.0, 0.0)
    assert memory.strikes("shop/ReplicaSet/web") == 0 and memory.export(0.0, 0.0) == {}


async def test_a_failed_write_is_tried_again_on_the_next_pass() -> None:
    home = FakeApiserver()
    store = PingPongStore(home, NS)
    memory = struck()
    home.down = True
    await store.save(memory, 4200.0, 1_800_000_000.0)
    home.down = False
    await store.save(memory, 4201.0, 1_800_000_001.0)
    assert home.get_object(CONFIGMAPS, NAME, NS) is not None
