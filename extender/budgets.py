"""Spend caps per namespace: what a namespace may spend per hour in peers, and what it spends now.

A namespace's cap is its annotation ``spillover.io/max-spend-per-hour`` (a number, at the same
prices as the planner: cores x ``cost`` + GiB x ``costPerGiB`` + GPUs x ``costPerGPU``). A pod
that would take its namespace over the cap stays home: ``filter`` says so for each peer (with the
cap and the spend now), ``bind`` checks again and holds the pod's price until the pod shows up
bound, so a burst of binds cannot all pass on the same spend. A cap that does not parse (set
before the admission policy that refuses such values existed) keeps every pod of the namespace
home, with the reason: a cost control fails closed.

The spend is kept from home's pod watch (the pods bound to virtual nodes, neither finished nor
being deleted), per namespace, so the scheduling path reads a sum, not a scan of every pod.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from extender.capacity.model import PeerState
from extender.kube.reflector import Handler
from extender.marker import has_marker
from extender.planner.pricing import cost_per_hour, money
from extender.pod_requests import pod_requests
from extender.resources import QuantityError, Resources
from extender.spend import FINISHED, Spend, SpilledPod, spend_per_hour
from extender.wire.core import Pod

MAX_SPEND = "spillover.io/max-spend-per-hour"
"""Namespace annotation: the most its pods may cost per hour in peers, all peers together."""
CAP_FORM = r"^([0-9]+([.][0-9]+)?|[.][0-9]+)$"
"""A plain non-negative decimal, as the ValidatingAdmissionPolicy spillover-budgets accepts
(manifests/base/budget-policy.yaml); keep the two in step."""
_CAP = re.compile(CAP_FORM)
HOLD_SECONDS = 60.0
"""How long a bind's spend is held when the pod never shows up bound (the bind failed late)."""
SLACK = 1e-9
"""Sums of prices are floats: a pod that brings the spend exactly to the cap fits."""


class CapError(ValueError):
    """A cap annotation that is not a number; the message names the value."""


def parse_cap(annotations: Mapping[str, str] | None) -> float | None:
    """The namespace's cap (None: none); raises CapError naming the bad value."""
    raw = (annotations or {}).get(MAX_SPEND)
    if raw is None:
        return None
    if len(raw) > 32 or not _CAP.match(raw):
        raise CapError(
            f"annotation {MAX_SPEND}={raw!r} is invalid: expected a non-negative decimal such as '2' or '0.75' "
            "(the most the namespace's pods may cost per hour in peers, at the PeerClusters' prices)"
        )
    value = float(raw)
    if not math.isfinite(value):
        raise CapError(f"annotation {MAX_SPEND}={raw!r} is out of range")
    return value


class Caps(Protocol):
    """What the namespaces' annotations say (kept by the home namespace watch)."""

    def cap(self, namespace: str) -> float | str | None:
        """The cap, the error of a cap that does not parse, or None for no cap."""

    def capped(self) -> Mapping[str, float | str]:
        """Every namespace with a cap annotation."""


@dataclass(slots=True)
class _Spilled:
    namespace: str
    node: str
    requests: Resources


@dataclass(slots=True)
class _Hold:
    namespace: str
    price: float
    until: float


