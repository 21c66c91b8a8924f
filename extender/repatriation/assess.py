"""Judging every spilled pod once a pass: may it come home now, and if not, why not.

The dearest units first claim their room at home (on a copy of the home capacity cache, the
pods already coming home held there); a unit that stays for a reason room cannot cure (a hint,
a ping-pong hold, a PodDisruptionBudget that said no) gives its room back to the next. Room
is timed per pod (per gang): it must last the unit's delay without a break, and the pod be at
least that old. What deserves an Event (room lost before the delay, a hint keeping a pod that
could come home, a gang that fits only member by member) is returned for the controller to tell.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from extender.capacity.model import PeerState
from extender.planner.pricing import cost_per_hour
from extender.planner.types import workload_of
from extender.repatriation.moves import Move, age, seconds_text
from extender.repatriation.pingpong import PingPong
from extender.repatriation.units import Unit, each_fits_alone, place, unplace

BLOCKED = "its PodDisruptionBudget allows no disruption now; asked again shortly"
MOVING = "moving now"


class Block(enum.StrEnum):
    """Why a pod that could come home does not (the first word of a RepatriationBlocked Event)."""

    PDB = "PDB"
    NO_ROOM = "NoRoom"
    GANG = "Gang"
    HINT = "Hint"
    PING_PONG = "PingPong"


@dataclass
class Assessment:
    ripe: list[Unit] = field(default_factory=list)
    """The units to move now, dearest first."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """One per spilled pod (and pod on its way home): its state and why."""
    tell: list[tuple[Unit, Block, str]] = field(default_factory=list)


class Assessor:
    def __init__(self) -> None:
        self.room_since: dict[str, float] = {}
        """Unit timer (pod UID, or gang key) -> since when home has had room for it, unbroken."""

    def forget(self, timer: str) -> None:
        self.room_since.pop(timer, None)

    def assess(
        self,
        units: Iterable[Unit],
        scratch: PeerState,
        moves: Mapping[str, Move],
        ping_pong: PingPong,
        pdb_until: Mapping[str, float],
        now: float,
        wall: float,
    ) -> Assessment:
        out = Assessment()
        moving = Counter(move.unit for move in moves.values())
        for unit in units:
            state, reason = self._judge(unit, scratch, moves, moving, ping_pong, pdb_until, now, wall, out)
            if state == MOVING:
                out.ripe.append(unit)
                moving[unit.key] += 1
            for pod, peer, requests in zip(unit.members, unit.peers, unit.requests, strict=True):
                out.rows.append(
                    _row(
                        f"{pod.metadata.namespace}/{pod.metadata.name}",
                        peer.name,
                        cost_per_hour(requests, peer),
                        state,
                        reason,
                        unit.nodes.get(pod.metadata.uid, ""),
                        unit.key,
                    )
                )
        for move in moves.values():
            if not move.gone:
                name = f"{move.namespace}/{move.name}"
                why = f"evicted from {move.peer}; room held on home node {move.node}"
                out.rows.append(_row(name, move.peer, move.price, "coming home", why, move.node, move.unit))
        return out

    def _judge(
        self,
        unit: Unit,
        scratch: PeerState,
        moves: Mapping[str, Move],
        moving: Counter[str],
        ping_pong: PingPong,
        pdb_until: Mapping[str, float],
        now: float,
        wall: float,
        out: Assessment,
    ) -> tuple[str, str]:
        """(state, why) of one unit; its room stays claimed in ``scratch`` when it may come home."""
        if any(pod.metadata.uid in moves for pod in unit.members):
            return "coming home", "evicted; its new pod is being placed at home"
        after = unit.terms.after
        short = place(unit, scratch)
        since = self.room_since.setdefault(unit.timer, now) if not short else None
        if since is None:
            lost = self.room_since.pop(unit.timer, None)
            if lost is not None and unit.terms.allowed and now - lost >= 1.0:
                out.tell.append(
                    (
                        unit,
                        Block.NO_ROOM,
                        f"home had room for it for {seconds_text(now - lost)} but lost it before "
                        f"{seconds_text(after)} passed ({short}); it comes home once home has had room for "
                        f"{seconds_text(after)}",
                    )
                )
        if not unit.terms.allowed:
            if since is not None:
                unplace(unit, scratch)  # it stays: its room is free for others
                if now - since >= after:
                    why = (
                        f"home has had room for it for {seconds_text(now - since)}, but it stays in peer "
                        f"{unit.peers[0].name}: {unit.terms.why_not}"
                    )
                    out.tell.append((unit, Block.HINT, why))
            return "stays", unit.terms.why_not
        if since is None:
            if len(unit.members) > 1 and each_fits_alone(unit, scratch):
                count = len(unit.members)
                why = f"gang {unit.terms.gang}: not all {count} spilled members fit at home at once ({short})"
                out.tell.append((unit, Block.GANG, f"{why}; a gang comes home whole or not at all"))
                return "no room", why
            return "no room", short
        if (held := ping_pong.held_until(workload_of(unit.members[0]))) > now:
            unplace(unit, scratch)  # held back: its room is free for others meanwhile
            return "held back", (
                f"ping-pong: its workload spilled again soon after coming home; held for {seconds_text(held - now)}"
            )
        if pdb_until.get(unit.key, 0.0) > now:
            unplace(unit, scratch)
            return "blocked", BLOCKED
        limit = len(unit.members) if len(unit.members) > 1 else unit.terms.max_in_flight
        if moving[unit.key] >= limit:
            return "waiting its turn", f"{moving[unit.key]} pod(s) of its workload are coming home already"
        youngest = min(age(pod, wall) for pod in unit.members)
        waited = now - since
        if waited < after or youngest < after:
            wait = max(after - waited, after - youngest)
            node = next(iter(unit.nodes.values()))
            return "waiting", f"home has room (node {node}); comes home in {seconds_text(wait)} if that lasts"
        return MOVING, f"home has had room for {seconds_text(waited)}"


def _row(
    pod: str, peer: str, price: float, state: str, reason: str, node: str, workload: str
) -> dict[str, Any]:
    return {
        "pod": pod,
        "peer": peer,
        "perHour": round(price, 4),
        "state": state,
        "reason": reason,
        "homeNode": node,
        "workload": workload,
    }
