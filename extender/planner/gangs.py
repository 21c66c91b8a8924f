"""Gangs: all members on one peer or none spill.

Each complete gang goes to the cheapest peer (lowest tier first) whose nodes can hold every member
at once, checked by packing the members onto that peer's real nodes; a gang with members still
missing is held back, so nothing of it spills until the plan can take all of it. The CP-SAT solver
places gangs jointly with everything else; this is the path for the flow and greedy solvers.
"""

from __future__ import annotations

import numpy as np

from extender.planner.packing import fill
from extender.planner.work import Work


def gang_size(work: Work, members: list[int]) -> int:
    hints = work.problem.classes[members[0]].example.hints
    return hints.gang_size or int(work.left[members].sum())


def incomplete_reason(work: Work, gang: tuple[str, str], members: list[int]) -> str | None:
    pending, size = int(work.problem.count[members].sum()), gang_size(work, members)
    if pending < size:
        return f"gang {gang[1]}: {pending} of {size} members pending; none spill until all are"
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


def place_gangs(work: Work) -> dict[tuple[str, str], str]:
    """Place every complete gang whole; returns gang -> why it was not placed."""
    problem = work.problem
    failures: dict[tuple[str, str], str] = {}
    size_of = (problem.req / np.maximum(problem.alloc.max(axis=0), 1)).max(axis=1) if problem.n_nodes else None
    order = sorted(
        problem.gangs.items(),
        key=lambda item: -float((problem.count[item[1]] * size_of[item[1]]).sum()) if size_of is not None else 0.0,
    )
    for gang, members in order:
        if (reason := incomplete_reason(work, gang, members)) is not None:
            failures[gang] = reason
            continue
        if work.left[members].sum() == 0:
            continue
        candidates = [p for p in range(len(problem.peers)) if problem.allowed[members, p].all()]
        if not candidates:
            failures[gang] = f"gang {gang[1]}: no peer is allowed for every member"
            continue
        candidates.sort(
            key=lambda p: (int(problem.tier_rank[p]), float((problem.eff[members, p] * work.left[members]).sum()))
        )
        # Largest members first within the peer, the usual first-fit-decreasing order.
        ordered = sorted(members, key=lambda c: -float(size_of[c]) if size_of is not None else 0.0)
        for p in candidates:
            if not _limits_allow(work, members, p):
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
            total = int(work.left[members].sum())
            failures[gang] = f"gang {gang[1]}: no single peer has room for all {total} members"
    return failures
