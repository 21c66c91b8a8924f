"""`spillover plan`: the running server's last plan and its scale-up advice, as a table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from extender.cli.server import ServerError, add_server_flag, read_server


def render(data: dict[str, Any]) -> str:
    lines = [f"pending spill candidates: {data.get('pending', 0)}"]
    if not data.get("solved"):
        lines.append("no plan yet (nothing has needed to spill since the server started)")
        return "\n".join(lines)
    placed = ", ".join(f"{k}: {v}" for k, v in sorted(data.get("placed", {}).items())) or "none"
    lines.append(f"last plan ({data.get('solve_ms', 0)} ms): placed {placed}; unplaced {len(data.get('unplaced', []))}")
    for item in data.get("unplaced", [])[:10]:
        lines.append(f"  unplaced {item['pod']}: {item['reason']}")
    advice = data.get("advice", [])
    lines.append("")
    if not advice:
        lines.append("scale-up advice: none (every pending pod has a place)")
        return "\n".join(lines)
    lines.append(f"{'CLUSTER':12} {'NODE SHAPE':28} {'ADD':>4} {'PODS':>5} {'COST/H':>8}")
    for row in advice:
        lines.append(
            f"{row['cluster']:12} {row['shape']:28} {row['nodes']:>4} {row['pods']:>5} {row['costPerHour']:>8.3f}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        data = read_server(args.server, "/plan.json")
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(render(data))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("plan", help="show the last spill plan and scale-up advice of a running server")
    add_server_flag(p)
    p.set_defaults(func=run)
