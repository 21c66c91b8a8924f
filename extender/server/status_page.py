"""The status page on the metrics port: server-rendered HTML (no script), and the same data as JSON.

What a person wants at a glance: is Spillover ready; per peer, how full it is (a bar per resource:
used, held for pods being placed, free), its health, price, tier and spilled pods; how many pods
were spilled over the last hour; what the spilled pods cost per hour per namespace; the last
decisions with their reasons; and which nodes to add where. The page fits a laptop screen
(tests/e2e/test_operations.py renders it in headless Chromium and checks that).
"""

from __future__ import annotations

import datetime
import html
import time
from typing import Any, Protocol

from extender.capacity.model import PeerState
from extender.kube.times import rfc3339
from extender.resources import CPU, MEMORY, PODS, Resources
from extender.server.decisions import Decisions
from extender.server.history import SpilledHistory
from extender.spend import Spend, SpilledPod

GIB = 2**30
DECISIONS_SHOWN = 15


class StatusSource(Protocol):
    decisions: Decisions
    history: SpilledHistory
    reservations: Any
    planner: Any

    def ready(self) -> tuple[bool, str]: ...

    def peers(self) -> list[PeerState]: ...

    def spilled_pods(self) -> list[SpilledPod]: ...

    def spend(self) -> Spend: ...

    def budgets(self) -> list[dict[str, Any]]: ...

    def repatriation(self) -> list[dict[str, Any]]: ...


def _resources(peer: PeerState) -> list[dict[str, Any]]:
    """Allocatable, used (requested), reserved and free per resource over schedulable nodes."""
    alloc: Resources = {}
    used: Resources = {}
    held: Resources = {}
    for node in peer.nodes.values():
        if not node.schedulable:
            continue
        for totals, part in ((alloc, node.allocatable), (used, node.requested), (held, node.reserved)):
            for name in (CPU, MEMORY, PODS):
                totals[name] = totals.get(name, 0) + part.get(name, 0)
    rows = []
    for name, unit, scale in ((CPU, "cores", 1000), (MEMORY, "GiB", GIB), (PODS, "pods", 1)):
        total = alloc.get(name, 0) / scale
        in_use = min(used.get(name, 0) / scale, total)
        reserved = min(held.get(name, 0) / scale, total - in_use)
        rows.append(
            {
                "resource": name,
                "unit": unit,
                "allocatable": round(total, 3),
                "used": round(in_use, 3),
                "reserved": round(reserved, 3),
                "free": round(max(total - in_use - reserved, 0.0), 3),
            }
        )
    return rows


def snapshot(source: StatusSource) -> dict[str, Any]:
    spend = source.spend()
    per_peer_spend = spend.by_peer()
    spilled: dict[str, int] = {}
    for pod in source.spilled_pods():
        if not pod.deleting and pod.phase not in ("Succeeded", "Failed"):
            spilled[pod.peer] = spilled.get(pod.peer, 0) + 1
    peers = []
    for state in sorted(source.peers(), key=lambda p: (p.tier, p.name)):
        peers.append(
            {
                "name": state.name,
                "virtualNode": state.virtual_node,
                "healthy": state.healthy,
                "reason": state.health_reason(),
                "cost": state.cost,
                "costPerGiB": state.cost_per_gib,
                "costPerGPU": state.cost_per_gpu,
                "tier": state.tier,
                "nodes": len(state.nodes),
                "schedulableNodes": sum(1 for n in state.nodes.values() if n.schedulable),
                "resources": _resources(state),
                "spilledPods": spilled.get(state.name, 0),
                "spendPerHour": round(per_peer_spend.get(state.name, 0.0), 4),
            }
        )
    ready, why = source.ready()
    plan = source.planner.summary() if source.planner is not None else {"advice": []}
    return {
        "ready": ready,
        "readyReason": why,
        "generatedAt": rfc3339(),
        "reservations": len(source.reservations),
        "peers": peers,
        # The samples, then the count as of now (so the line always reaches "now").
        "history": [[round(at), count] for at, count in source.history.points]
        + [[round(time.time()), sum(spilled.values())]],
        "spend": [
            {"namespace": ns, "peer": peer, "pods": spend.pods.get((ns, peer), 0), "perHour": round(amount, 4)}
            for (ns, peer), amount in sorted(spend.by_namespace_peer.items())
        ],
        "spendTotal": round(spend.total, 4),
        "budgets": source.budgets(),
        "repatriation": source.repatriation(),
        "decisions": [
            {
                "at": datetime.datetime.fromtimestamp(d.at, datetime.UTC).strftime("%H:%M:%S"),
                "pod": f"{d.namespace}/{d.name}",
                "outcome": d.outcome,
                "reason": d.reason(),
            }
            for d in source.decisions.latest(DECISIONS_SHOWN)
        ],
        "pending": plan.get("pending", 0),
        "advice": plan.get("advice", []),
    }


