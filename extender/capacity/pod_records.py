"""Compact records of the pods a tracker counts: 100,000 pods in a few megabytes, out of the GC's way.

Each counted pod is one dict entry (its UID as an integer, when it is a UUID) holding a tuple of
its node's (interned) name and a shape number; request vectors (``Shapes``) are shared, since most
pods have one of a handful of shapes.
"""

from __future__ import annotations

import re

from extender.capacity.node import EMPTY
from extender.resources import Resources

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PodKey = int | str
Record = tuple[str, int]
"""Where a counted pod is and what it takes: node name, and its shape number (see ``Shapes``) times
two plus one for a delegate. Atomic values only, so the cyclic GC leaves 100,000 of them alone."""
Counted = tuple[str, Resources, bool]
"""The same, spelled out: node name, requests, delegate."""


class Shapes:
    """Request vectors shared by every pod that has them, by number, counted by reference.

    A pod's record holds a shape's number rather than its dict: a tuple holding a dict is tracked
    by the cyclic garbage collector forever, and walking 100,000s of them made full collections
    stall the event loop. A shape no pod has any more is forgotten (its number is reused).
    """

    __slots__ = ("amounts", "free", "ids", "keys", "refs")

    def __init__(self) -> None:
        self.ids: dict[tuple[tuple[str, int], ...], int] = {}
        self.amounts: list[Resources] = []
        self.keys: list[tuple[tuple[str, int], ...]] = []
        self.refs: list[int] = []
        self.free: list[int] = []

    def take(self, amounts: Resources) -> int:
        key = _shape_key(amounts)
        number = self.ids.get(key)
        if number is None:
            if self.free:
                number = self.free.pop()
                self.amounts[number], self.keys[number], self.refs[number] = amounts, key, 0
            else:
                number = len(self.amounts)
                self.amounts.append(amounts)
                self.keys.append(key)
                self.refs.append(0)
            self.ids[key] = number
        self.refs[number] += 1
        return number

    def drop(self, number: int) -> None:
        self.refs[number] -= 1
        if not self.refs[number]:
            del self.ids[self.keys[number]]
            self.amounts[number] = EMPTY
            self.free.append(number)

    def record(self, counted: Counted) -> Record:
        node, requests, delegate = counted
        return node, self.take(requests) * 2 + delegate

    def counted(self, record: Record) -> Counted:
        node, shape = record
        return node, self.amounts[shape >> 1], bool(shape & 1)


def _shape_key(amounts: Resources) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(amounts.items()))


def pod_key(uid: str) -> PodKey:
    """A UID as a 16-byte integer when it is a UUID (as the apiserver makes them): half the memory."""
    if len(uid) == 36 and _UUID.fullmatch(uid):
        return int(uid.replace("-", ""), 16)
    return uid
