"""The last filter decisions, for the status page and `spillover explain`.

Recorded on the scheduling path, so recording is one tuple appended to a bounded deque (about a
microsecond, see hack/bench/decisions_bench.py): no copies, no formatting. The result objects
recorded are the ones just encoded for kube-scheduler and never changed after; a result naming
many nodes (a remote-only pod's unresolvable home nodes) is trimmed so the ring stays small.
Reasons are turned into text only when someone looks.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from extender.wire.extender import ExtenderFilterResult

KEEP = 200
"""Decisions kept (the newest)."""
MAX_NAMES = 32
"""Nodes kept per decision's failed/unresolvable maps (the peers' virtual nodes come first)."""

_Record = tuple[float, str, str, str, str, int, ExtenderFilterResult | None]


@dataclass(frozen=True, slots=True)
class Decision:
    at: float
    """Unix time."""
    namespace: str
    name: str
    uid: str
    outcome: str
    """home, peer or none (extender.scheduling.filter.Outcome)."""
    considered: int
    """Nodes kube-scheduler sent (those that passed its own filters, virtual ones included)."""
    passed: tuple[str, ...]
    failed: Mapping[str, str]
    """Node -> why not (FailedNodes and FailedAndUnresolvableNodes together)."""

    def reason(self) -> str:
        """One line: where it went, or why nowhere."""
        if self.outcome == "home":
            return f"home: {self.considered} home nodes passed kube-scheduler's filters"
        if self.outcome == "peer":
            return f"spill to {', '.join(self.passed)}" + (f" ({_first_reason(self.failed)})" if self.failed else "")
        return "nowhere: " + (_first_reason(self.failed) or "no node passed kube-scheduler's own filters")


def _first_reason(failed: Mapping[str, str]) -> str:
    """The reasons, each once, with the nodes they apply to."""
    by_reason: dict[str, list[str]] = {}
    for node, why in failed.items():
        by_reason.setdefault(why, []).append(node)
    return "; ".join(
        f"{', '.join(nodes[:3])}{'…' if len(nodes) > 3 else ''}: {why}" for why, nodes in by_reason.items()
    )


class Decisions:
    def __init__(self, keep: int = KEEP) -> None:
        self._ring: deque[_Record] = deque(maxlen=keep)

    def record(
        self, namespace: str, name: str, uid: str, outcome: str, considered: int, result: ExtenderFilterResult
    ) -> None:
        """On the filter path: append, nothing else (home placements keep no node lists)."""
        if outcome == "home":
            self._ring.append((time.time(), namespace, name, uid, outcome, considered, None))
            return
        if len(result.FailedAndUnresolvableNodes) > MAX_NAMES:
            result = _trimmed(result)
        self._ring.append((time.time(), namespace, name, uid, outcome, considered, result))

    def latest(self, limit: int = KEEP) -> Iterator[Decision]:
        """Newest first."""
        for count, record in enumerate(reversed(self._ring)):
            if count >= limit:
                return
            yield _decision(record)

    def last_for(self, uid: str) -> Decision | None:
        for record in reversed(self._ring):
            if record[3] == uid:
                return _decision(record)
        return None


def _trimmed(result: ExtenderFilterResult) -> ExtenderFilterResult:
    """The first MAX_NAMES unresolvable nodes: filter adds the peers' virtual nodes before the
    home nodes it excludes wholesale (remote-first/only), so the peers' verdicts are kept."""
    kept = dict(itertools.islice(result.FailedAndUnresolvableNodes.items(), MAX_NAMES))
    return ExtenderFilterResult(
        NodeNames=result.NodeNames, FailedNodes=result.FailedNodes, FailedAndUnresolvableNodes=kept
    )


def _decision(record: _Record) -> Decision:
    at, namespace, name, uid, outcome, considered, result = record
    if result is None:
        return Decision(at, namespace, name, uid, outcome, considered, (), {})
    failed = {**result.FailedAndUnresolvableNodes, **result.FailedNodes}
    return Decision(at, namespace, name, uid, outcome, considered, tuple(result.NodeNames or ()), failed)
