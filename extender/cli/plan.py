"""`spillover plan`: the running server's last plan and its scale-up advice, as a table."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any


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
    url = args.server.rstrip("/") + "/plan.json"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            data = json.load(resp)
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        print(f"error: cannot read {url}: {exc} (is `spillover serve` running? pass --server)", file=sys.stderr)
        return 1
    print(render(data))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("plan", help="show the last spill plan and scale-up advice of a running server")
    p.add_argument(
        "--server", default="http://127.0.0.1:9090", help="the server's metrics address (default %(default)s)"
    )
    p.set_defaults(func=run)
