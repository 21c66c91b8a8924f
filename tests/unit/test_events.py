"""Events on proxy pods are best effort: queued behind the writes that make pods run, never blocking."""

from __future__ import annotations

import asyncio
from typing import Any

from extender.kube import events
from extender.kube.api import EVENTS
from extender.kube.events import EventRecorder
from tests.unit.apiserver import FakeApiserver
from tests.unit.fakes import until


def posted(home: FakeApiserver) -> list[dict[str, Any]]:
    return home.objects(EVENTS, "shop")


POD = {"namespace": "shop", "name": "web-1", "uid": "u-1"}


async def test_recorded_events_are_posted_by_the_writers_in_the_background() -> None:
    home = FakeApiserver()
    recorder = EventRecorder(home)
    recorder.record(POD, "Spilled", "to east")
    recorder.record(POD, "DelegateRunning", "running", warning=False)
    assert posted(home) == []  # recording never waits for the apiserver
    writers = asyncio.create_task(recorder.run())
    try:
        await until(lambda: len(posted(home)) == 2)
    finally:
        writers.cancel()
    assert sorted(e["reason"] for e in posted(home)) == ["DelegateRunning", "Spilled"]
    assert posted(home)[0]["involvedObject"]["uid"] == "u-1"


def test_a_full_queue_drops_events_instead_of_blocking(monkeypatch: Any) -> None:
    monkeypatch.setattr(events, "QUEUE", 2)
    recorder = EventRecorder(FakeApiserver())
    for i in range(5):
        recorder.record(POD, "Spilled", f"try {i}")
    assert recorder.dropped == 3
