"""One real node of a peer as the capacity cache holds it: what it offers and what is used of it.

Figures are canonical integers (``extender.resources``); a node's dicts are replaced or shifted
by ``PeerState``'s changes (``tracker`` and ``Reservations`` call them), never edited behind its back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from extender.resources import Resources, subtract
from extender.wire.core import Taint

EMPTY: Resources = {}
"""Shared by every node that holds no reservation or delegate; never written (``shifted`` copies)."""


@dataclass(slots=True)
class NodeCapacity:
    """One real node of a peer: what the scheduler there would see."""

    name: str
    allocatable: Resources = field(default_factory=dict)
    """``status.allocatable`` as kube-scheduler reads it (never written in place: nodes share it)."""
    requested: Resources = field(default_factory=dict)
    """Sum of the requests of the node's non-terminal pods (pods slot included)."""
    delegated: Resources = field(default_factory=dict)
    """The part of ``requested`` that is Spillover's own delegate pods."""
    reserved: Resources = field(default_factory=dict)
    """Held for pods Spillover is placing here but the peer's watch has not shown yet."""
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False

    @property
    def schedulable(self) -> bool:
        """Not cordoned. kube-scheduler reads no node condition: a node that is not ready is kept
        off by the taints the node lifecycle controller puts on it (node.kubernetes.io/not-ready,
        /unreachable), which the fit checks like any other taint."""
        return not self.unschedulable

    @property
    def is_open(self) -> bool:
        """Uncordoned and untainted: a pod with no placement constraints fits by resources alone."""
        return not self.unschedulable and not self.taints

    def free(self) -> Resources:
        used = dict(self.requested)
        for name, amount in self.reserved.items():
            used[name] = used.get(name, 0) + amount
        return subtract(self.allocatable, used)

    def holds_anything(self) -> bool:
        """Whether any pod or reservation still refers to this node (a ghost must stay while so)."""
        return bool(self.requested) or bool(self.reserved)


def shifted(amounts: Resources, delta: Mapping[str, int], sign: int) -> Resources:
    """``amounts`` + sign x ``delta``, in place unless it is the shared EMPTY; zeros are dropped so
    a node's figures equal a fresh count of the same pods."""
    out = {} if amounts is EMPTY else amounts
    for name, amount in delta.items():
        value = out.get(name, 0) + sign * amount
        if value:
            out[name] = value
        else:
            out.pop(name, None)
    return out if out else EMPTY

