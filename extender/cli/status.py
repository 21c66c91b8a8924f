"""`spillover status`: every peer as the home cluster sees it (from PeerCluster status)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import msgspec

from extender.cli.errors import explain
from extender.kube import client as kube_client
from extender.kube.raw import ApiError
from extender.peers.model import PEERCLUSTERS, PeerClusterWithStatus

NO_STATUS = "no status yet (is spillover serve running?)"


class _PeerClusters(msgspec.Struct):
    items: list[PeerClusterWithStatus] = msgspec.field(default_factory=list)


async def fetch(kubeconfig: str | None) -> list[PeerClusterWithStatus]:
    home = await kube_client.connect(kubeconfig)
    try:
        return msgspec.json.decode(await home.get(PEERCLUSTERS.collection()), type=_PeerClusters).items
    finally:
        await home.close()


def render(items: list[PeerClusterWithStatus]) -> str:
    lines = [f"{'PEER':12} {'READY':6} {'COST':>6} {'TIER':>4} {'NODES':>5} {'FREE CPU':>10} {'FREE MEM':>10}  MESSAGE"]
    for item in sorted(items, key=lambda i: i.metadata.name):
        cap = item.status.capacity
        ready = item.status.condition("Ready")
        state, message = (ready.status, ready.message) if ready else ("Unknown", NO_STATUS)
        deleting = bool(item.metadata.deletion_timestamp)
        if state == "True" and (item.spec.paused or deleting):
            # The spec changed and Spillover has not written the status yet: the spec is the truth.
            why = "being deleted" if deleting else "paused (spec.paused)"
            state, message = "False", f"{why}: no new pods go there"
        free = cap.get("free") or {}
        lines.append(
            f"{item.metadata.name:12} {state:6} {item.spec.cost:>6g} {item.spec.tier:>4} "
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
