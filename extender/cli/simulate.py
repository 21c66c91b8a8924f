"""`spillover simulate`: run the planner on a snapshot file, with no cluster at all.

Exit codes: 0 planned (even if some pods fit nowhere: that is an answer), 2 bad snapshot or
arguments. Errors are one line naming the place in the file, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from extender.planner.snapshot import SnapshotError, load_snapshot
from extender.planner.solve import PlanResult, plan
from extender.planner.types import Solver


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="plan a snapshot of clusters and pending pods offline",
        description="Place the pending pods of a snapshot file on its peer clusters, as the planner would.",
    )
    parser.add_argument(
        "--snapshot",
        required=True,
        metavar="FILE",
        help="YAML or JSON snapshot (format: README, section `spillover simulate`; examples: hack/snapshots/)",
    )
    parser.add_argument("--solver", choices=[s.value for s in Solver], default=Solver.AUTO.value, help="default: auto")
    parser.add_argument("--output", choices=("table", "json"), default="table")
    parser.add_argument("--time-limit", type=float, default=2.0, metavar="SECONDS", help="solver deadline")
    parser.set_defaults(func=run)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def render(result: PlanResult) -> str:
    lines = [f"{'POD':40} {'CLUSTER':14} {'NODE':28} {'COST/H':>9}"]
    for p in result.placements:
        lines.append(f"{p.pod:40} {p.cluster:14} {p.node:28} {p.cost_per_hour:>9.4f}")
    if not result.placements:
        lines.append("(nothing placed)")
    if result.unplaced:
        lines += ["", f"{'UNPLACED POD':40} REASON"]
        lines += [f"{u.pod:40} {u.reason}" for u in result.unplaced]
    lines += [
        "",
        f"{'CLUSTER':14} {'CPU BEFORE':>10} {'CPU AFTER':>10} {'MEM BEFORE':>10} {'MEM AFTER':>10} {'GPU':>10}",
    ]
    for u in result.utilisation:
        gpu = "-"
        if "nvidia.com/gpu" in u.before:
            gpu = f"{_pct(u.before.get('nvidia.com/gpu'))}->{_pct(u.after.get('nvidia.com/gpu'))}"
        lines.append(
            f"{u.cluster:14} {_pct(u.before.get('cpu')):>10} {_pct(u.after.get('cpu')):>10} "
            f"{_pct(u.before.get('memory')):>10} {_pct(u.after.get('memory')):>10} {gpu:>10}"
        )
    if result.budgets:
        lines += ["", f"{'NAMESPACE':30} {'CAP LEFT/H':>11} {'PLANNED/H':>10}"]
        for b in result.budgets:
            lines.append(f"{b['namespace']:30} {b['left_per_hour']:>11.4f} {b['planned_per_hour']:>10.4f}")
    if result.advice:
        lines += ["", "SCALE-UP ADVICE (fewest nodes of existing shapes for the pods that fit nowhere)"]
        lines.append(f"{'CLUSTER':14} {'NODE SHAPE':28} {'NODES TO ADD':>12} {'PODS PLACED':>11} {'COST/H':>9}")
        for a in result.advice:
            lines.append(f"{a.cluster:14} {a.shape:28} {a.nodes:>12} {a.pods:>11} {a.cost_per_hour:>9.4f}")
    lines += [
        "",
        f"placed {len(result.placements)}, unplaced {len(result.unplaced)}, cost {result.cost_per_hour:.4f}/h, "
        f"solver {result.solver}, {result.solve_ms:.1f} ms" + (f" ({result.status})" if result.status else ""),
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        plan_input = load_snapshot(args.snapshot)
    except SnapshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.time_limit > 0:
        print("error: --time-limit must be positive", file=sys.stderr)
        return 2
    result = plan(plan_input, Solver(args.solver), time_limit=args.time_limit)
    if args.output == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(render(result))
    return 0
