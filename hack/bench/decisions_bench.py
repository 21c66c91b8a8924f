"""What recording the last decisions adds to a filter call, against the filter call itself.

The filter verb records every decision (extender/server/decisions.py) for the status page and
`spillover explain`. This times, in the same run, ExtenderVerbs.filter without and with a
Decisions ring, for a pod that spills (3 peers, 50 home nodes sent) and one placed at home, and
prints the added cost per call and its ratio to the call.

    python hack/bench/decisions_bench.py [--calls N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from extender.scheduling.memory import InMemoryState, node_capacity, peer, pod_dict  # noqa: E402
from extender.server.decisions import Decisions  # noqa: E402
from extender.server.extender_app import ExtenderVerbs  # noqa: E402
from extender.server.metrics import Metrics  # noqa: E402


def _body(node_names: list[str], annotations: dict[str, str]) -> bytes:
    pod = pod_dict(cpu="100m", annotations=annotations)
    return json.dumps({"Pod": pod, "NodeNames": node_names}).encode()


def _round(verbs: ExtenderVerbs, body: bytes, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        verbs.filter(body)
    return (time.perf_counter() - started) / calls


def _compare(bare: ExtenderVerbs, recorded: ExtenderVerbs, body: bytes, calls: int) -> tuple[float, float]:
    """Medians over rounds that alternate the two, after a warm-up of both (caches, allocator)."""
    _round(bare, body, calls)
    _round(recorded, body, calls)
    a, b = [], []
    for _ in range(7):
        a.append(_round(bare, body, calls))
        b.append(_round(recorded, body, calls))
    return statistics.median(a), statistics.median(b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="1,000 calls per round (what `make bench` runs)")
    args = parser.parse_args()
    if args.quick:
        args.calls = 1000
    logging.disable(logging.CRITICAL)
    peers = [
        peer(name, nodes=[node_capacity(f"{name}-{i}", cpu_m=8000) for i in range(100)]) for name in ("a", "b", "c")
    ]
    state = InMemoryState(peers=peers, home_nodes=[f"home-{i}" for i in range(50)])
    home = [f"home-{i}" for i in range(50)]
    virtual = [p.virtual_node for p in peers]
    cases = {
        "spills (remote-only, 50 home + 3 virtual nodes)": _body(
            home + virtual, {"spillover.io/policy": "remote-only"}
        ),
        "stays home (50 home + 3 virtual nodes)": _body(home + virtual, {}),
    }
    print(f"{'case':52} {'filter us':>10} {'+record us':>11} {'ratio':>7}")
    for name, body in cases.items():
        bare, recorded = _compare(
            ExtenderVerbs(state, Metrics()),
            ExtenderVerbs(state, Metrics(), Decisions()),
            body,
            args.calls,
        )
        print(f"{name:52} {bare * 1e6:>10.1f} {(recorded - bare) * 1e6:>11.2f} {recorded / bare:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
