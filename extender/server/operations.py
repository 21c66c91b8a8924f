"""The operator's view of the running server: explain, the status page and spend, in one place.

Reads the live objects the composition root built (peer directory, delegations, planner, decisions,
history); never on the scheduling path. Routes on the metrics port:
``/explain/{namespace}/{name}`` (JSON), ``/`` and ``/status`` (HTML), ``/status.json``,
``/capacity.json`` (every peer node as the capacity cache has it).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from extender.budgets import MAX_SPEND, Budgets
from extender.capacity.model import PeerState
from extender.delegation.view import DelegationView
from extender.kube.api import Api
from extender.kube.raw import ApiError
from extender.peers.directory import PeerDirectory
from extender.planner.live import LivePlanner
from extender.planner.pricing import money
from extender.repatriation.controller import Repatriation
from extender.scheduling.state import SchedulingState
from extender.server import status_page
from extender.server.decisions import Decisions
from extender.server.explain import NotFound, add_delegate, explain, read_pod
from extender.server.history import SpilledHistory
from extender.server.kubelet_api import Delegated, DelegateLookup
from extender.spend import Spend, SpilledPod

_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


class Operations:
    def __init__(
        self,
        home: Api,
        state: SchedulingState,
        directory: PeerDirectory,
        delegations: DelegationView,
        planner: LivePlanner,
        decisions: Decisions,
        reservations: Any,
        ready: Any,
        budgets_ledger: Budgets,
        repatriation: Repatriation,
    ) -> None:
        self.home = home
        self.state = state
        self.directory = directory
        self.delegations = delegations
        self.planner = planner
        self.decisions = decisions
        self.reservations = reservations
        self.ready = ready
        """() -> (ready, why): the server's readiness, shown on the page."""
        self.ledger = budgets_ledger
        self.repatriation_controller = repatriation
        self.history = SpilledHistory(self.spilled_count)
        self._lookup = DelegateLookup(delegations)

    def peers(self) -> list[PeerState]:
        return self.directory.states()

    def spilled_pods(self) -> list[SpilledPod]:
        return [
            SpilledPod(p.namespace, p.peer, p.requests, p.phase, p.deleting) for p in self.delegations.proxies.values()
        ]

    def spilled_count(self) -> int:
        return sum(
            1 for p in self.delegations.proxies.values() if not p.deleting and p.phase not in ("Succeeded", "Failed")
        )

    def spend(self) -> Spend:
        """The spend the caps are checked against (from home's pod watch)."""
        return self.ledger.spend()

    def budgets(self) -> list[dict[str, Any]]:
        return self.ledger.budgets()

    def budget(self, namespace: str) -> str:
        """The namespace's cap in one line, for explain."""
        cap = self.ledger.caps.cap(namespace)
        if cap is None:
            return f"no cap (the namespace annotation {MAX_SPEND} sets one)"
        if isinstance(cap, str):
            return cap
        held = self.ledger.held(namespace)
        left = cap - self.ledger.spent(namespace) - held
        in_flight = f", {money(held)}/h of it being placed" if held > 0 else ""
        return f"cap {money(cap)}/h ({MAX_SPEND}), {money(max(left, 0.0))}/h left{in_flight}"

    def repatriation(self) -> list[dict[str, Any]]:
        """The spilled pods and what repatriation makes of them (the leader's last pass)."""
        return self.repatriation_controller.rows()

    def coming_home(self, namespace: str, name: str) -> dict[str, Any] | None:
        pod = f"{namespace}/{name}"
        return next((row for row in self.repatriation() if row["pod"] == pod), None)

    def gang(self, namespace: str, gang: str) -> dict[str, Any]:
        planner = self.planner
        key = (namespace, gang)
        held = planner.current.gang_peer(namespace, gang) if planner.current is not None else None
        return {
            "name": gang,
            "membersWaiting": planner.gang_members_waiting(namespace, gang),
            "peerHoldingRoom": held,
            "boundTo": planner.committed_gangs.get(key),
        }

    def spilled(self, namespace: str, name: str) -> tuple[str, str, str, Api] | None:
        found = self._lookup.delegated(namespace, name)
        if not isinstance(found, Delegated):
            return None
        return found.peer, found.namespace, found.name, found.client

    # ---- HTTP ---------------------------------------------------------------------------------
    async def explain_handler(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        for what, value in (("namespace", namespace), ("name", name)):
            if len(value) > 253 or not _NAME.fullmatch(value):
                return _error(400, f"{what} {value!r} is not a Kubernetes object name")
        try:
            raw, pod = await read_pod(self.home, namespace, name)
        except NotFound as exc:
            return _error(404, f"{exc} (check the namespace: -n NAMESPACE)")
        except (ApiError, OSError, TimeoutError) as exc:
            return _error(503, f"cannot read pod {namespace}/{name} from the home apiserver: {exc}; try again")
        out = explain(self, raw, pod)
        await add_delegate(self, out, namespace, name)
        return web.Response(body=msgspec.json.encode(out), content_type="application/json")

    async def status_handler(self, request: web.Request) -> web.Response:
        data = status_page.snapshot(self)
        if request.path.endswith(".json"):
            return web.Response(body=msgspec.json.encode(data), content_type="application/json")
        return web.Response(text=status_page.render(data), content_type="text/html")

    async def capacity_handler(self, request: web.Request) -> web.Response:
        data = status_page.capacity(self.peers(), request.query.get("peer"))
        return web.Response(body=msgspec.json.encode(data), content_type="application/json")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/explain/{namespace}/{name}", self.explain_handler)
        app.router.add_get("/", self.status_handler)
        app.router.add_get("/status", self.status_handler)
        app.router.add_get("/status.json", self.status_handler)
        app.router.add_get("/capacity.json", self.capacity_handler)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
