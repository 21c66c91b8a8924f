"""Server-side latency of the extender verbs and the webhook, against a baseline measured in the same run.

Each handler coroutine is awaited directly with a request whose body is already in memory, so
the figures are what Spillover adds inside the process (decode, decide, encode, metrics and one
JSON log line, formatted and written to /dev/null), not HTTP or the client. The baseline is the
least any Python extender does with the same body: stdlib ``json`` decode, then encode the names
back (what an extender that passes every node would answer).

State: 3 peers x 1000 nodes in memory, home nodes filling the rest of the names.

    python hack/bench/handlers_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from extender.capacity.model import PeerState  # noqa: E402
from extender.scheduling.memory import InMemoryState, node_capacity, peer, pod_dict  # noqa: E402
from extender.server.extender_app import ExtenderVerbs  # noqa: E402
from extender.server.http_server import Answer  # noqa: E402
from extender.server.logs import JsonFormatter  # noqa: E402
from extender.server.metrics import Metrics  # noqa: E402
from extender.server.webhook_app import make_webhook_app  # noqa: E402
from extender.webhook.mutate import WebhookConfig  # noqa: E402

FILTER_GOAL_MS = 2.0
WEBHOOK_GOAL_MS = 3.0
PEERS = (("east", 1.0), ("west", 2.0), ("north", 3.0))
NODES_PER_PEER = 1000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Body:
    """Just enough of aiohttp's Request for our handlers: they only ``await request.read()``."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body


async def baseline(request: web.Request) -> web.Response:
    args = json.loads(await request.read())
    return web.Response(body=json.dumps({"NodeNames": args["NodeNames"]}).encode(), content_type="application/json")


def verb_handler(verb: Callable[[bytes], Answer]) -> Handler:
    """An extender verb behind the same request/response shape as the baseline, so both pay alike."""

    async def handle(request: web.Request) -> web.Response:
        status, body = verb(await request.read())
        return web.Response(status=status, body=body, content_type="application/json")

    return handle


def handler_of(app: web.Application, path: str) -> Handler:
    for route in app.router.routes():
        if route.method == "POST" and route.resource is not None and route.resource.canonical == path:
            return route.handler
    raise LookupError(path)


async def measure(handler: Handler, body: bytes, runs: int) -> list[float]:
    request: Any = _Body(body)
    for _ in range(min(50, runs)):  # warm caches (quantity parsing, metric children)
        response = await handler(request)
        assert response.status == 200, getattr(response, "text", "")
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await handler(request)
        samples.append(time.perf_counter() - started)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def state() -> InMemoryState:
    # "-full": every node has 100m CPU free, so a 500m pod fits none and the per-peer bound (most
    # free on one node) refuses it without a scan. "-cordoned": the same but one roomy node is
    # cordoned: the bound over open nodes leaves only that one to check, unless the pod has a node
    # selector (bounds do not know labels): then all 3 x 1000 nodes are scanned, the worst case.
    def full(name: str, cordoned_room: bool) -> PeerState:
        nodes = [node_capacity(f"{name}-{i}", cpu_m=4000, used_cpu_m=3900) for i in range(NODES_PER_PEER - 1)]
        nodes.append(
            node_capacity(
                f"{name}-last", cpu_m=4000, used_cpu_m=0 if cordoned_room else 3900, unschedulable=cordoned_room
            )
        )
        return peer(name, nodes=nodes, cost=dict(PEERS)[name.split("-")[0]])

    peers = [full(f"{name}-full", False) for name, _ in PEERS] + [full(f"{name}-cordoned", True) for name, _ in PEERS]
    fitting = [peer(name + "-roomy", nodes=NODES_PER_PEER, cost=cost) for name, cost in PEERS]
    return InMemoryState([*peers, *fitting], home_nodes=[f"home-{i}" for i in range(5000)])


