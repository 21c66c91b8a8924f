"""`spillover explain POD`: why a pod is where it is, or why it waits, from the running server.

Everything comes from what Spillover decides with: the pod's hints as parsed, the last filter
decision recorded for it (which nodes kube-scheduler sent, what was refused and why), each peer's
verdict now (the very ``filter`` logic, run without its side effects), the ranking by price with
the plan's scores, the gang's state, the namespace's spend, and for a spilled pod its delegate as
the peer shows it. Served at ``/explain/{namespace}/{name}`` on the metrics port (not on the
scheduling path: it may read the pod and its delegate from the apiservers).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from extender import hints as hint_names
from extender.capacity.model import PeerState
from extender.hints import HintError, Hints, parse_hints, unknown_keys
from extender.kube.api import PODS, Api
from extender.kube.raw import ApiError
from extender.kube.times import rfc3339
from extender.planner.pricing import cost_per_hour, prefer_factor
from extender.pod_requests import pod_requests
from extender.resources import SPILLABLE, QuantityError, format_resources
from extender.scheduling.filter import filter_nodes
from extender.scheduling.state import SchedulingState
from extender.server.decisions import Decision, Decisions
from extender.spend import Spend
from extender.wire.core import Pod


class _WithoutSideEffects:
    """The live scheduling state for a filter run that only looks: the pod is not added to the
    planner's backlog nor remembered for a bind."""

    def __init__(self, state: SchedulingState) -> None:
        self.state = state

    def peer_for_node(self, node_name: str) -> PeerState | None:
        return self.state.peer_for_node(node_name)

    def is_virtual_node_name(self, node_name: str) -> bool:
        return self.state.is_virtual_node_name(node_name)

    def home_node_exists(self, node_name: str) -> bool:
        return self.state.home_node_exists(node_name)

    async def confirm_home_node(self, node_name: str) -> bool:
        return self.state.home_node_exists(node_name)

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self.state.namespace_labels(namespace)

    def namespace_opted_in(self, namespace: str) -> bool | None:
        return self.state.namespace_opted_in(namespace)

    def avoided(self, pod: Pod, peer: PeerState) -> str | None:
        return self.state.avoided(pod, peer)

    def note_spill_candidate(self, pod: Pod) -> None:
        return None

    def note_refusal(self, pod: Pod, peer: PeerState, reason: str) -> None:
        return None

    def remember_pod(self, pod: Pod, body: bytes) -> None:
        return None

    def gang_peer(self, pod: Pod, gang: str) -> str | None:
        return self.state.gang_peer(pod, gang)

    def gang_reason(self, pod: Pod, gang: str) -> str | None:
        return self.state.gang_reason(pod, gang)

    def plan_score(self, pod: Pod, peer: PeerState) -> int | None:
        return self.state.plan_score(pod, peer)

    def budget_refusal(self, pod: Pod, peer: PeerState, requests: Mapping[str, int]) -> str | None:
        return self.state.budget_refusal(pod, peer, requests)

    async def bind(self, pod_namespace: str, pod_name: str, pod_uid: str, node_name: str) -> None:
        raise RuntimeError("explain never binds")


class ExplainSource(Protocol):
    """What explain reads of the running server (the composition root provides it)."""

    home: Api
    state: SchedulingState
    decisions: Decisions

    def peers(self) -> list[PeerState]: ...

    def spend(self) -> Spend: ...

    def gang(self, namespace: str, gang: str) -> dict[str, Any]: ...

    def spilled(self, namespace: str, name: str) -> tuple[str, str, str, Api] | None: ...

    def budget(self, namespace: str) -> str:
        """The namespace's spend cap and what is left of it, in one line."""

    def coming_home(self, namespace: str, name: str) -> dict[str, Any] | None:
        """What repatriation makes of the spilled pod now (its row of the leader's last pass)."""


class NotFound(LookupError):
    pass


def _hints(parsed: Hints) -> dict[str, Any]:
    return {
        "policy": parsed.policy.value,
        "clusters": sorted(parsed.clusters) if parsed.clusters is not None else None,
        "avoidClusters": sorted(parsed.avoid_clusters),
        "prefer": dict(parsed.prefer),
        "maxCost": parsed.max_cost,
        "gang": parsed.gang,
        "gangSize": parsed.gang_size,
        "failover": parsed.failover.value,
    }


def _decision(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "at": _iso(decision.at),
        "outcome": decision.outcome,
        "nodesConsidered": decision.considered,
        "passed": list(decision.passed),
        "failed": dict(decision.failed),
        "reason": decision.reason(),
    }


def _iso(at: float) -> str:
    return rfc3339(datetime.datetime.fromtimestamp(at, datetime.UTC))


def _peer_verdicts(
    state: SchedulingState, pod: Pod, peers: list[PeerState], pod_json: bytes
) -> dict[str, tuple[str, str]]:
    """peer -> (passes | no room | excluded, reason), from the filter verb itself."""
    names = [peer.virtual_node for peer in peers]
    result = filter_nodes(_WithoutSideEffects(state), pod, names, pod_json).result
    out: dict[str, tuple[str, str]] = {}
    for peer in peers:
        node = peer.virtual_node
        if node in result.NodeNames:
            out[peer.name] = ("passes", "a node of the peer fits the pod")
        elif node in result.FailedNodes:
            out[peer.name] = (
                "no room" if "ranked below" not in result.FailedNodes[node] else "ranked lower",
                result.FailedNodes[node],
            )
        else:
            out[peer.name] = ("excluded", result.FailedAndUnresolvableNodes.get(node, result.Error or "not considered"))
    return out


