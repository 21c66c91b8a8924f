"""The planner: places the whole spill backlog at once by weighted cost (OR-Tools).

Public API: ``plan(PlanInput(peers, pods, ...), solver)`` -> ``PlanResult``; ``Plan(result)`` for
the scheduler verbs (``score``, ``consume``, ``gang_peer``); ``load_snapshot`` for ``simulate``.
"""

from extender.planner.scoring import PlanScores
from extender.planner.solve import PlanResult, plan
from extender.planner.types import Advice, PeerLimit, PendingPod, Placement, PlanInput, Solver, Unplaced

__all__ = [
    "Advice",
    "PeerLimit",
    "PendingPod",
    "Placement",
    "PlanInput",
    "PlanResult",
    "PlanScores",
    "Solver",
    "Unplaced",
    "plan",
]
