"""Events on proxy pods are best effort: queued behind the writes that make pods run, never blocking."""

from __future__ import annotations

import asyncio
from typing import Any

from extender.kube import events
from extender.kube.events import EventRecorder


class RecordingHome:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> bytes:
        self.posted.append(body)
        return b"{}"


POD = {"namespace": "shop", "name": "web-1", "uid": "u-1"}


async def test_recorded_events_are_posted_by_the_writers_in_the_background() -> None:
    home = RecordingHome()
    recorder = EventRecorder(home)  # type: ignore[arg-type]
    recorder.record(POD, "Spilled", "to east")
    recorder.record(POD, "DelegateRunning", "running", warning=False)
    assert home.posted == []  # recording never waits for the apiserver
    writers = asyncio.create_task(recorder.run())
    try:
        for _ in range(100):
            if len(home.posted) == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        writers.cancel()
    assert sorted(e["reason"] for e in home.posted) == ["DelegateRunning", "Spilled"]
    assert home.posted[0]["involvedObject"]["uid"] == "u-1"


def test_a_full_queue_drops_events_instead_of_blocking(monkeypatch: Any) -> None:
    monkeypatch.setattr(events, "QUEUE", 2)
    recorder = EventRecorder(RecordingHome())  # type: ignore[arg-type]
    for i in range(5):
        recorder.record(POD, "Spilled", f"try {i}")
    assert recorder.dropped == 3
