"""Prometheus metrics of the extender and the webhook, on a registry of our own.

A registry object passed around (instead of the process-global one) lets every test and
benchmark build a fresh app without "Duplicated timeseries" errors, and keeps Python's default
process collectors from mixing with ours unless the caller registers them.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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

    def observe_webhook(self, result: str, seconds: float) -> None:
        self.webhook_requests.labels(result).inc()
        self.webhook_latency.observe(seconds)

    async def handler(self, request: web.Request) -> web.Response:
        """GET /metrics in the Prometheus text format."""
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
