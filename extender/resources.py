"""Resource quantities and pod requests, counted the way kube-scheduler counts them.

Everything is an integer in a canonical unit so comparisons are exact and cheap on the hot path:
``cpu`` in millicores, memory and storage in bytes, ``pods`` and extended resources as counts
(extended resources are whole numbers by API validation).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import lru_cache

from extender.wire.core import Container, Pod

Resources = dict[str, int]
"""Resource name -> amount in canonical units (see module docstring)."""

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
EPHEMERAL_STORAGE = "ephemeral-storage"
SPILLABLE = "spillover.io/spillable"
"""The marker extended resource that routes a pod through the extender (ignored by kubelets)."""

_SUFFIXES: dict[str, Decimal] = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


_MAX_DIGITS = 30


class QuantityError(ValueError):
    """A resource quantity that Kubernetes would not accept."""


@lru_cache(maxsize=4096)
def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity ("100m", "1Gi", "2", "1e3") into a Decimal of base units."""
    if isinstance(value, bool):
        raise QuantityError(f"quantity {value!r} is a boolean, not a number")
    if isinstance(value, int | float):
        amount = Decimal(str(value))
    else:
        match = _QUANTITY.match(value.strip())
        if not match:
            raise QuantityError(f"quantity {value!r} does not parse; use forms like 500m, 2, 1.5, 128Mi or 1Gi")
        number, suffix = match.group(1), match.group(2) or ""
        try:
            amount = Decimal(number) * _SUFFIXES[suffix]
        except ArithmeticError as exc:  # InvalidOperation, Overflow
            raise QuantityError(
                f"quantity {value!r} is not a number; use forms like 500m, 2, 1.5, 128Mi or 1Gi"
            ) from exc
    if not amount.is_finite() or (amount and amount.adjusted() > _MAX_DIGITS):
        # Far beyond anything the apiserver accepts; refusing it here keeps int() conversions cheap.
        raise QuantityError(f"quantity {value!r} is out of range")
    return amount


def canonical(name: str, value: str | int | float) -> int:
    """Amount of one resource in its canonical integer unit (CPU rounds up to whole millicores)."""
    amount = parse_quantity(value)
    if name == CPU:
        return int((amount * 1000).to_integral_value(rounding="ROUND_CEILING"))
    return int(amount.to_integral_value(rounding="ROUND_CEILING"))


def parse_resources(raw: Mapping[str, str | int | float] | None) -> Resources:
    if not raw:
        return {}
    return {name: canonical(name, value) for name, value in raw.items()}


def add_into(total: Resources, extra: Mapping[str, int]) -> None:
    for name, amount in extra.items():
        total[name] = total.get(name, 0) + amount


def max_into(total: Resources, other: Mapping[str, int]) -> None:
    for name, amount in other.items():
        if amount > total.get(name, 0):
            total[name] = amount


def subtract(a: Mapping[str, int], b: Mapping[str, int]) -> Resources:
    out = dict(a)
    for name, amount in b.items():
        out[name] = out.get(name, 0) - amount
    return out


def fits_within(request: Mapping[str, int], free: Mapping[str, int]) -> str | None:
    """None when ``request`` fits in ``free``; otherwise the name of the first short resource."""
    for name, amount in request.items():
        if amount > 0 and amount > free.get(name, 0):
            return name
    return None


def _container_requests(container: Container) -> Resources:
    res = container.resources
    if res is None:
        return {}
    requests = parse_resources(res.requests)
    # As the apiserver defaults it: a limit without a request is also the request.
    for name, value in (res.limits or {}).items():
        if name not in requests:
            requests[name] = canonical(name, value)
    return requests


def pod_requests(pod: Pod) -> Resources:
    """The pod's effective requests, as kube-scheduler's NodeResourcesFit computes them.

    max(sum of app containers + restartable init (sidecar) containers, the largest regular init
    container plus the sidecars started before it) + pod overhead, plus one ``pods`` slot.
    """
    total: Resources = {}
    for container in pod.spec.containers:
        add_into(total, _container_requests(container))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for container in pod.spec.init_containers or ():
        requests = _container_requests(container)
        if container.restart_policy == "Always":
            add_into(sidecars, requests)
            continue
        candidate = dict(sidecars)
        add_into(candidate, requests)
        max_into(init_peak, candidate)
    add_into(total, sidecars)
    max_into(total, init_peak)
    add_into(total, parse_resources(pod.spec.overhead))
    total[PODS] = 1
    return {name: amount for name, amount in total.items() if amount > 0}


def sum_requests(pods: Iterable[Pod]) -> Resources:
    total: Resources = {}
    for pod in pods:
        add_into(total, pod_requests(pod))
    return total


def format_resources(res: Mapping[str, int]) -> str:
    """Human text for messages: cpu=1500m memory=2Gi pods=1."""
    parts = []
    for name in sorted(res):
        amount = res[name]
        if name == CPU:
            parts.append(f"cpu={amount}m")
        elif name in (MEMORY, EPHEMERAL_STORAGE) and amount % 2**20 == 0:
            parts.append(f"{name}={amount // 2**20}Mi")
        else:
            parts.append(f"{name}={amount}")
    return " ".join(parts)
