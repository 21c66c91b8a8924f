"""`spillover status`: every peer as the home cluster sees it (from PeerCluster status)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import msgspec

from extender.cli.errors import explain
from extender.kube import client as kube_client
from extender.kube.raw import ApiError, RawClient
from extender.peers.model import PATH


def _condition(item: dict[str, Any], kind: str) -> tuple[str, str]:
    for c in (item.get("status") or {}).get("conditions") or ():
        if c.get("type") == kind:
            return c.get("status", "?"), c.get("message", "")
    return "Unknown", "no status yet (is spillover serve running?)"


async def fetch(kubeconfig: str | None) -> list[dict[str, Any]]:
    api = await kube_client.from_file(kubeconfig)
    raw = RawClient(api)
    try:
        items: list[dict[str, Any]] = msgspec.json.decode(await raw.get(PATH)).get("items", [])
        return items
    finally:
        await raw.close()
        await api.close()


def render(items: list[dict[str, Any]]) -> str:
    lines = [f"{'PEER':12} {'READY':6} {'COST':>6} {'TIER':>4} {'NODES':>5} {'FREE CPU':>10} {'FREE MEM':>10}  MESSAGE"]
    for item in sorted(items, key=lambda i: i["metadata"]["name"]):
        spec = item.get("spec") or {}
        cap = (item.get("status") or {}).get("capacity") or {}
        ready, message = _condition(item, "Ready")
        if ready == "True" and (spec.get("paused") or item["metadata"].get("deletionTimestamp")):
            # The spec changed and Spillover has not written the status yet: the spec is the truth.
            why = "being deleted" if item["metadata"].get("deletionTimestamp") else "paused (spec.paused)"
            ready, message = "False", f"{why}: no new pods go there"
        free = cap.get("free") or {}
        lines.append(
            f"{item['metadata']['name']:12} {ready:6} {spec.get('cost', 1):>6} {spec.get('tier', 0):>4} "
            f"{cap.get('schedulableNodes', '-'):>5} {free.get('cpu', '-'):>10} {free.get('memory', '-'):>10}  {message}"
        )
    if not items:
        lines.append("(no PeerClusters: add one with `spillover join NAME --peer-kubeconfig FILE`)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        items = asyncio.run(fetch(args.kubeconfig))
    except kube_client.KubeconfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(explain(exc), file=sys.stderr)
        return 1
    print(render(items))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("status", help="show every peer cluster: readiness, cost, free capacity")
    p.add_argument("--kubeconfig", default=None, help="home cluster kubeconfig (default: $KUBECONFIG)")
    p.set_defaults(func=run)
