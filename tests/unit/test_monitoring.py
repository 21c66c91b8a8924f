"""manifests/monitoring: every dashboard query names metrics that /metrics really exposes, and the
ServiceMonitor finds the Service's metrics port."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest

from extender.scheduling.memory import peer
from extender.server.metrics import Metrics
from extender.spend import Spend

MONITORING = Path(__file__).resolve().parents[2] / "manifests" / "monitoring"
BASE = Path(__file__).resolve().parents[2] / "manifests" / "base"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def exposed_names() -> set[str]:
    """Every series name the real Metrics object exposes, as Prometheus would store them."""
    metrics = Metrics()
    metrics.watch(lambda: [peer("east")], lambda: [("east", "Running")])
    metrics.watch_spend(
        lambda: Spend({("shop", "east"): 0.5}, {("shop", "east"): 1}), lambda: [{"namespace": "shop", "cap": 2.0}]
    )
    metrics.watch_repatriation(lambda: [{"peer": "east", "state": "waiting"}])
    names: set[str] = set()
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            base = name.removesuffix("_total") if kind == "counter" else name
            names.update(base + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


def queries() -> list[str]:
    dashboard = json.loads((MONITORING / "spillover-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_dashboard_query_names_only_metrics_that_metrics_exposes() -> None:
    exposed = exposed_names()
    assert queries(), "the dashboard has queries"
    for expr in queries():
        used = set(re.findall(r"\bspillover_[a-z_]+\b", expr))
        assert used, f"query names no Spillover metric: {expr}"
        assert used <= exposed, f"{expr}: {sorted(used - exposed)} not exposed by /metrics"


def test_the_dashboard_covers_what_operators_ask_for() -> None:
    titles = " ".join(p["title"] for p in json.loads((MONITORING / "spillover-dashboard.json").read_text())["panels"])
    for topic in ("Spill decisions", "Extender latency", "free CPU", "Delegates by phase", "Spend", "Repatriation"):
        assert topic in titles, topic


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_servicemonitor_selects_the_services_metrics_port() -> None:
    monitor = _docs(MONITORING / "servicemonitor.yaml")[0]
    service = next(d for d in _docs(BASE / "service.yaml") if d["kind"] == "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= (service["metadata"].get("labels") or {}).items()
    assert service["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert kustomization["configMapGenerator"][0]["files"] == ["spillover-dashboard.json"]
