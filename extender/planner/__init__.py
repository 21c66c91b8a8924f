"""The planner: places the whole spill backlog at once by weighted cost (OR-Tools).

Public API: ``plan(PlanInput(peers, pods, ...), solver)`` -> ``PlanResult``; ``Plan(result)`` for
the scheduler verbs (``score``, ``consume``, ``gang_peer``); ``load_snapshot`` for ``simulate``.
"""

from extender.planner.model import Advice, PeerLimit, PendingPod, Placement, PlanInput, Solver, Unplaced
from extender.planner.plan import Plan
from extender.planner.planner import PlanResult, plan

__all__ = [
    "Advice",
    "PeerLimit",
    "PendingPod",
    "Placement",
    "Plan",
    "PlanInput",
    "PlanResult",
    "Solver",
    "Unplaced",
    "plan",
]
