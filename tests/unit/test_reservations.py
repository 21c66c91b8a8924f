"""A bind's reservation until the peer's watch counts the delegate, and what the planner leaves out
of its backlog meanwhile."""

from __future__ import annotations

from extender.capacity.reservations import Reservations
from extender.scheduling.memory import node_capacity, peer


def test_a_pod_whose_delegate_the_watch_shows_is_still_being_placed_until_its_bind_ends() -> None:
    east = peer("east", nodes=[node_capacity("a", cpu_m=4000)])
    reservations = Reservations()
    reservations.hold("uid-1", east, "a", {"cpu": 1000})
    assert reservations.placing("uid-1") and east.free_bounds().largest["cpu"] == 3000

    reservations.delegate_seen("uid-1")  # the watch counts the delegate now: the hold goes

    assert not reservations.holds("uid-1") and east.free_bounds().largest["cpu"] == 4000
    assert reservations.placing("uid-1")  # not pending: the planner must not place it again
    reservations.delegate_seen("uid-1")  # a later status event of the same delegate changes nothing
    assert east.free_bounds().largest["cpu"] == 4000 and reservations.placing("uid-1")


def test_a_bind_that_fails_after_the_delegate_was_seen_leaves_the_pod_pending_again() -> None:
    east = peer("east", nodes=[node_capacity("a", cpu_m=4000)])
    reservations = Reservations()
    reservations.hold("uid-1", east, "a", {"cpu": 1000})
    reservations.delegate_seen("uid-1")

    reservations.release("uid-1")

    assert not reservations.placing("uid-1")


def test_placed_pods_are_forgotten_after_the_ttl() -> None:
    now = [0.0]
    east = peer("east", nodes=[node_capacity("a", cpu_m=4000)])
    reservations = Reservations(ttl=30.0, timer=lambda: now[0])
    reservations.hold("uid-1", east, "a", {"cpu": 1000})
    reservations.delegate_seen("uid-1")
    now[0] = 31.0
    assert not reservations.placing("uid-1")
