"""Spilled pods over the last hour, sampled off the scheduling path for the status page's chart."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

EVERY = 30.0
WINDOW = 3600.0


class SpilledHistory:
    """(unix time, count) every ``every`` seconds, the last ``window`` seconds of them."""

    def __init__(self, count: Callable[[], int], every: float = EVERY, window: float = WINDOW) -> None:
        self.count = count
        self.every = every
        self.points: deque[tuple[float, int]] = deque(maxlen=int(window / every) + 1)

    def sample(self, now: float | None = None) -> None:
        self.points.append((time.time() if now is None else now, self.count()))

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every)
