"""One watch, several caches: a reflector handler that hands every event to each of a list.

Home's pods are watched once (the list and the stream cost the apiserver as much as the data),
and the home capacity, the spend ledger and repatriation each keep what they need of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from extender.kube.reflector import Handler

T = TypeVar("T")


class FanOut(Handler[T], Generic[T]):
    def __init__(self, handlers: Sequence[Handler[T]]) -> None:
        self.handlers = list(handlers)

    def replace(self, items: list[T]) -> None:
        for handler in self.handlers:
            handler.replace(items)

    def upsert(self, item: T) -> None:
        for handler in self.handlers:
            handler.upsert(item)

    def delete(self, item: T) -> None:
        for handler in self.handlers:
            handler.delete(item)

    def failed(self, error: str) -> None:
        for handler in self.handlers:
            handler.failed(error)
