"""A small HTML status page (and its JSON) on the metrics port: peers, capacity, placements."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
from aiohttp import web

from extender.capacity.model import PeerState
from extender.resources import format_resources


class StatusSource(Protocol):
    registry: Any
    reservations: Any
    delegator: Any

    def ready(self) -> tuple[bool, str]: ...


def snapshot(source: StatusSource) -> dict[str, Any]:
    peers = []
    for runtime in source.registry.peers.values():
        state: PeerState = runtime.state
        peers.append(
            {
                "name": state.name,
                "virtualNode": state.virtual_node,
                "healthy": state.healthy,
                "reason": state.health_reason(),
                "cost": state.cost,
                "tier": state.tier,
                "nodes": len(state.nodes),
                "schedulableNodes": sum(1 for n in state.nodes.values() if n.schedulable),
                "free": format_resources(state.free_total()),
                "spilledPods": sum(1 for p in source.delegator.proxies.values() if p.peer == state.name),
                "capacityGeneration": state.generation,
            }
        )
    ready, why = source.ready()
    return {"ready": ready, "readyReason": why, "reservations": len(source.reservations), "peers": peers}


def render(data: dict[str, Any]) -> str:
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(p[k]))}</td>"
            for k in ("name", "healthy", "reason", "cost", "tier", "schedulableNodes", "free", "spilledPods")
        )
        + "</tr>"
        for p in data["peers"]
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Spillover</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head><body>
<h1>Spillover</h1><p>Ready: <b>{data["ready"]}</b> ({html.escape(data["readyReason"])}),
capacity reservations held: {data["reservations"]}</p>
<table><tr><th>peer</th><th>healthy</th><th>reason</th><th>cost</th><th>tier</th><th>schedulable nodes</th>
<th>free</th><th>spilled pods</th></tr>{rows}</table>
<p><a href="/metrics">metrics</a> · <a href="/status.json">status.json</a></p></body></html>"""


def make_status_handler(source: StatusSource) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        data = snapshot(source)
        if request.path.endswith(".json"):
            return web.Response(body=msgspec.json.encode(data), content_type="application/json")
        return web.Response(text=render(data), content_type="text/html")

    return handler