class Budgets(Handler[Pod]):
    """The spend of every namespace in peers (from home's pod watch) and the binds in flight."""

    def __init__(
        self,
        peers_by_node: Mapping[str, PeerState],
        caps: Caps,
        spilled: Callable[[Pod], bool],
        hold_seconds: float = HOLD_SECONDS,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peers_by_node = peers_by_node
        """Virtual node name -> its peer (the peer directory's, kept by the registry)."""
        self.caps = caps
        self.spilled = spilled
        self.hold_seconds = hold_seconds
        self.timer = timer
        self._pods: dict[str, _Spilled] = {}
        self._by_namespace: dict[str, dict[str, _Spilled]] = {}
        self._holds: dict[str, _Hold] = {}
        self._version = 0
        self._memo: dict[str, tuple[int, tuple[float, ...], float]] = {}

    # ---- the watch ------------------------------------------------------------------------------
    def replace(self, items: list[Pod]) -> None:
        self._pods.clear()
        self._by_namespace.clear()
        for pod in items:
            self.upsert(pod)
        self._version += 1

    def upsert(self, item: Pod) -> None:
        uid = item.metadata.uid
        phase = item.status.phase if item.status else ""
        # A pod Spillover did not prepare runs nowhere, even on a virtual node: it costs nothing.
        live = self.spilled(item) and has_marker(item) and item.metadata.deletion_timestamp is None
        live = live and phase not in FINISHED
        if not live:
            self.delete(item)
            return
        self._holds.pop(uid, None)  # bound now: counted as spend from here on
        if uid in self._pods:
            return  # requests of a bound pod do not change
        try:
            requests = pod_requests(item)
        except QuantityError:  # the apiserver validated them; an unparsable one costs nothing here
            requests = {}
        entry = _Spilled(item.metadata.namespace, item.spec.node_name, requests)
        self._pods[uid] = entry
        self._by_namespace.setdefault(entry.namespace, {})[uid] = entry
        self._version += 1

    def delete(self, item: Pod) -> None:
        entry = self._pods.pop(item.metadata.uid, None)
        if entry is None:
            return
        pods = self._by_namespace.get(entry.namespace, {})
        pods.pop(item.metadata.uid, None)
        if not pods:
            self._by_namespace.pop(entry.namespace, None)
        self._version += 1

    # ---- what the verbs ask ---------------------------------------------------------------------
    def spent(self, namespace: str) -> float:
        """What the namespace's pods in peers cost per hour now (binds in flight not included)."""
        pods = self._by_namespace.get(namespace)
        if not pods:
            return 0.0
        prices = self._prices()
        memo = self._memo.get(namespace)
        if memo is not None and memo[0] == self._version and memo[1] == prices:
            return memo[2]
        total = 0.0
        for entry in pods.values():
            peer = self.peers_by_node.get(entry.node)
            if peer is not None:
                total += cost_per_hour(entry.requests, peer)
        self._memo[namespace] = (self._version, prices, total)
        return total

    def held(self, namespace: str) -> float:
        """What the namespace's binds in flight will cost per hour."""
        now = self.timer()
        total = 0.0
        for uid, hold in list(self._holds.items()):
            if hold.until < now:
                del self._holds[uid]
            elif hold.namespace == namespace:
                total += hold.price
        return total

    def refusal(self, namespace: str, peer: PeerState, requests: Mapping[str, int]) -> str | None:
        """Why a pod of ``namespace`` with these requests may not go to ``peer`` (None: it may)."""
        cap = self.caps.cap(namespace)
        if cap is None:
            return None
        if isinstance(cap, str):
            return f"{cap}; namespace {namespace}'s pods stay home until it is fixed"
        price = cost_per_hour(requests, peer)
        spent, held = self.spent(namespace), self.held(namespace) if self._holds else 0.0
        total = spent + held + price
        if total <= cap + SLACK:
            return None
        in_flight = f" + {money(held)}/h being placed" if held > 0 else ""
        return (
            f"namespace {namespace} is capped at {MAX_SPEND}={money(cap)} per hour in peers and spends "
            f"{money(spent)}/h now{in_flight}; this pod would add {money(price)}/h on {peer.name} "
            f"({money(total)}/h): it waits at home until the spend falls or the cap is raised"
        )

    def hold(self, uid: str, namespace: str, peer: PeerState, requests: Mapping[str, int]) -> str | None:
        """Check the cap and, when the pod fits under it, count its price until it shows up bound
        (or ``release``); returns the refusal otherwise. Check and hold happen together, so a
        burst of binds in one event loop cannot all pass on the same spend."""
        self._holds.pop(uid, None)
        refused = self.refusal(namespace, peer, requests)
        if refused is None and self.caps.cap(namespace) is not None:
            self._holds[uid] = _Hold(namespace, cost_per_hour(requests, peer), self.timer() + self.hold_seconds)
        return refused

    def release(self, uid: str) -> None:
        self._holds.pop(uid, None)

    def left_for(self, namespaces: Iterable[str]) -> dict[str, float]:
        """What each capped namespace among ``namespaces`` may still spend per hour (for the
        planner; a cap that does not parse leaves nothing)."""
        out: dict[str, float] = {}
        for namespace in set(namespaces):
            cap = self.caps.cap(namespace)
            if cap is None:
                continue
            if isinstance(cap, str):
                out[namespace] = 0.0
                continue
            out[namespace] = max(cap - self.spent(namespace) - self.held(namespace), 0.0)
        return out

    # ---- what people read -----------------------------------------------------------------------
    def spend(self) -> Spend:
        """Spend by namespace and peer, at the peers' prices now (for the status page, explain
        and the ``spillover_spend_per_hour`` metric: the very figures the caps are checked against)."""
        peers = {peer.name: peer for peer in self.peers_by_node.values()}
        pods = []
        for entry in self._pods.values():
            peer = self.peers_by_node.get(entry.node)
            if peer is not None:
                pods.append(SpilledPod(entry.namespace, peer.name, entry.requests))
        return spend_per_hour(pods, peers)

    def budgets(self) -> list[dict[str, object]]:
        """Every capped namespace: its cap (or why it does not parse), its spend and what is left."""
        rows: list[dict[str, object]] = []
        for namespace, cap in sorted(self.caps.capped().items()):
            spent = self.spent(namespace)
            if isinstance(cap, str):
                rows.append({"namespace": namespace, "cap": None, "error": cap, "spendPerHour": round(spent, 4)})
                continue
            rows.append(
                {
                    "namespace": namespace,
                    "cap": cap,
                    "spendPerHour": round(spent, 4),
                    "leftPerHour": round(max(cap - spent, 0.0), 4),
                }
            )
        return rows

    def _prices(self) -> tuple[float, ...]:
        out: list[float] = []
        for peer in self.peers_by_node.values():
            out += (peer.cost, peer.cost_per_gib, peer.cost_per_gpu)
        return tuple(out)
