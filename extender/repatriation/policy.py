"""Which spilled pods may come home, after how long, and as part of what.

The default is on for a pod a controller owns (a ReplicaSet, a Job, a StatefulSet...): evicting
it is what a node drain does, and its controller makes a new pod that kube-scheduler places at
home. It is off for a bare pod: nothing would recreate it but Spillover itself, under the same
name with a new UID and its containers started afresh, which its owner may not expect; the hint
``spillover.io/repatriate: "true"`` asks for exactly that. A pod whose policy prefers peers
(``remote-first``, ``remote-only``) never comes home: it is where it asked to be.

The delay (home must have had room for the pod this long, and the pod be at least this old) is
the pod's ``spillover.io/repatriate-after``, else its peer's ``spec.repatriateAfterSeconds``,
else the server's ``--repatriate-after`` (300 s). The members of a gang (``spillover.io/gang``)
move together or not at all; the other pods of one workload (its controller) move one at a time
unless ``spillover.io/repatriate-max-in-flight`` allows more.
"""

from __future__ import annotations

from dataclasses import dataclass

from extender.hints import REPATRIATE, HintError, Policy, parse_hints
from extender.wire.core import Pod

DEFAULT_AFTER = 300.0


@dataclass(frozen=True, slots=True)
class Terms:
    """What the pod's hints and owner say about bringing it home."""

    allowed: bool
    why_not: str
    """Why it stays ("" when allowed): the hint that says so, or the default that does."""
    after: float
    """Seconds of room at home (and of age) before it moves."""
    max_in_flight: int
    gang: str | None


def owner_text(pod: Pod) -> str:
    """Who makes the new pod at home, for Event messages."""
    for ref in pod.metadata.owner_references or ():
        if ref.controller:
            return f"its {ref.kind} {ref.name}"
    return "Spillover"


def controlled(pod: Pod) -> bool:
    return any(ref.controller for ref in pod.metadata.owner_references or ())


def terms(pod: Pod, peer_after: float | None, default_after: float = DEFAULT_AFTER) -> Terms:
    """The pod's terms; a pod whose hints do not parse stays (they were checked at admission,
    so only a pod created before a hint existed can get here)."""
    try:
        hints = parse_hints(pod.metadata.annotations)
    except HintError as exc:
        return Terms(False, f"its hints do not parse: {exc}", default_after, 1, None)
    after = hints.repatriate_after
    if after is None:
        after = peer_after if peer_after is not None else default_after
    limit = hints.repatriate_max_in_flight or 1
    why_not = ""
    if hints.policy in (Policy.REMOTE_FIRST, Policy.REMOTE_ONLY):
        why_not = f"its policy {hints.policy.value} prefers peers"
    elif hints.repatriate is False:
        why_not = f'{REPATRIATE}: "false"'
    elif hints.repatriate is None and not controlled(pod):
        why_not = (
            f'a bare pod (no controller) stays unless {REPATRIATE}: "true" (Spillover would recreate it '
            "under the same name, with a new UID)"
        )
    return Terms(not why_not, why_not, after, limit, hints.gang)
