"""What preparing a pod costs: Spillover's webhook against the admission policies, alone.

The time-to-spill bench measures the whole way of a spilled pod, where admission is one step of
many on a machine every cluster shares. Here only admission runs: pods are created with
``dryRun=All`` (every admission step, nothing stored, nothing scheduled), in rounds that rotate
the three cases so none is always measured first:

- plain: a namespace that is not opted in (no preparation at all: the baseline);
- webhook: an opted-in namespace, pods prepared by Spillover's webhook;
- policies: the same namespace, prepared by manifests/policies (the webhook's registration
  removed meanwhile).

It prints, per case, the CPU the home apiserver and Spillover spent per pod (median of rounds)
and the creation latency. Uses the default lab with Spillover serving.

Usage: python hack/bench/admission_cost.py [--pods 300] [--rounds 4] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lab"))
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE))

from proc_cpu import CpuMeter  # noqa: E402
from spillover_lab import faults  # noqa: E402
from spillover_lab import lab as lablib  # noqa: E402
from spillover_lab import spillover as sp  # noqa: E402
from time_to_spill import ensure_ns, pod, use_policies  # noqa: E402

from extender.kube import client as kube_client  # noqa: E402
from extender.kube.raw import RawClient  # noqa: E402

OPTED_IN = "spill-bench"  # time_to_spill's: use_policies probes it
PLAIN = "admission-bench-plain"
PARALLEL = 16


async def create_all(raw: RawClient, namespace: str, count: int) -> list[float]:
    """Create ``count`` pods with dryRun=All, PARALLEL at a time; returns each call's seconds."""
    seconds: list[float] = []
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            started = time.perf_counter()
            await raw.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/pods",
                pod(f"a-{i}", "50m", "admission"),
                query=[("dryRun", "All")],
            )
            seconds.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(PARALLEL)))
    return seconds


async def run(args: argparse.Namespace) -> int:
    state = lablib.up()
    sp.ensure_running(state)
    serve = sp.running_serve(state)
    assert serve is not None
    watched = {"home/kube-apiserver": faults.component(state, "home", "kube-apiserver").pid, "spillover": serve.pid}
    api = await kube_client.from_file(str(state.kubeconfig("home")))
    home = RawClient(api, timeout=30)
    cpu: dict[str, dict[str, list[float]]] = {
        case: {name: [] for name in watched} for case in ("plain", "webhook", "policies")
    }
    latency: dict[str, list[float]] = {case: [] for case in cpu}
    policies_on = False
    try:
        await ensure_ns(home, OPTED_IN, enabled=True)
        await ensure_ns(home, PLAIN, enabled=False)
        await create_all(home, PLAIN, 50)  # warm connections
        order = ["plain", "webhook", "policies"]
        for round_ in range(args.rounds):
            cases = order[round_ % 3 :] + order[: round_ % 3]
            for case in cases:
                if (case == "policies") != policies_on:
                    policies_on = case == "policies"
                    await use_policies(home, state, policies_on)
                meter = CpuMeter(watched)
                latency[case] += await create_all(home, PLAIN if case == "plain" else OPTED_IN, args.pods)
                meter.stop()
                for name in watched:
                    cpu[case][name].append(meter.per_pod_ms(name, args.pods))
                print(
                    f"[bench] round {round_ + 1} {case}: "
                    + ", ".join(f"{n} {cpu[case][n][-1]:.2f} ms/pod" for n in watched),
                    flush=True,
                )
    finally:
        if policies_on:
            await use_policies(home, state, False)
        await home.close()
        await api.close()
    rounds = f"median of {args.rounds} rounds of {args.pods} pods (dryRun=All, {PARALLEL} at a time)"
    print(f"\nCPU per admitted pod, {rounds}:")
    print(f"  {'case':10} {'home apiserver':>15} {'spillover':>10} {'create p50':>11} {'p99':>8}")
    for case in cpu:
        ordered = sorted(latency[case])
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(
            f"  {case:10} {statistics.median(cpu[case]['home/kube-apiserver']):12.2f} ms "
            f"{statistics.median(cpu[case]['spillover']):7.2f} ms {statistics.median(ordered) * 1000:8.1f} ms "
            f"{p99 * 1000:6.1f} ms"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="100 pods a round (what `make bench LAB=1` runs)")
    args = parser.parse_args()
    if args.quick:
        args.pods = 100
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
