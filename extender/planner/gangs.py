"""Gangs: the pending members of a gang spill together to one peer, or none of them spills.

Members already scheduled count toward ``gang-size`` (``PlanInput.scheduled``): a member that
found room at home runs there, and the rest spill together as soon as all of them are pending;
if members already run on a peer, the rest go to that peer only. Without that count a gang whose
first member fitted at home would wait forever for a member that is never pending again.

This module says why a gang cannot spill (``blocked``), for every solver alike, and places each
gang whole on the cheapest peer (lowest tier first) whose nodes can hold every pending member
at once, checked by packing them onto that peer's real nodes. CP-SAT places gangs jointly with
everything else; this is the path for the LP and greedy solvers.
"""

from __future__ import annotations

import numpy as np

from extender.planner.packing import fill
from extender.planner.pricing import money
from extender.planner.problem import Problem
from extender.planner.work import SLACK, Work


def sizes(problem: Problem, members: list[int]) -> set[int]:
    return {h for c in members if (h := problem.classes[c].example.hints.gang_size) is not None}


def pinned_peer(problem: Problem, gang: tuple[str, str]) -> str | None:
    scheduled = problem.input.scheduled.get(gang)
    return scheduled.peer if scheduled is not None else None


def candidate_peers(problem: Problem, gang: tuple[str, str], members: list[int]) -> list[int]:
    """Peers every member may use (only the one its members already run on, if any)."""
    pinned = pinned_peer(problem, gang)
    return [
        p
        for p in range(len(problem.peers))
        if problem.allowed[members, p].all() and (pinned is None or problem.peers[p].name == pinned)
    ]


def blocked(work: Work, gang: tuple[str, str], members: list[int]) -> str | None:
    """Why the gang cannot spill whatever the capacity (None: only room decides)."""
    problem = work.problem
    name = gang[1]
    declared = sizes(problem, members)
    if len(declared) > 1:
        shown = ", ".join(str(s) for s in sorted(declared))
        return (
            f"gang {name}: its members disagree on spillover.io/gang-size ({shown}); "
            "give every member the same value"
        )
    pending = int(problem.count[members].sum())
    scheduled = problem.input.scheduled.get(gang)
    running = scheduled.count if scheduled is not None else 0
    size = next(iter(declared)) if declared else pending + running
    if pending + running < size:
        already = f" ({running} already scheduled)" if running else ""
        return f"gang {name}: {pending} of {size} members pending{already}; none spill until all are"
    if not candidate_peers(problem, gang, members):
        pinned = pinned_peer(problem, gang)
        if pinned is not None:
            if pinned not in {p.name for p in problem.peers}:
                return f"gang {name}: its members run on peer {pinned}, which is not healthy; the rest wait for it"
            return f"gang {name}: its members run on peer {pinned}, which the rest may not use"
        return f"gang {name}: no peer is allowed for every member (hints, health or namespace rules)"
    return None


def _limits_allow(work: Work, members: list[int], p: int) -> bool:
    problem = work.problem
    for i, limit in enumerate(problem.limits):
        if limit.peer != p:
            continue
        wanted = sum(int(work.left[c]) for c in members if c in limit.classes)
        if wanted > work.limit_left[i]:
            return False
    return True


def _budget_allows(work: Work, members: list[int], p: int) -> bool:
    """Whether the gang's namespace can pay for every pending member on peer ``p``."""
    problem = work.problem
    b = int(problem.class_budget[members[0]])
    if b < 0:
        return True
    need = float((work.left[members] * problem.cost[members, p]).sum())
    return need <= float(work.budget_left[b]) + SLACK


def place_gangs(work: Work) -> dict[tuple[str, str], str]:
    """Place every gang that may spill, whole; returns gang -> why it was not placed."""
    problem = work.problem
    failures: dict[tuple[str, str], str] = {}
    size_of = (problem.req / np.maximum(problem.alloc.max(axis=0), 1)).max(axis=1) if problem.n_nodes else None
    order = sorted(
        problem.gangs.items(),
        key=lambda item: -float((problem.count[item[1]] * size_of[item[1]]).sum()) if size_of is not None else 0.0,
    )
    for gang, members in order:
        if (reason := blocked(work, gang, members)) is not None:
            failures[gang] = reason
            continue
        if work.left[members].sum() == 0:
            continue
        candidates = candidate_peers(problem, gang, members)
        candidates.sort(
            key=lambda p: (int(problem.tier_rank[p]), float((problem.eff[members, p] * work.left[members]).sum()))
        )
        # Largest members first within the peer, the usual first-fit-decreasing order.
        ordered = sorted(members, key=lambda c: -float(size_of[c]) if size_of is not None else 0.0)
        too_dear = False
        for p in candidates:
            if not _limits_allow(work, members, p):
                continue
            if not _budget_allows(work, members, p):
                too_dear = True
                continue
            trial = work.free.copy()
            picks = []
            for c in ordered:
                k = int(work.left[c])
                nodes, counts = fill(problem, c, k, problem.peer_nodes[p], trial)
                if int(counts.sum()) < k:
                    break
                trial[nodes] -= counts[:, None] * problem.req[c][None, :]
                picks.append((c, nodes, counts))
            else:
                for c, nodes, counts in picks:
                    work.commit(c, nodes, counts)
                break
        else:
            failures[gang] = over_budget(work, gang, members) if too_dear else no_room(work, gang, members)
    return failures


def why_not_placed(work: Work, gang: tuple[str, str], members: list[int]) -> str:
    """Why a gang that may spill was not placed: its namespace's cap, or room."""
    problem = work.problem
    b = int(problem.class_budget[members[0]])
    peers = candidate_peers(problem, gang, members)
    if b >= 0 and peers and not any(_budget_allows(work, members, p) for p in peers):
        return over_budget(work, gang, members)
    return no_room(work, gang, members)


def over_budget(work: Work, gang: tuple[str, str], members: list[int]) -> str:
    problem = work.problem
    b = int(problem.class_budget[members[0]])
    peers = candidate_peers(problem, gang, members)
    cheapest = min((float((problem.count[members] * problem.cost[members, p]).sum()) for p in peers), default=0.0)
    return (
        f"gang {gang[1]}: its namespace's spend cap (spillover.io/max-spend-per-hour) leaves "
        f"{money(max(float(work.budget_left[b]), 0.0))}/h, and the whole gang costs {money(cheapest)}/h on the "
        "cheapest peer it may use"
    )


def no_room(work: Work, gang: tuple[str, str], members: list[int]) -> str:
    total = int(work.problem.count[members].sum())
    return f"gang {gang[1]}: no single peer has room for all {total} pending members"
