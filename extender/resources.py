"""Resource quantities, counted the way kube-scheduler v1.36 counts them.

Everything is an integer in a canonical unit so comparisons are exact and cheap on the hot path:
``cpu`` in millicores, memory and storage in bytes, ``pods`` and extended resources as counts
(extended resources are whole numbers by API validation). Quantities parse to exact decimals and
convert to canonical units once (``to_canonical``: ``MilliValue`` for CPU, ``Value`` for the rest,
both rounding up); what a pod asks in all is ``pod_requests``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache

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
_NANO = Decimal("1e-9")
_MILLI = Decimal(1000)
ZERO = Decimal(0)

_MAX_DIGITS = 30


class QuantityError(ValueError):
    """A resource quantity that Kubernetes would not accept."""


RawQuantities = Mapping[str, str | int | float]
"""A ResourceList as JSON decodes it: name -> quantity text."""


@lru_cache(maxsize=4096)
def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity ("100m", "1Gi", "2", "1e3") into a Decimal of base units.

    Like apimachinery's ``ParseQuantity`` (pkg/api/resource/quantity.go), a value more precise
    than a nano unit is rounded up to the next nano ("0.1n" is 1n).
    """
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
    if amount and amount.as_tuple().exponent < -9:  # type: ignore[operator]
        amount = amount.quantize(_NANO, rounding=ROUND_CEILING)
    return amount


@lru_cache(maxsize=8192)
def to_canonical(name: str, amount: Decimal) -> int:
    """An exact amount in its canonical integer unit: ``MilliValue`` for CPU, ``Value`` otherwise
    (k8s.io/kubernetes pkg/scheduler/framework/types.go ``Resource.Add``), both rounding up."""
    if name == CPU:
        amount = amount * _MILLI
    return int(amount.to_integral_value(rounding=ROUND_CEILING))


def canonical(name: str, value: str | int | float) -> int:
    """Amount of one resource in its canonical integer unit (CPU rounds up to whole millicores)."""
    return to_canonical(name, parse_quantity(value))


def parse_resources(raw: RawQuantities | None) -> Resources:
    if not raw:
        return {}
    return {name: canonical(name, value) for name, value in raw.items()}


@lru_cache(maxsize=1024)
def counted(name: str) -> bool:
    """Whether NodeResourcesFit counts this resource at all.

    pkg/scheduler/framework/types.go ``Resource.Add`` keeps cpu, memory, ephemeral-storage and
    pods, and of the rest only ``schedutil.IsScalarResourceName`` (pkg/scheduler/util/utils.go):
    extended resources, hugepages-*, attachable-volumes-* and names in a kubernetes.io/ namespace.
    Any other name is ignored, in a pod's requests and in a node's allocatable alike.
    """
    if name in (CPU, MEMORY, EPHEMERAL_STORAGE, PODS):
        return True
    return (
        name.startswith(("hugepages-", "attachable-volumes-"))
        or "kubernetes.io/" in name
        or _is_extended_resource_name(name)
    )


_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_qualified_name(text: str) -> bool:
    """apimachinery ``IsQualifiedName`` (label keys, resource names): an optional DNS-subdomain
    prefix and "/", then a name of at most 63 alphanumerics, "-", "_" or "." (alphanumeric ends)."""
    parts = text.split("/")
    if len(parts) > 2:
        return False
    if len(parts) == 2 and not (0 < len(parts[0]) <= 253 and _DNS_SUBDOMAIN.fullmatch(parts[0])):
        return False
    name = parts[-1]
    return 0 < len(name) <= 63 and _QUALIFIED_NAME.fullmatch(name) is not None


def _is_extended_resource_name(name: str) -> bool:
    """pkg/apis/core/v1/helper/helpers.go ``IsExtendedResourceName``: not native (has a "/", not
    in kubernetes.io/), not "requests."-prefixed, and "requests.<name>" is a qualified name."""
    if "/" not in name or "kubernetes.io/" in name or name.startswith("requests."):
        return False
    return is_qualified_name("requests." + name)


def node_allocatable(raw: RawQuantities | None) -> Resources:
    """What kube-scheduler sees a node offer: ``status.allocatable`` only (``NodeInfo.SetNode``
    reads nothing else; a node without it offers nothing), resources it does not count left out."""
    if not raw:
        return {}
    return {name: canonical(name, value) for name, value in raw.items() if counted(name)}


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
