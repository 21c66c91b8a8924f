"""Leader election hands its Lease back when it stops, so the next replica leads at once."""

from __future__ import annotations

import asyncio

from extender.kube.api import LEASES
from extender.kube.leader import LeaderElector, LeaderGate
from tests.unit.apiserver import FakeApiserver

LEASE = LEASES.item("spillover-controller", "spillover-system")


async def test_a_leader_that_stops_hands_the_lease_back_and_the_next_replica_takes_it_within_seconds() -> None:
    home = FakeApiserver()
    first = LeaderElector(home, "spillover-system", enabled=True, renew=0.05)
    gate = asyncio.create_task(LeaderGate(first, []).run())  # as `spillover serve` runs it
    while not first.leading:
        await asyncio.sleep(0.01)
    second = LeaderElector(home, "spillover-system", enabled=True, renew=0.05)
    assert not await second._try(), "the lease is held"
    held = home.hold("GET", LEASE)  # the hand-back's read waits: a second cancel would cut it short
    gate.cancel()  # what stopping the process does
    await asyncio.sleep(0.05)
    held.set()
    await asyncio.gather(gate, return_exceptions=True)
    spec = (home.get_object(LEASES, "spillover-controller", "spillover-system") or {})["spec"]
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    assert not first.leading
    await asyncio.sleep(1.1)
    assert await second._try(), "free after one second, not after the full 15 s duration"