def args_body(names: list[str], **pod: Any) -> bytes:
    return json.dumps({"Pod": pod_dict(**pod), "Nodes": None, "NodeNames": names}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (smoke test)")
    opts = parser.parse_args()
    runs_small, runs_big = (200, 100) if opts.quick else (2000, 1000)

    with open(os.devnull, "w") as sink:
        log_handler = logging.StreamHandler(sink)
        log_handler.setFormatter(JsonFormatter())
        logging.getLogger().handlers[:] = [log_handler]
        logging.getLogger().setLevel(logging.INFO)
        asyncio.run(run(runs_small, runs_big))


async def run(runs_small: int, runs_big: int) -> None:
    metrics = Metrics()
    verbs = ExtenderVerbs(state(), metrics)
    filter_, prioritize = verb_handler(verbs.filter), verb_handler(verbs.prioritize)
    mutate = handler_of(make_webhook_app(WebhookConfig(), metrics), "/mutate")
    full = [f"{name}" for name, _ in PEERS]
    rows: list[tuple[str, list[float], list[float], float | None]] = []

    for size in (500, 5000):
        runs = runs_small if size == 500 else runs_big
        real = [f"home-{i}" for i in range(size - 3)]
        virtual_full = [f"spillover-{name}-full" for name in full]
        virtual_cordoned = [f"spillover-{name}-cordoned" for name in full]
        virtual_roomy = [f"spillover-{name}-roomy" for name in full]
        goal = FILTER_GOAL_MS if size == 5000 else None
        cases = {
            f"filter   {size:>5} names, local-first, home has room": (filter_, args_body(real + virtual_full)),
            f"filter   {size:>5} names, remote-first, peers fit": (
                filter_,
                args_body(real + virtual_roomy, annotations={"spillover.io/policy": "remote-first"}),
            ),
            f"filter   {size:>5} names, remote-first, no peer has room (bound, no scan)": (
                filter_,
                args_body(real + virtual_full, annotations={"spillover.io/policy": "remote-first"}),
            ),
            f"filter   {size:>5} names, remote-first, room on cordoned nodes only": (
                filter_,
                args_body(real + virtual_cordoned, annotations={"spillover.io/policy": "remote-first"}),
            ),
            f"filter   {size:>5} names, remote-first, nodeSelector, no fit (3x1000 scanned)": (
                filter_,
                args_body(
                    real + virtual_cordoned,
                    annotations={"spillover.io/policy": "remote-first"},
                    nodeSelector={"disk": "ssd"},
                ),
            ),
            f"prioritize {size:>3} names (3 virtual)": (prioritize, args_body(real + virtual_roomy)),
        }
        for label, (handler, body) in cases.items():
            base = await measure(baseline, body, runs)
            ours = await measure(handler, body, runs)
            rows.append((label, ours, base, goal))

    review = (ROOT / "tests/fixtures/admission/pod_create.json").read_bytes()
    base = await measure(baseline_review, review, runs_small)
    rows.append(("webhook  mutate (pod CREATE)", await measure(mutate, review, runs_small), base, WEBHOOK_GOAL_MS))

    print(f"server-side handler latency, {len(PEERS)} peers x {NODES_PER_PEER} nodes (+3 roomy peers), ms")
    print(f"{'case':<76} {'p50':>7} {'p99':>7} {'base p50':>9} {'base p99':>9} {'p99/base':>9}  goal")
    for label, ours, base_samples, goal in rows:
        p50, p99, b50, b99 = pct(ours, 0.5), pct(ours, 0.99), pct(base_samples, 0.5), pct(base_samples, 0.99)
        verdict = "" if goal is None else f"p99<={goal:g}ms {'met' if p99 <= goal else 'MISSED'}"
        print(f"{label:<76} {p50:7.3f} {p99:7.3f} {b50:9.3f} {b99:9.3f} {p99 / b99:8.2f}x  {verdict}")
    print(f"(mean of all ours samples: {statistics.fmean(s for _, o, _, _ in rows for s in o) * 1000:.3f} ms)")


async def baseline_review(request: web.Request) -> web.Response:
    review = json.loads(await request.read())
    answer = {"apiVersion": review["apiVersion"], "kind": "AdmissionReview"}
    answer["response"] = {"uid": review["request"]["uid"], "allowed": True}
    return web.Response(body=json.dumps(answer).encode(), content_type="application/json")


if __name__ == "__main__":
    main()
