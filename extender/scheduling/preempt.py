"""The ``preempt`` verb: pass the scheduler's preemption plan through, minus every virtual node.

Evicting proxy pods from a virtual node frees nothing real at home (their containers run in a
peer) and would tear down running work for no gain, so preemption there is never offered. Real
nodes keep exactly the victims the scheduler chose; we have no opinion on them.
"""

from __future__ import annotations

from extender.scheduling.state import SchedulingState
from extender.wire.extender import (
    ExtenderPreemptionArgs,
    ExtenderPreemptionResult,
    MetaPod,
    MetaVictims,
    Victims,
)


class UnknownNode(ValueError):
    """A node name that is neither a home node nor a virtual one: the request is refused (400)."""


def _meta(victims: Victims | None) -> MetaVictims:
    if victims is None:
        return MetaVictims(Pods=[])
    pods = [MetaPod(UID=pod.metadata.uid) for pod in victims.Pods or ()]
    return MetaVictims(Pods=pods, NumPDBViolations=victims.NumPDBViolations)


def preempt(state: SchedulingState, args: ExtenderPreemptionArgs) -> ExtenderPreemptionResult:
    """Accepts NodeNameToMetaVictims (nodeCacheCapable) or NodeNameToVictims; answers with meta victims."""
    candidates: dict[str, MetaVictims] = {}
    for name, victims in (args.NodeNameToVictims or {}).items():
        candidates[name] = _meta(victims)
    for name, meta in (args.NodeNameToMetaVictims or {}).items():
        candidates[name] = meta if meta is not None else MetaVictims(Pods=[])
    kept: dict[str, MetaVictims] = {}
    unknown: list[str] = []
    for name, meta in candidates.items():
        if state.peer_for_node(name) is not None or state.is_virtual_node_name(name):
            continue
        if not state.home_node_exists(name):
            unknown.append(name)
            continue
        kept[name] = meta
    if unknown:
        shown = ", ".join(sorted(unknown)[:5]) + (" ..." if len(unknown) > 5 else "")
        raise UnknownNode(f"unknown node names (neither home nor virtual nodes): {shown}")
    return ExtenderPreemptionResult(NodeNameToMetaVictims=kept)