def explain(source: ExplainSource, raw_pod: dict[str, Any], pod: Pod) -> dict[str, Any]:
    meta = pod.metadata
    annotations = meta.annotations or {}
    out: dict[str, Any] = {
        "pod": f"{meta.namespace}/{meta.name}",
        "uid": meta.uid,
        "node": pod.spec.node_name or "",
        "phase": pod.status.phase if pod.status else "",
        "warnings": unknown_keys(annotations),
    }
    try:
        parsed: Hints | None = parse_hints(annotations)
        out["hints"] = _hints(parsed) if parsed is not None else None
    except HintError as exc:
        parsed = None
        out["hints"] = None
        out["hintError"] = str(exc)
    try:
        requests = pod_requests(pod)
        out["requests"] = format_resources({k: v for k, v in requests.items() if k not in ("pods", SPILLABLE)})
    except QuantityError as exc:
        requests = {}
        out["requests"] = f"does not parse: {exc}"
    out["decision"] = _decision(source.decisions.last_for(meta.uid))
    peers = sorted(source.peers(), key=lambda p: p.name)
    verdicts = _peer_verdicts(source.state, pod, peers, msgspec.json.encode(raw_pod)) if parsed is not None else {}
    rows = []
    for peer in peers:
        verdict, reason = verdicts.get(peer.name, ("excluded", out.get("hintError", "")))
        price = cost_per_hour(requests, peer)
        factor = prefer_factor(parsed, peer.name) if parsed is not None else 1.0
        rows.append(
            {
                "peer": peer.name,
                "verdict": verdict,
                "reason": reason,
                "healthy": peer.healthy,
                "tier": peer.tier,
                "cost": peer.cost,
                "pricePerHour": round(price, 6),
                "effectivePricePerHour": round(price * factor, 6),
                "planScore": source.state.plan_score(pod, peer),
            }
        )
    ranked = sorted(
        (r for r in rows if r["verdict"] in ("passes", "ranked lower", "no room")),
        key=lambda r: (r["tier"], -(r["planScore"] if r["planScore"] is not None else -1), r["effectivePricePerHour"]),
    )
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank
    out["peers"] = rows
    spend = source.spend()
    out["spend"] = {
        "namespacePerHour": round(spend.by_namespace().get(meta.namespace, 0.0), 6),
        "budget": source.budget(meta.namespace),
    }
    out["repatriation"] = source.coming_home(meta.namespace, meta.name)
    out["gang"] = source.gang(meta.namespace, parsed.gang) if parsed is not None and parsed.gang else None
    out["spilled"] = None
    out["summary"] = _summary(out, annotations)
    return out


async def add_delegate(source: ExplainSource, out: dict[str, Any], namespace: str, name: str) -> None:
    """For a spilled pod: its delegate as the peer shows it now (node, phase)."""
    found = source.spilled(namespace, name)
    if found is None:
        return
    peer, delegate_ns, delegate_name, client = found
    spilled: dict[str, Any] = {"peer": peer, "delegate": f"{delegate_ns}/{delegate_name}"}
    try:
        delegate = msgspec.json.decode(await client.get(PODS.item(delegate_name, delegate_ns)))
        spilled["peerNode"] = (delegate.get("spec") or {}).get("nodeName", "")
        status = delegate.get("status") or {}
        spilled["status"] = status.get("phase", "")
        if status.get("reason") or status.get("message"):
            spilled["statusReason"] = f"{status.get('reason', '')} {status.get('message', '')}".strip()
    except (ApiError, OSError, TimeoutError) as exc:
        spilled["status"] = f"cannot read it from peer {peer}: {exc}"
    out["spilled"] = spilled
    where = spilled.get("peerNode") or "(none yet)"
    status = spilled.get("status") or "status unknown"
    out["summary"] = f"spilled to peer {peer}: delegate {spilled['delegate']} on peer node {where}, {status}"


def _summary(out: dict[str, Any], annotations: Mapping[str, str]) -> str:
    if "hintError" in out:
        return f"its hints do not parse, so it never spills: {out['hintError']}"
    node = out["node"]
    if node and not node.startswith("spillover-"):
        return f"runs at home on node {node}"
    if node:
        return f"bound to {node} ({annotations.get(hint_names.REASON, 'spilled')})"
    decision = out["decision"]
    if decision is None:
        return "pending; no filter decision recorded for it yet (kube-scheduler has not asked Spillover)"
    return f"pending; last decision at {decision['at']}: {decision['reason']}"


async def read_pod(home: Api, namespace: str, name: str) -> tuple[dict[str, Any], Pod]:
    try:
        body = await home.get(PODS.item(name, namespace))
    except ApiError as exc:
        if exc.status == 404:
            raise NotFound(f"pod {namespace}/{name} not found in the home cluster") from exc
        raise
    return msgspec.json.decode(body), msgspec.json.decode(body, type=Pod)