# ---- HTML ---------------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#f4f6f9}
main{max-width:1200px;margin:0 auto;padding:16px 20px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px}
.muted{color:#5b6576}.ok{color:#137333}.bad{color:#b3261e}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:12px}
.card{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:12px 14px}
.card h3{margin:0;font-size:15px;display:flex;justify-content:space-between;gap:8px}
.badge{font-size:12px;font-weight:600;padding:1px 8px;border-radius:10px}
.badge.ok{background:#e6f4ea}.badge.bad{background:#fce8e6}
.facts{font-size:12.5px;margin:4px 0 8px}
.res{display:grid;grid-template-columns:60px minmax(0,1fr) 250px;gap:8px;align-items:center;margin:5px 0;
font-size:12.5px}
.bar{display:flex;height:14px;border-radius:3px;overflow:hidden;background:#eef1f5;border:1px solid #d5dbe4}
.bar span{display:block;height:100%}
.used{background:#3b6fd8}.reserved{background:#f0a020}.free{background:#cfe8d4}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde2ea;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #edf0f4;vertical-align:top}
th{background:#f7f8fa;font-weight:600}td.num,th.num{text-align:right;white-space:nowrap}
td.reason{overflow-wrap:anywhere}td:not(.reason){white-space:nowrap}
.two{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:16px}
@media (max-width:900px){.two{grid-template-columns:minmax(0,1fr)}}
svg{display:block;width:100%;height:auto;background:#fff;border:1px solid #dde2ea;border-radius:8px}
footer{margin:20px 0 8px;font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


def _bar(row: dict[str, Any]) -> str:
    total = row["allocatable"] or 1.0
    parts = []
    for part in ("used", "reserved", "free"):
        share = 100.0 * row[part] / total if row["allocatable"] else 0.0
        parts.append(
            f'<span class="{part}" data-part="{part}" data-value="{row[part]}" '
            f'style="width:{share:.3f}%" title="{part}: {_num(row[part])} {row["unit"]}"></span>'
        )
    label = f"{_num(row['used'])} used, {_num(row['reserved'])} held, {_num(row['free'])} free"
    return (
        f'<div class="res" data-resource="{row["resource"]}" data-allocatable="{row["allocatable"]}">'
        f'<span>{_e(row["resource"])}</span><div class="bar">{"".join(parts)}</div>'
        f'<span class="muted">{label} of {_num(row["allocatable"])} {row["unit"]}</span></div>'
    )


def _peer_card(peer: dict[str, Any]) -> str:
    state = '<span class="badge ok">healthy</span>' if peer["healthy"] else '<span class="badge bad">not placing</span>'
    prices = f"{_num(peer['cost'])}/CPU·h"
    if peer["costPerGiB"]:
        prices += f" + {_num(peer['costPerGiB'])}/GiB·h"
    if peer["costPerGPU"]:
        prices += f" + {_num(peer['costPerGPU'])}/GPU·h"
    why = f'<div class="bad facts">{_e(peer["reason"])}</div>' if peer["reason"] else ""
    return (
        f'<div class="card peer" data-peer="{_e(peer["name"])}"><h3><span>{_e(peer["name"])}</span>{state}</h3>'
        f'<div class="facts muted">tier {peer["tier"]} · {prices} · {peer["schedulableNodes"]}/{peer["nodes"]} nodes '
        f"schedulable · <b>{peer['spilledPods']}</b> spilled pods · {_num(peer['spendPerHour'])}/h</div>{why}"
        + "".join(_bar(row) for row in peer["resources"])
        + "</div>"
    )


def _chart(points: list[list[int]], width: int = 560, height: int = 140) -> str:
    """Spilled pods over the last hour: an SVG line with its axis labels."""
    pad_left, pad_bottom, pad_top = 34, 20, 10
    now = time.time()
    start = now - 3600
    peak = max([count for _, count in points] + [1])
    inner_w, inner_h = width - pad_left - 8, height - pad_bottom - pad_top

    def x(at: float) -> float:
        return pad_left + inner_w * min(max((at - start) / 3600, 0.0), 1.0)

    def y(count: float) -> float:
        return pad_top + inner_h * (1 - count / peak)

    line = " ".join(f"{x(at):.1f},{y(count):.1f}" for at, count in points if at >= start)
    last = points[-1][1] if points else 0
    grid = "".join(
        f'<line x1="{pad_left}" x2="{width - 8}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#edf0f4"/>'
        f'<text x="{pad_left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11" fill="#5b6576">{v}</text>'
        for v in sorted({0, peak // 2, peak})
    )
    ticks = "".join(
        f'<text x="{x(start + 600 * i):.1f}" y="{height - 5}" text-anchor="{"end" if i == 6 else "middle"}" '
        f'font-size="11" fill="#5b6576">{"now" if i == 6 else f"-{60 - 10 * i}m"}</text>'
        for i in range(7)
    )
    dots = "".join(
        f'<circle cx="{x(at):.1f}" cy="{y(count):.1f}" r="2.5" fill="#3b6fd8"/>' for at, count in points if at >= start
    )
    body = (
        f'<polyline fill="none" stroke="#3b6fd8" stroke-width="2" points="{line}"/>{dots}'
        if line
        else f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#5b6576">no samples yet</text>'
    )
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="spilled pods over the last hour, now {last}">'
        f"{grid}{ticks}{body}</svg>"
    )


def _table(head: list[str], rows: list[list[str]], numeric: set[int], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    th = "".join(f'<th class="{"num" if i in numeric else ""}">{_e(h)}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i in numeric else "reason" if i == len(row) - 1 else ""}">{cell}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def render(data: dict[str, Any]) -> str:
    ready = (
        f'<b class="ok">ready</b> <span class="muted">({_e(data["readyReason"])})</span>'
        if data["ready"]
        else f'<b class="bad">not ready</b>: {_e(data["readyReason"])}'
    )
    peers = "".join(_peer_card(p) for p in data["peers"]) or (
        '<p class="muted">No peers: add one with <code>spillover join NAME --peer-kubeconfig FILE</code>.</p>'
    )
    spend_rows = [[_e(r["namespace"]), _e(r["peer"]), str(r["pods"]), _num(r["perHour"])] for r in data["spend"]]
    if spend_rows:
        spend_rows.append(["<b>total</b>", "", "", f"<b>{_num(data['spendTotal'])}</b>"])
    budgets = [
        [
            _e(b["namespace"]),
            _num(b["cap"]) if b.get("cap") is not None else '<b class="bad">invalid</b>',
            _num(b["spendPerHour"]),
            _num(b["leftPerHour"]) if "leftPerHour" in b else _e(b.get("error", "")),
        ]
        for b in data["budgets"]
    ]
    home = [
        [_e(r["pod"]), _e(r["peer"]), _num(r["perHour"]), _e(r["state"]), _e(r["reason"])]
        for r in data["repatriation"]
    ]
    decisions = [[_e(d["at"]), _e(d["pod"]), _e(d["outcome"]), _e(d["reason"])] for d in data["decisions"]]
    advice = [
        [_e(a["cluster"]), _e(a["shape"]), str(a["nodes"]), str(a["pods"]), _num(a["costPerHour"])]
        for a in data["advice"]
    ]
    now = data["history"][-1][1] if data["history"] else 0
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Spillover</title>
<style>{_CSS}</style></head><body><main>
<h1>Spillover</h1>
<div>{ready} · {data["reservations"]} placements in flight · {data["pending"]} pods waiting to spill ·
<span class="muted">as of {_e(data["generatedAt"])}</span></div>
<h2>Peers <span class="legend muted"><span class="used"></span>used<span class="reserved"></span>held for pods being
placed<span class="free"></span>free</span></h2>
<div class="grid">{peers}</div>
<div class="two">
<section><h2>Spilled pods, last hour <span class="muted">(now {now})</span></h2>{_chart(data["history"])}</section>
<section><h2>Spend per hour <span class="muted">(at each peer's prices)</span></h2>
{_table(["namespace", "peer", "pods", "per hour"], spend_rows, {2, 3}, "Nothing spilled: no spend.")}
<h2>Spend caps <span class="muted">(namespace annotation spillover.io/max-spend-per-hour)</span></h2>
{_table(["namespace", "cap/h", "spend/h", "left/h"], budgets, {1, 2}, "No namespace has a spend cap.")}</section>
</div>
<h2>Coming home <span class="muted">(pods running in peers, dearest first: what repatriation makes of them)</span></h2>
{_table(["pod", "peer", "per hour", "state", "why"], home, {2}, "No pod runs in a peer.")}
<h2>Last decisions</h2>
{_table(["time (UTC)", "pod", "outcome", "reason"], decisions, set(), "No pod has reached Spillover yet.")}
<h2>Scale-up advice</h2>
{
        _table(
            ["cluster", "node shape", "add", "pods", "per hour"],
            advice,
            {2, 3, 4},
            "None: every pod waiting to spill has a place.",
        )
    }
<footer class="muted"><a href="/metrics">metrics</a> · <a href="/status.json">status.json</a> ·
<a href="/plan.json">plan.json</a> · explain a pod: <code>spillover explain POD -n NAMESPACE</code></footer>
</main></body></html>"""


def capacity(peers: list[PeerState], peer: str | None = None) -> dict[str, Any]:
    """Every peer node as the capacity cache has it (``/capacity.json[?peer=NAME]``): what it offers,
    what its pods request (Spillover's delegates among them), what binds hold, what is free; and
    the ghosts (nodes gone that pods or reservations still name). For checking the cache against a
    peer (``kubectl describe node`` there shows the same requests)."""
    out: dict[str, Any] = {}
    for state in peers:
        if peer is not None and state.name != peer:
            continue
        out[state.name] = {
            "synced": state.synced,
            "capacityGeneration": state.generation,
            "nodes": {
                node.name: {
                    "allocatable": node.allocatable,
                    "requested": node.requested,
                    "delegated": node.delegated,
                    "reserved": node.reserved,
                    "free": node.free(),
                    "unschedulable": node.unschedulable,
                    "taints": [f"{t.key}={t.value}:{t.effect}" for t in node.taints],
                }
                for node in state.nodes.values()
            },
            "ghosts": {
                node.name: {"requested": node.requested, "reserved": node.reserved} for node in state.ghosts.values()
            },
        }
    return {"peers": out, "units": {"cpu": "millicores", "memory": "bytes", "other": "counts"}}
