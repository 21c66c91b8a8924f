"""Candidate whole-node fills ("patterns") for every node type: the LP's counts rounded, greedy, pairs.

What only a combination fits (3 CPU-heavy and 3 memory-heavy pods fill a node that 4 of either
strand) is found by trying pairs of each type's most valuable groups; every candidate is completed
greedily with whatever still fits.
"""

from __future__ import annotations

import numpy as np

from extender.planner.pattern_setting import TOLERANCE, PatternSetting
from extender.planner.problem import F64, I64

TOP = 3
"""Groups per type whose pairs are enumerated: the most valuable there (a node of them)..."""
TOP_EACH = 2
"""...and the most valuable per pod."""
STEPS = 16
"""At most this many counts of the first group of a pair are tried (evenly spaced, ends included)."""
ROUND_UP = 2
"""Fractional counts per type whose every rounding (up or down) is a starting pattern."""
_EPSILON = 1e-6
_MANY = np.iinfo(np.int64).max // 4


def _fill(room: I64, req: I64, cap: I64) -> I64:
    """[row, group]: how many of each group fit ``room`` [row, resource] alone, at most ``cap``."""
    out = cap.copy()
    for r in range(req.shape[1]):
        need = req[:, r]
        pos = need > 0
        if pos.any():
            out[:, pos] = np.minimum(out[:, pos], np.maximum(room[:, r, None], 0) // need[None, pos])
    return out


def _complete(patterns: I64, room: I64, req: I64, cap: I64, value: F64) -> None:
    """Greedy completion in place: add the group worth most per share of the room, repeatedly."""
    size = (req[None, :, :] / np.maximum(room[:, None, :], 1)).max(axis=2)
    density = value / np.maximum(size, 1e-12)
    left = room - patterns @ req
    rows = np.arange(patterns.shape[0])
    for _ in range(req.shape[0]):
        fits = _fill(left, req, cap - patterns)
        score = np.where((fits > 0) & (value > 0), density, -np.inf)
        best = np.argmax(score, axis=1)
        live = np.nonzero(np.isfinite(score[rows, best]))[0]
        if live.size == 0:
            return
        take = fits[live, best[live]]
        patterns[live, best[live]] += take
        left[live] -= take[:, None] * req[best[live]]


def _pairs(room: I64, req: I64, cap: I64, value: F64) -> list[I64]:
    """For each pair of a type's most valuable groups (``TOP`` by what a node of them alone is
    worth, ``TOP_EACH`` by what one pod is worth: two big pods can beat a node of small ones),
    the best mix of the two counting what the rest of the room would still hold, completed."""
    t, n_groups = value.shape
    alone = _fill(room, req, cap)
    worth = np.where(value > 0, value * alone, 0.0)
    each = np.where((value > 0) & (alone > 0), value, 0.0)
    ranked = np.concatenate([np.argsort(-worth, axis=1)[:, :TOP], np.argsort(-each, axis=1)[:, :TOP_EACH]], axis=1)
    # The room a pair leaves is valued as the group densest in value there would fill it alone.
    size = (req[None, :, :] / np.maximum(room[:, None, :], 1)).max(axis=2)
    densest = np.argmax(np.where(worth > 0, value / np.maximum(size, 1e-12), -np.inf), axis=1)
    out = []
    rows_all = np.arange(t)
    for i in range(ranked.shape[1]):
        for j in range(i + 1, ranked.shape[1]):
            gi, gj = ranked[:, i], ranked[:, j]
            rows = np.nonzero((gi != gj) & (worth[rows_all, gi] > 0) & (worth[rows_all, gj] > 0))[0]
            if rows.size == 0:
                continue
            gi, gj = gi[rows], gj[rows]
            most = alone[rows, gi]
            steps = np.rint(np.linspace(0.0, 1.0, STEPS)[None, :] * most[:, None]).astype(np.int64)
            rem = np.maximum(room[rows, None, :] - steps[:, :, None] * req[gi][:, None, :], 0)
            need = req[gj][:, None, :]
            quotient = np.where(need > 0, rem // np.maximum(need, 1), _MANY)
            a_j = np.minimum(quotient.min(axis=2), cap[rows, gj][:, None])
            total = steps * value[rows, gi][:, None] + a_j * value[rows, gj][:, None]
            left = rem - a_j[:, :, None] * need
            fill = densest[rows]
            filler = req[fill][:, None, :]
            fits = np.where(filler > 0, left // np.maximum(filler, 1), _MANY).min(axis=2)
            rest = np.minimum(fits, cap[rows, fill][:, None]) * np.maximum(value[rows, fill], 0.0)[:, None]
            pick = np.argmax(total + rest, axis=1)
            pattern = np.zeros((t, n_groups), dtype=np.int64)
            pattern[rows, gi] = steps[np.arange(rows.size), pick]
            pattern[rows, gj] = a_j[np.arange(rows.size), pick]
            _complete(pattern, room, req, cap, value)
            out.append(pattern)
    return out


def generate(setting: PatternSetting, value: F64, seeds: tuple[I64, F64] | None = None) -> I64:
    """Candidate patterns [type, k, group]: the LP's fill rounded (given ``seeds``: its counts
    rounded down and their fractions), greedy, and the best pairs, each completed."""
    room, req, cap = setting.room, setting.req, setting.cap
    out = []
    if seeds is not None:
        # Every way of rounding the ROUND_UP largest fractional counts of each type up or down,
        # where it fits, completed with whatever fits (``eager``: a pod the LP values at zero
        # reduced cost costs nothing there).
        floor, fraction = seeds
        eager = np.where(value > -TOLERANCE, np.maximum(value, 0) + _EPSILON, value)
        rows = np.arange(floor.shape[0])
        ranked = np.argsort(-fraction, axis=1)[:, :ROUND_UP]
        for mask in range(1 << ranked.shape[1]):
            pattern = floor.copy()
            for bit in range(ranked.shape[1]):
                if mask >> bit & 1:
                    pick = ranked[:, bit]
                    ok = fraction[rows, pick] > TOLERANCE
                    pattern[rows[ok], pick[ok]] += 1
            fits = np.all(pattern @ req <= room, axis=1) & np.all(pattern <= cap, axis=1)
            if mask and not fits.any():
                continue
            pattern[~fits] = 0
            _complete(pattern, room, req, cap, eager)
            out.append(pattern)
        # The LP's counts rounded up, filled in order (largest pods first, then largest fraction
        # first) as far as the room goes: rounding a big pod up at the expense of small ones,
        # which have room elsewhere.
        target = np.minimum(floor + (fraction > TOLERANCE), cap)
        size = (req[None, :, :] / np.maximum(room[:, None, :], 1)).max(axis=2)
        for order in (np.argsort(-size, axis=1), np.argsort(-fraction, axis=1)):
            pattern = np.zeros_like(floor)
            left = room.copy()
            for pick in order.T:
                fit = _fill(left, req, cap)[rows, pick]
                take = np.minimum(target[rows, pick], fit)
                pattern[rows, pick] += take
                left -= take[:, None] * req[pick]
            _complete(pattern, room, req, cap, eager)
            out.append(pattern)
    greedy = np.zeros_like(cap)
    _complete(greedy, room, req, cap, value)
    out.append(greedy)
    out += _pairs(room, req, cap, value)
    return np.stack(out, axis=1)
