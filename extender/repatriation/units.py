"""What moves home together (a pod, or a gang's spilled members) and where it would go at home.

Trial placements are made on a copy of the home capacity cache (``HomeCapacity.snapshot``) with
the very fit code that judges peers' nodes (``capacity.fit.find_node``), claiming the room of each
unit placed so the next one sees what is left: "counting the pods already coming home" and the
dearer pods looked at first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from extender.capacity.fit import find_node, without_marker
from extender.capacity.model import PeerState
from extender.peers.directory import PeerDirectory
from extender.planner.pricing import cost_per_hour
from extender.planner.types import workload_of
from extender.pod_requests import pod_requests
from extender.repatriation.policy import Terms, terms
from extender.resources import QuantityError, Resources
from extender.wire.core import Pod


@dataclass
class Unit:
    """What moves together: one pod, or the spilled members of a gang."""

    key: str
    """Its workload (``planner.types.workload_of``), or ``namespace/gang/name``."""
    members: list[Pod]
    peers: list[PeerState]
    requests: list[Resources]
    terms: Terms
    price: float = 0.0
    """What it costs per hour where it runs now (all members)."""
    nodes: dict[str, str] = field(default_factory=dict)
    """Member UID -> the home node that fits it (this pass)."""

    @property
    def timer(self) -> str:
        """What its room is timed by: the pod, or the gang."""
        return self.key if len(self.members) > 1 else self.members[0].metadata.uid


def gather(spilled: Iterable[Pod], directory: PeerDirectory, default_after: float) -> list[Unit]:
    """The running spilled pods as units, dearest first (ties by workload, then UID)."""
    gangs: dict[str, Unit] = {}
    units: list[Unit] = []
    for pod in spilled:
        peer = directory.by_virtual_node.get(pod.spec.node_name)
        if peer is None or pod.metadata.deletion_timestamp is not None:
            continue
        if (pod.status.phase if pod.status else "") != "Running":
            continue  # a delegate not running yet is the lifecycle's to judge, not ours
        try:
            requests = pod_requests(pod)
        except QuantityError:
            continue
        pod_terms = terms(pod, directory.repatriate_after(peer.name), default_after)
        price = cost_per_hour(requests, peer)
        if pod_terms.gang is None:
            units.append(Unit(workload_of(pod), [pod], [peer], [requests], pod_terms, price))
            continue
        key = f"{pod.metadata.namespace}/gang/{pod_terms.gang}"
        unit = gangs.get(key)
        if unit is None:
            unit = gangs[key] = Unit(key, [], [], [], pod_terms)
            units.append(unit)
        elif pod_terms.allowed <= unit.terms.allowed and pod_terms.after >= unit.terms.after:
            unit.terms = pod_terms  # the strictest member's terms hold for the gang
        unit.members.append(pod)
        unit.peers.append(peer)
        unit.requests.append(requests)
        unit.price += price
    return sorted(units, key=lambda u: (-u.price, u.key, u.members[0].metadata.uid))


def place(unit: Unit, scratch: PeerState) -> str:
    """Every member on a home node of ``scratch``, claiming the room ("" then); or none, and why."""
    unit.nodes = {}
    for pod, requests in zip(unit.members, unit.requests, strict=True):
        fit = find_node(pod, requests, scratch)
        if fit.node is None:
            unplace(unit, scratch)
            return fit.reason.replace("no node of home fits", "no home node fits")
        unit.nodes[pod.metadata.uid] = fit.node
        _claim(scratch, fit.node, requests, +1)
    return ""


def unplace(unit: Unit, scratch: PeerState) -> None:
    """Give back the room ``place`` claimed for the unit."""
    for pod, requests in zip(unit.members, unit.requests, strict=True):
        placed = unit.nodes.pop(pod.metadata.uid, None)
        if placed is not None:
            _claim(scratch, placed, requests, -1)


def each_fits_alone(unit: Unit, scratch: PeerState) -> bool:
    return all(
        find_node(pod, requests, scratch).node is not None
        for pod, requests in zip(unit.members, unit.requests, strict=True)
    )


def _claim(scratch: PeerState, node: str, requests: Resources, sign: int) -> None:
    held = scratch.nodes[node].reserved
    for name, amount in without_marker(requests).items():
        held[name] = held.get(name, 0) + sign * amount
    scratch.generation += 1  # find_node's bounds on free room are kept per generation
