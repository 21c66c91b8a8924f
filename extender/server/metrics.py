"""Prometheus metrics of the extender and the webhook, on a registry of our own.

A registry object passed around (instead of the process-global one) lets every test and
benchmark build a fresh app without "Duplicated timeseries" errors, and keeps Python's default
process collectors from mixing with ours unless the caller registers them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from extender.capacity.model import PeerState
from extender.spend import Spend

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.extender_requests = Counter(
            "spillover_extender_requests", "Extender calls by verb and HTTP status code.", ["verb", "code"], registry=r
        )
        self.extender_latency = Histogram(
            "spillover_extender_request_duration_seconds",
            "Server-side time to answer an extender call, by verb.",
            ["verb"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.extender_connections = Counter(
            "spillover_extender_connections",
            "Connections the extender accepted, by protocol: h2 and http/1.1 over TLS, http/1.1 plain, "
            "or refused (a verified client certificate not naming an allowed client).",
            ["protocol"],
            registry=r,
        )
        self.filter_decisions = Counter(
            "spillover_filter_decisions",
            "Filter calls by outcome: home (only real nodes passed), peer (only virtual nodes), none.",
            ["outcome"],
            registry=r,
        )
        self.webhook_requests = Counter(
            "spillover_webhook_requests",
            "Admission reviews by result: patched, allowed (no change), denied, bad_request.",
            ["result"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "spillover_webhook_request_duration_seconds",
            "Server-side time to answer an admission review.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.scaleup_nodes = Gauge(
            "spillover_scaleup_advice_nodes",
            "Nodes of an existing shape to add to a cluster so that pods that fit nowhere could run",
            ["cluster", "shape"],
            registry=self.registry,
        )
        self.delegates_lost = Counter(
            "spillover_delegates_lost",
            "Spilled pods failed by Spillover, by peer and reason (DelegateDeleted, DelegateFailed, "
            "RemotePending, DelegateMissing, PeerDetached) or recreated elsewhere (PeerLost).",
            ["peer", "reason"],
            registry=r,
        )
        self.orphans_removed = Counter(
            "spillover_orphans_removed",
            "Delegates the sweep deleted in a peer because their home pod was gone or bound elsewhere "
            "(a missed event or an interrupted bind; normal deletions never count here).",
            ["peer"],
            registry=r,
        )
        self.copies_removed = Counter(
            "spillover_copies_removed",
            "Copied ConfigMaps and Secrets deleted in a peer once no delegate used them (normal cleanup).",
            ["peer"],
            registry=r,
        )
        self.repatriated = Counter(
            "spillover_repatriated_pods",
            "Spilled pods brought home (a new pod of theirs bound at home after their eviction), by the peer "
            "they left.",
            ["peer"],
            registry=r,
        )
        self.repatriation_saved = Counter(
            "spillover_repatriation_saved_per_hour",
            "Price per hour of the pods brought home, summed, by the peer they left (what each hour of theirs "
            "at home saves, at the PeerCluster's prices).",
            ["peer"],
            registry=r,
        )
        self.repatriation_blocked = Counter(
            "spillover_repatriation_blocked",
            "RepatriationBlocked Events recorded, by reason (PDB, NoRoom, Gang, Hint, PingPong).",
            ["reason"],
            registry=r,
        )
        self.ping_pong = Counter(
            "spillover_repatriation_ping_pong",
            "Pods that spilled again soon after their workload's pod came home (its repatriation is held back), "
            "by the peer they spilled to.",
            ["peer"],
            registry=r,
        )
        self._children: dict[tuple[str, ...], tuple[Counter, Histogram]] = {}
        self._decisions: dict[str, Counter] = {}

    def publish_advice(self, rows: list[tuple[str, str, int]]) -> None:
        """Scale-up advice of the last plan: nodes of a shape to add to a cluster."""
        self.scaleup_nodes.clear()
        for cluster, shape, nodes in rows:
            self.scaleup_nodes.labels(cluster, shape).set(nodes)

    def observe_extender(self, verb: str, code: int, seconds: float) -> None:
        key = (verb, str(code))
        children = self._children.get(key)
        if children is None:  # labels() costs a lock and a dict build; do it once per pair
            children = (self.extender_requests.labels(verb, str(code)), self.extender_latency.labels(verb))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_filter_decision(self, outcome: str) -> None:
        child = self._decisions.get(outcome)
        if child is None:  # as in observe_extender: labels() once per outcome, not per call
            child = self._decisions[outcome] = self.filter_decisions.labels(outcome)
        child.inc()

    def count_lost(self, peer: str, reason: str) -> None:
        self.delegates_lost.labels(peer, reason).inc()

    def count_orphans(self, peer: str, removed: int) -> None:
        self.orphans_removed.labels(peer).inc(removed)

    def count_unused_copies(self, peer: str, removed: int) -> None:
        self.copies_removed.labels(peer).inc(removed)

    def count_repatriated(self, peer: str, saved_per_hour: float) -> None:
        self.repatriated.labels(peer).inc()
        self.repatriation_saved.labels(peer).inc(saved_per_hour)

    def count_repatriation_blocked(self, reason: str) -> None:
        self.repatriation_blocked.labels(reason).inc()

    def count_ping_pong(self, peer: str) -> None:
        self.ping_pong.labels(peer).inc()

    def watch(
        self, peers: Callable[[], Iterable[PeerState]], delegates: Callable[[], Iterable[tuple[str, str]]]
    ) -> None:
        """Gauges of peer health, free capacity and delegates, read from the caches at scrape time."""
        self.registry.register(_StateCollector(peers, delegates))

    def watch_spend(self, spend: Callable[[], Spend], budgets: Callable[[], list[dict[str, Any]]]) -> None:
        """``spillover_spend_per_hour{namespace,peer}`` and the caps, computed at scrape time."""
        self.registry.register(_SpendCollector(spend, budgets))

    def watch_repatriation(self, rows: Callable[[], list[dict[str, Any]]]) -> None:
        """``spillover_repatriation_pods{peer,state}``: the spilled pods by what keeps them there."""
        self.registry.register(_RepatriationCollector(rows))

    def observe_webhook(self, result: str, seconds: float) -> None:
        self.webhook_requests.labels(result).inc()
        self.webhook_latency.observe(seconds)

    async def handler(self, request: web.Request) -> web.Response:
        """GET /metrics in the Prometheus text format."""
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _StateCollector(Collector):
    """Read at scrape time from the watch-fed caches: nothing is kept up to date on the hot path."""

    def __init__(
        self, peers: Callable[[], Iterable[PeerState]], delegates: Callable[[], Iterable[tuple[str, str]]]
    ) -> None:
        self.peers = peers
        self.delegates = delegates

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily(
            "spillover_peer_ready",
            "1 while Spillover places pods on the peer (reachable, synced, not paused or being detached).",
            labels=["peer"],
        )
        free = GaugeMetricFamily(
            "spillover_peer_free",
            "Free capacity summed over the peer's schedulable nodes (cpu in cores, memory in bytes, pods); "
            "placement itself goes by single nodes.",
            labels=["peer", "resource"],
        )
        for peer in self.peers():
            ready.add_metric([peer.name], 1.0 if peer.healthy else 0.0)
            total = peer.free_total()
            free.add_metric([peer.name, "cpu"], total.get("cpu", 0) / 1000)
            free.add_metric([peer.name, "memory"], float(total.get("memory", 0)))
            free.add_metric([peer.name, "pods"], float(total.get("pods", 0)))
        counts: dict[tuple[str, str], int] = {}
        for key in self.delegates():
            counts[key] = counts.get(key, 0) + 1
        delegates = GaugeMetricFamily(
            "spillover_delegates", "This home's delegate pods in each peer, by phase.", labels=["peer", "phase"]
        )
        for (peer_name, phase), count in sorted(counts.items()):
            delegates.add_metric([peer_name, phase], float(count))
        yield ready
        yield free
        yield delegates


class _SpendCollector(Collector):
    def __init__(self, spend: Callable[[], Spend], budgets: Callable[[], list[dict[str, Any]]]) -> None:
        self.spend = spend
        self.budgets = budgets

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "spillover_spend_per_hour",
            "Price per hour of the pods spilled to each peer now, by namespace, at the PeerCluster's prices "
            "(cores x cost + GiB x costPerGiB + GPUs x costPerGPU).",
            labels=["namespace", "peer"],
        )
        pods = GaugeMetricFamily(
            "spillover_spilled_pods",
            "Pods of each namespace running (or to run) in each peer.",
            labels=["namespace", "peer"],
        )
        caps = GaugeMetricFamily(
            "spillover_spend_cap_per_hour",
            "A namespace's spend cap in peers (annotation spillover.io/max-spend-per-hour; NaN when it does not "
            "parse, and then its pods stay home).",
            labels=["namespace"],
        )
        spend = self.spend()
        for (namespace, peer), amount in sorted(spend.by_namespace_peer.items()):
            gauge.add_metric([namespace, peer], amount)
            pods.add_metric([namespace, peer], float(spend.pods.get((namespace, peer), 0)))
        for row in self.budgets():
            cap = row.get("cap")
            caps.add_metric([str(row["namespace"])], float(cap) if isinstance(cap, int | float) else math.nan)
        yield gauge
        yield pods
        yield caps


class _RepatriationCollector(Collector):
    def __init__(self, rows: Callable[[], list[dict[str, Any]]]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "spillover_repatriation_pods",
            "Pods running in peers, by peer and what repatriation makes of them now (waiting, no room, stays, "
            "held back, blocked, coming home...), as of the leader's last pass.",
            labels=["peer", "state"],
        )
        counts: dict[tuple[str, str], int] = {}
        for row in self.rows():
            key = (str(row["peer"]), str(row["state"]))
            counts[key] = counts.get(key, 0) + 1
        for (peer, state), count in sorted(counts.items()):
            gauge.add_metric([peer, state], float(count))
        yield gauge
