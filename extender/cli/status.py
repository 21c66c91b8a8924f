"""`spillover status`: every peer as the home cluster sees it (from PeerCluster status), then what
the running server knows: spend per namespace against its cap, and the pods waiting to come home."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import msgspec

from extender.cli.errors import explain
from extender.cli.server import ServerError, add_server_flag, read_server
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


def _money(value: Any) -> str:
    return f"{round(float(value), 4):g}"


def render_server(data: dict[str, Any]) -> str:
    """Spend and caps per namespace, spend per peer, and the pods running in peers with what
    repatriation makes of them (from the server's /status.json)."""
    lines = ["", f"{'NAMESPACE':20} {'SPEND/H':>9} {'CAP/H':>9} {'LEFT/H':>9}"]
    spend: dict[str, float] = {}
    for row in data.get("spend") or ():
        spend[row["namespace"]] = spend.get(row["namespace"], 0.0) + float(row["perHour"])
    caps = {row["namespace"]: row for row in data.get("budgets") or ()}
    for namespace in sorted(set(spend) | set(caps)):
        cap = caps.get(namespace)
        if cap is None:
            shown, left = "-", "-"
        elif cap.get("cap") is None:
            shown, left = "invalid", str(cap.get("error", ""))
        else:
            shown, left = _money(cap["cap"]), _money(cap["leftPerHour"])
        lines.append(f"{namespace:20} {_money(spend.get(namespace, 0.0)):>9} {shown:>9} {left:>9}")
    if not spend and not caps:
        lines.append("(nothing spilled, no caps: annotate a namespace with spillover.io/max-spend-per-hour to cap it)")
    per_peer = {peer["name"]: peer.get("spendPerHour", 0.0) for peer in data.get("peers") or ()}
    if per_peer:
        lines.append("spend per peer: " + ", ".join(f"{name} {_money(v)}/h" for name, v in sorted(per_peer.items())))
    rows = data.get("repatriation") or []
    lines += ["", f"{'COMING HOME':36} {'PEER':10} {'PER H':>7} {'STATE':16}  WHY"]
    for row in rows:
        lines.append(
            f"{row['pod']:36} {row['peer']:10} {_money(row['perHour']):>7} {row['state']:16}  {row['reason']}"
        )
    if not rows:
        lines.append("(no pod runs in a peer)")
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
    try:
        print(render_server(read_server(args.server, "/status.json")))
    except ServerError as exc:
        print(f"\nspend, caps and pods coming home: not shown ({exc})")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "status",
        help="show every peer cluster (readiness, cost, free capacity), spend against caps, pods coming home",
    )
    p.add_argument("--kubeconfig", default=None, help="home cluster kubeconfig (default: $KUBECONFIG)")
    add_server_flag(p)
    p.set_defaults(func=run)
