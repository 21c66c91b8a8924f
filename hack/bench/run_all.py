"""Every benchmark under hack/bench in its quick mode, one after the other (``make bench``).

Each bench prints its own figures against a baseline measured in the same run; this runs them in
turn (never two at once: they would measure each other), says before each what it measures, and
ends with one line per bench: passed, failed (its exit code) or skipped, and how long it took.
The lab benches start real clusters (kube-apiserver, etcd, kube-scheduler, kwok) and take minutes;
they run only with ``--lab`` (``make bench LAB=1``), after ``hack/lab/build`` has built the binaries.

    python hack/bench/run_all.py [--lab] [--only NAME[,NAME...]] [--list]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@dataclass(frozen=True)
class Bench:
    script: str
    measures: str
    lab: bool = False
    """Needs a lab, which the bench starts itself: time_to_spill and admission_cost the clone's own
    (``hack/lab/up``, left running), scheduler_throughput a bench lab of its own (stopped afterwards)."""

    @property
    def name(self) -> str:
        return self.script.removesuffix(".py")


BENCHES = (
    Bench(
        "handlers_bench.py",
        "server-side latency of filter, prioritize and the webhook (3 peers x 1,000 nodes), against a bare JSON "
        "decode/encode of the same body",
    ),
    Bench("decisions_bench.py", "what recording each decision (status page, `spillover explain`) adds to filter"),
    Bench(
        "planner_bench.py",
        "the planner's placed pods, tiers and price against exact CP-SAT references, and its time on 5,000 pods",
    ),
    Bench(
        "large_peers.py",
        "2 peers x 1,000 nodes x 20,000 pods through the real list/watch paths: event-loop stalls, memory per "
        "pod, time to sync, filter latency meanwhile",
    ),
    Bench(
        "time_to_spill.py",
        "pod creation to Running through Spillover, against the same burst created in the peer directly",
        lab=True,
    ),
    Bench(
        "admission_cost.py",
        "what preparing a pod costs the home apiserver: Spillover's webhook and the admission policies, against "
        "no preparation (dry-run creates)",
        lab=True,
    ),
    Bench(
        "scheduler_throughput.py",
        "pods/s bound by the real kube-scheduler with Spillover as its extender (own-scheduler, HTTPS, HTTP/1.1), "
        "against no extender",
        lab=True,
    ),
)


@dataclass
class Outcome:
    bench: Bench
    verdict: str
    seconds: float = 0.0


def run(bench: Bench) -> Outcome:
    print(f"\n=== {bench.name}: {bench.measures}", flush=True)
    started = time.monotonic()
    code = subprocess.call([sys.executable, str(HERE / bench.script), "--quick"], cwd=ROOT)
    seconds = time.monotonic() - started
    return Outcome(bench, "passed" if code == 0 else f"FAILED (exit {code})", seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lab", action="store_true", help="also run the lab benches (they start real clusters)")
    parser.add_argument("--only", default="", help="comma-separated bench names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the benches and what each measures")
    args = parser.parse_args()
    if args.list:
        for bench in BENCHES:
            print(f"{bench.name:22} {'(lab) ' if bench.lab else ''}{bench.measures}")
        return 0
    chosen = [name for name in args.only.split(",") if name]
    unknown = sorted(set(chosen) - {bench.name for bench in BENCHES})
    if unknown:
        names = ", ".join(bench.name for bench in BENCHES)
        print(f"error: no bench named {', '.join(unknown)}; the benches are {names}", file=sys.stderr)
        return 2
    outcomes: list[Outcome] = []
    for bench in BENCHES:
        if chosen and bench.name not in chosen:
            continue
        if bench.lab and not args.lab:
            print(
                f"\n=== {bench.name}: skipped: it needs a lab (real kube-apiserver, etcd, kube-scheduler and kwok, "
                "which it starts itself, taking minutes); run with --lab (make bench LAB=1) after hack/lab/build",
                flush=True,
            )
            outcomes.append(Outcome(bench, "skipped (needs a lab: --lab)"))
            continue
        outcomes.append(run(bench))
    print("\n=== summary")
    for outcome in outcomes:
        took = f"{outcome.seconds:6.0f} s" if outcome.seconds else " " * 8
        print(f"{outcome.bench.name:22} {took}  {outcome.verdict}")
    return 1 if any(o.verdict.startswith("FAILED") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
