"""Capacity held for pods being placed on a peer until its watch shows them (kube-scheduler's
"assumed pods", for the peers' nodes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache

from extender.capacity.model import PeerState
from extender.capacity.node import NodeCapacity
from extender.resources import Resources


@dataclass(slots=True)
class Reservation:
    peer: str
    node: NodeCapacity
    """The node object itself: a reservation stays with it through a delete and re-create."""
    requests: Resources


class _ExpiringHolds(TTLCache[str, Reservation]):
    """A TTLCache that hands every expired reservation back, however the expiry was triggered.

    TTLCache also expires items inside ``__setitem__``; overriding ``expire`` is the one place
    that sees them all, so no held capacity can leak.
    """

    def __init__(
        self, ttl: float, maxsize: int, on_expired: Callable[[Reservation], None], timer: Callable[[], float]
    ) -> None:
        super().__init__(maxsize=maxsize, ttl=ttl, timer=timer)
        self._on_expired = on_expired

    def expire(self, time: float | None = None) -> list[tuple[str, Reservation]]:
        expired: list[tuple[str, Reservation]] = list(super().expire(time))
        for _, reservation in expired:
            self._on_expired(reservation)
        return expired

    def popitem(self) -> tuple[str, Reservation]:
        key, reservation = super().popitem()  # evicted for size: give the capacity back too
        self._on_expired(reservation)
        return key, reservation


class Reservations:
    """Capacity held for pods being placed until the peer's watch shows them (or a TTL passes).

    Without it, a burst of binds would all see the same free node and overcommit the peer
    between the create call and the watch event that counts the new pod. (kube-scheduler's own
    "assumed pods" do the same between its decision and the Binding showing up in its watch.)
    """

    def __init__(self, ttl: float = 30.0, maxsize: int = 100_000, timer: Callable[[], float] = time.monotonic) -> None:
        self._held = _ExpiringHolds(ttl, maxsize, self._undo, timer)
        self._placed: TTLCache[str, bool] = TTLCache(maxsize=maxsize, ttl=ttl, timer=timer)
        """Pods whose delegate a peer's watch has shown: placed, though their bind may still be
        finishing (the Binding in home, then the planner told), for ``ttl`` seconds."""
        self.peers: dict[str, PeerState] = {}

    def hold(self, proxy_uid: str, peer: PeerState, node: str, requests: Resources) -> None:
        self.release(proxy_uid)
        self.expire()
        target = peer.nodes.get(node)
        if target is None:
            return
        held = dict(requests)
        peer.hold(target, held, 1)
        self._held[proxy_uid] = Reservation(peer.name, target, held)
        self.peers[peer.name] = peer

    def release(self, proxy_uid: str) -> None:
        """The bind failed or is undone: the room goes back, and the pod is pending again."""
        self._placed.pop(proxy_uid, None)
        reservation = self._held.pop(proxy_uid, None)
        if reservation is not None:
            self._undo(reservation)

    def delegate_seen(self, proxy_uid: str) -> None:
        """The peer's watch counts the pod's delegate now: the room it held is counted there."""
        reservation = self._held.pop(proxy_uid, None)
        if reservation is not None:
            self._undo(reservation)
            self._placed[proxy_uid] = True

    def placing(self, proxy_uid: str) -> bool:
        """Whether the pod's room is taken in a peer, held here or counted by the peer's watch,
        while its bind may still be going on. The planner leaves such pods out of its backlog:
        between the watch showing the delegate and the bind telling the planner, the pod would
        otherwise be planned again on top of the delegate that counts it (seen in CI: the last of
        twelve pods sent to a pricier peer because the cheaper one looked full)."""
        return proxy_uid in self._held or proxy_uid in self._placed

    def expire(self) -> int:
        return len(self._held.expire())

    def holds(self, proxy_uid: str) -> bool:
        return proxy_uid in self._held

    def _undo(self, reservation: Reservation) -> None:
        peer = self.peers.get(reservation.peer)
        if peer is not None:  # (a peer removed meanwhile took its nodes with it)
            peer.hold(reservation.node, reservation.requests, -1)

    def __len__(self) -> int:
        return len(self._held)
