"""The planner's input and output types.

The live input is exactly what the capacity cache already holds (``PeerState`` objects) plus the
pods waiting to spill, so the server hands its own objects over without copying them into a
second model; the snapshot loader builds the same objects from a file.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from extender.capacity.fit import without_marker
from extender.capacity.model import PeerState
from extender.hints import Hints, parse_hints
from extender.pod_requests import pod_requests
from extender.resources import Resources
from extender.wire.core import Pod


class Solver(enum.StrEnum):
    AUTO = "auto"
    """The LP, then CP-SAT on what is left of the time when not proven optimal and small enough."""
    LP = "lp"
    """LP relaxation (column generation) rounded down, repaired greedily."""
    CPSAT = "cpsat"
    """The LP's answer improved by the exact CP-SAT model for the whole time limit."""
    GREEDY = "greedy"
    """Per pod in arrival order to the cheapest peer it fits (the baseline)."""


@dataclass(frozen=True, slots=True)
class PendingPod:
    """A pod waiting to spill (seen by filter with no real node passing, not yet bound)."""

    pod: Pod
    requests: Resources
    """Effective requests as the peer sees them (no marker resource, ``pods`` slot included)."""
    hints: Hints
    weight: float = 1.0
    """Multiplies the pod's cost in the objective: heavier pods get the cheap room first."""
    workload: str = ""
    """What per-peer limits count against (the controlling owner; the pod itself if none)."""

    @property
    def name(self) -> str:
        meta = self.pod.metadata
        return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name

    @classmethod
    def from_pod(cls, pod: Pod, *, weight: float = 1.0, workload: str | None = None) -> PendingPod:
        """Read requests, hints and owner from the pod; raises HintError for hints that do not parse
        (filter has already refused such a pod, so the live caller simply leaves it out)."""
        return cls(
            pod=pod,
            requests=without_marker(pod_requests(pod)),
            hints=parse_hints(pod.metadata.annotations),
            weight=weight,
            workload=workload if workload is not None else workload_of(pod),
        )


def workload_of(pod: Pod) -> str:
    meta = pod.metadata
    for ref in meta.owner_references or ():
        if ref.controller:
            return f"{meta.namespace}/{ref.kind}/{ref.name}"
    return f"{meta.namespace}/{meta.name}"


@dataclass(frozen=True, slots=True)
class PeerLimit:
    """At most ``max_pods`` pods, or ``max_share`` of the backlog's pods, of a workload on one peer.

    ``workload`` None applies the limit to every workload separately. The share is of the
    workload's pods in this backlog, the only ones the planner sees.
    """

    peer: str
    workload: str | None = None
    max_pods: int | None = None
    max_share: float | None = None

    def cap(self, workload_pods: int) -> int:
        caps = []
        if self.max_pods is not None:
            caps.append(self.max_pods)
        if self.max_share is not None:
            caps.append(int(self.max_share * workload_pods))
        return min(caps) if caps else workload_pods


Veto = Callable[[Pod, PeerState], str | None]
"""Extra per-(pod, peer) rule from the caller (namespace selectors, withdrawn workloads): a reason
to keep the pod off the peer, or None. Called once per equivalence class and peer."""


@dataclass(frozen=True, slots=True)
class GangMembersScheduled:
    """Members of a gang that are already scheduled: they count toward its ``gang-size``.

    ``peer`` is where the spilled ones run (None if all run at home): the pending members then
    go only there, so the gang's spilled part stays on one peer.
    """

    count: int
    peer: str | None = None


@dataclass(slots=True)
class PlanInput:
    peers: Sequence[PeerState]
    pods: Sequence[PendingPod]
    home: PeerState | None = None
    """Only used for scale-up advice (its node shapes and prices); pods are never planned there."""
    limits: Sequence[PeerLimit] = ()
    veto: Veto | None = None
    scheduled: Mapping[tuple[str, str], GangMembersScheduled] = field(default_factory=dict)
    """(namespace, gang) -> its members already scheduled (at home or on a peer)."""
    budgets: Mapping[str, float] = field(default_factory=dict)
    """Namespace -> what its pods planned here may cost per hour in peers, all together (its
    spillover.io/max-spend-per-hour less what it spends now); a namespace not listed has no cap."""


@dataclass(frozen=True, slots=True)
class Placement:
    pod: str
    cluster: str
    node: str
    cost_per_hour: float


@dataclass(frozen=True, slots=True)
class Unplaced:
    pod: str
    reason: str


@dataclass(frozen=True, slots=True)
class Advice:
    """Scale-up advice: add ``nodes`` nodes of ``shape`` to ``cluster`` to run ``pods`` more pods."""

    cluster: str
    shape: str
    nodes: int
    pods: int
    cost_per_hour: float


@dataclass(slots=True)
class Utilisation:
    """Requested share of schedulable allocatable, per resource, before and after the plan."""

    cluster: str
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
