"""`spillover explain POD`: why a pod is where it is, or why it waits, asked of the running server."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote

from extender.cli.server import ServerError, add_server_flag, read_server


def _hints(data: dict[str, Any]) -> str:
    if data.get("hintError"):
        return f"INVALID: {data['hintError']}"
    hints = data.get("hints") or {}
    shown = [f"policy={hints.get('policy')}"]
    for key, label in (("clusters", "clusters"), ("avoidClusters", "avoid-clusters")):
        if hints.get(key):
            shown.append(f"{label}={','.join(hints[key])}")
    if hints.get("prefer"):
        shown.append("prefer=" + ",".join(f"{k}={v}" for k, v in hints["prefer"].items()))
    if hints.get("maxCost") is not None:
        shown.append(f"max-cost={hints['maxCost']:g}")
    if hints.get("gang"):
        shown.append(f"gang={hints['gang']} (size {hints.get('gangSize')})")
    if hints.get("failover") != "always":
        shown.append(f"failover={hints.get('failover')}")
    return "  ".join(shown)


def render(data: dict[str, Any]) -> str:
    lines = [
        f"{'POD':10} {data['pod']} (uid {data.get('uid', '')})",
        f"{'NOW':10} {data.get('summary', '')}",
        f"{'HINTS':10} {_hints(data)}",
    ]
    for warning in data.get("warnings") or ():
        lines.append(f"{'WARNING':10} {warning}")
    lines.append(f"{'REQUESTS':10} {data.get('requests') or '-'}")
    decision = data.get("decision")
    if decision:
        lines.append(
            f"{'DECISION':10} {decision['at']}: {decision['reason']} ({decision['nodesConsidered']} nodes from "
            "kube-scheduler, those that passed its own filters)"
        )
    else:
        lines.append(f"{'DECISION':10} none recorded (kube-scheduler has not asked Spillover about it lately)")
    spilled = data.get("spilled")
    if spilled:
        node = spilled.get("peerNode") or "(not scheduled there yet)"
        lines.append(
            f"{'DELEGATE':10} {spilled['delegate']} in peer {spilled['peer']}, node {node}, {spilled.get('status', '')}"
        )
    gang = data.get("gang")
    if gang:
        lines.append(
            f"{'GANG':10} {gang['name']}: {gang['membersWaiting']} members waiting; plan holds room on "
            f"{gang['peerHoldingRoom'] or 'no peer'}; first members bound to {gang['boundTo'] or 'none'}"
        )
    spend = data.get("spend") or {}
    lines.append(
        f"{'SPEND':10} namespace: {spend.get('namespacePerHour', 0):g}/h spilled now; {spend.get('budget', '')}"
    )
    home = data.get("repatriation")
    if home:
        lines.append(f"{'HOME':10} {home['state']}: {home['reason']}")
    lines.append("PEERS (verdict now, ranked among those that may take it: tier, plan score, price)")
    lines.append(f"  {'RANK':4} {'PEER':12} {'VERDICT':12} {'TIER':>4} {'COST':>6} {'PRICE/H':>9} {'SCORE':>5}  REASON")
    for row in sorted(data.get("peers") or (), key=lambda r: (r.get("rank") or 99, r["peer"])):
        score = "-" if row.get("planScore") is None else str(row["planScore"])
        lines.append(
            f"  {row.get('rank') or '-'!s:4} {row['peer']:12} {row['verdict']:12} {row['tier']:>4} {row['cost']:>6g} "
            f"{row['pricePerHour']:>9.4f} {score:>5}  {row['reason']}"
        )
    if not data.get("peers"):
        lines.append("  (no peers joined)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    namespace, _, name = args.pod.rpartition("/")
    namespace = namespace or args.namespace
    try:
        data = read_server(args.server, f"/explain/{quote(namespace, safe='')}/{quote(name, safe='')}")
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2) if args.output == "json" else render(data))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "explain", help="why a pod is where it is, or why it waits: hints, verdicts, ranking, delegate"
    )
    p.add_argument("pod", help="POD or NAMESPACE/POD")
    p.add_argument("-n", "--namespace", default="default", help="the pod's namespace (default: default)")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    add_server_flag(p)
    p.set_defaults(func=run)
