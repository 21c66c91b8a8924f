"""No ping-pong: a workload whose pods came home and spilled again soon after is held back.

Home's room can be fleeting (a batch job between runs, a node about to be drained): a pod
brought home into it is evicted from its peer for nothing if its workload spills again at once.
So when a pod of a workload spills within an hour of one of its pods being sent home, that
workload's next repatriation waits: twice its delay the first time, doubling with each strike
(capped at a day), and the strikes are forgotten after a day without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WINDOW = 3600.0
"""A spill this soon after a pod of the workload was sent home is a strike."""
MAX_HOLD = 24 * 3600.0
FORGET = 24 * 3600.0
"""Strikes are forgotten after this long without one."""


@dataclass(slots=True)
class _Record:
    sent_home: float | None = None
    strikes: int = 0
    last_strike: float = 0.0
    held_until: float = 0.0


class PingPong:
    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}
        self.changes = 0
        """Counts the changes, so a store writes only when there is something new."""

    def sent_home(self, workload: str, now: float) -> None:
        """A pod of the workload was evicted from its peer to come home."""
        self._records.setdefault(workload, _Record()).sent_home = now
        self.changes += 1

    def spilled(self, workload: str, now: float, after: float) -> float | None:
        """A pod of the workload spilled: if that is ping-pong, strike and return how long its
        repatriation is held back (seconds); None otherwise."""
        record = self._records.get(workload)
        if record is None or record.sent_home is None or now - record.sent_home > WINDOW:
            return None
        if now - record.last_strike > FORGET:
            record.strikes = 0
        record.strikes += 1
        record.last_strike = now
        record.sent_home = None  # one strike per trip home
        hold = min(max(after, 1.0) * 2.0**record.strikes, MAX_HOLD)
        record.held_until = now + hold
        self.changes += 1
        return hold

    def held_until(self, workload: str) -> float:
        record = self._records.get(workload)
        return record.held_until if record is not None else 0.0

    def strikes(self, workload: str) -> int:
        record = self._records.get(workload)
        return record.strikes if record is not None else 0

    def forget_old(self, now: float) -> None:
        """Drop what no longer matters (no trip home within the window, no hold, no recent strike)."""
        for workload, record in list(self._records.items()):
            trip = record.sent_home is not None and now - record.sent_home <= WINDOW
            if not trip and record.held_until <= now and now - record.last_strike > FORGET:
                del self._records[workload]
                self.changes += 1

    def export(self, now: float, wall: float) -> dict[str, dict[str, Any]]:
        """The records with their times as wall-clock seconds (``now`` is this process's
        monotonic clock, which means nothing to the next leader; ``wall`` is time.time())."""
        out: dict[str, dict[str, Any]] = {}
        for workload, record in self._records.items():
            out[workload] = {
                "sentHome": None if record.sent_home is None else wall - (now - record.sent_home),
                "strikes": record.strikes,
                "lastStrike": wall - (now - record.last_strike) if record.strikes else None,
                "heldUntil": wall + (record.held_until - now) if record.held_until > now else None,
            }
        return out

    def restore(self, exported: Mapping[str, Any], now: float, wall: float) -> int:
        """Take in what ``export`` wrote (another leader's, most likely): those workloads' records
        are replaced. An entry that does not read is skipped. Returns how many were taken."""
        taken = 0
        for workload, entry in exported.items():
            try:
                record = _Record(strikes=int(entry.get("strikes") or 0))
                if (sent := entry.get("sentHome")) is not None:
                    record.sent_home = now - (wall - float(sent))
                if (struck := entry.get("lastStrike")) is not None and record.strikes:
                    record.last_strike = now - (wall - float(struck))
                if (held := entry.get("heldUntil")) is not None:
                    record.held_until = now + (float(held) - wall)
            except (AttributeError, TypeError, ValueError):
                continue
            self._records[str(workload)] = record
            taken += 1
        return taken
