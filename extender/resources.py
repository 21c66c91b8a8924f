"""Resource quantities and pod requests, counted the way kube-scheduler v1.36 counts them.

Everything is an integer in a canonical unit so comparisons are exact and cheap on the hot path:
``cpu`` in millicores, memory and storage in bytes, ``pods`` and extended resources as counts
(extended resources are whole numbers by API validation).

Requests are summed as exact decimals and converted once at the end, as
k8s.io/component-helpers/resource ``PodRequests`` sums ``resource.Quantity`` values before
NodeResourcesFit converts them (``MilliValue`` for CPU, ``Value`` for the rest, both rounding up).
Objects are read as the apiserver sends them, defaulting applied: a container's limit without a
request has already become its request there (pkg/apis/core/v1/defaults.go ``SetDefaults_Pod``),
so only requests are read, as the scheduler does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from typing import Protocol

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


# --- PodRequests (k8s.io/component-helpers/resource/helpers.go, v0.36) -------------------------


class _Requirements(Protocol):
    @property
    def requests(self) -> RawQuantities | None: ...


class _Container(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def resources(self) -> _Requirements | None: ...
    @property
    def restart_policy(self) -> str | None: ...


class _ContainerStatus(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def allocated_resources(self) -> RawQuantities | None: ...
    @property
    def resources(self) -> _Requirements | None: ...


class _Condition(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def reason(self) -> str: ...


class _Spec(Protocol):
    @property
    def containers(self) -> Sequence[_Container]: ...
    @property
    def init_containers(self) -> Sequence[_Container] | None: ...
    @property
    def overhead(self) -> RawQuantities | None: ...
    @property
    def resources(self) -> _Requirements | None: ...


class _Status(Protocol):
    @property
    def conditions(self) -> Sequence[_Condition] | None: ...
    @property
    def container_statuses(self) -> Sequence[_ContainerStatus] | None: ...
    @property
    def init_container_statuses(self) -> Sequence[_ContainerStatus] | None: ...
    @property
    def resources(self) -> _Requirements | None: ...
    @property
    def allocated_resources(self) -> RawQuantities | None: ...


class _Pod(Protocol):
    @property
    def spec(self) -> _Spec: ...
    @property
    def status(self) -> _Status | None: ...


_Exact = dict[str, Decimal]


def _exact(raw: RawQuantities | None) -> _Exact:
    return {name: parse_quantity(value) for name, value in raw.items()} if raw else {}


def _add(total: _Exact, extra: _Exact) -> None:
    for name, amount in extra.items():
        total[name] = total.get(name, ZERO) + amount


def _max(total: _Exact, other: _Exact) -> None:
    for name, amount in other.items():
        if name not in total or amount > total[name]:
            total[name] = amount


def _requests(requirements: _Requirements | None) -> RawQuantities | None:
    return requirements.requests if requirements is not None else None


def _resize_infeasible(status: _Status) -> bool:
    """``IsPodResizeInfeasible``: condition PodResizePending with reason Infeasible."""
    for condition in status.conditions or ():
        if condition.type == "PodResizePending":
            return condition.reason == "Infeasible"
    return False


def _effective(spec: RawQuantities | None, actuated: RawQuantities | None, allocated: RawQuantities | None,
               infeasible: bool) -> _Exact:
    """``determineEffectiveRequests``: the larger of spec, actuated (status resources) and allocated
    requests per resource; spec is left out while the resize is infeasible (it never happens)."""
    out: _Exact = {} if infeasible else _exact(spec)
    _max(out, _exact(actuated))
    _max(out, _exact(allocated))
    return out


SUPPORTED_POD_LEVEL = (CPU, MEMORY)


def _pod_level(name: str) -> bool:
    """``IsSupportedPodLevelResource``: cpu, memory and hugepages-*."""
    return name in SUPPORTED_POD_LEVEL or name.startswith("hugepages-")


def exact_pod_requests(pod: _Pod, *, bound: bool) -> _Exact:
    """``resource.PodRequests`` with the options kube-scheduler v1.36 passes, as exact decimals.

    ``bound=False``: a pod being placed (NodeResourcesFit ``computePodResourceRequest``: pod-level
    resources honoured, status ignored). ``bound=True``: a pod already on a node
    (pkg/scheduler/framework/types.go ``PodInfo.CalculateResource``: also ``UseStatusResources`` and
    ``InPlacePodLevelResourcesVerticalScalingEnabled``, both on by default in v1.36, so an in-place
    resized pod counts the larger of its spec, allocated and actuated requests).
    """
    spec, status = pod.spec, pod.status
    statuses: dict[str, _ContainerStatus] = {}
    infeasible = False
    if bound and status is not None:
        infeasible = _resize_infeasible(status)
        for reported in (*(status.container_statuses or ()), *(status.init_container_statuses or ())):
            statuses[reported.name] = reported

    # AggregateContainerRequests
    reqs: _Exact = {}
    cs: _ContainerStatus | None
    for container in spec.containers:
        raw = _requests(container.resources)
        cs = statuses.get(container.name) if statuses else None
        if cs is not None and cs.resources is not None:
            _add(reqs, _effective(raw, cs.resources.requests, cs.allocated_resources, infeasible))
        else:
            _add(reqs, _exact(raw))
    sidecars: _Exact = {}
    inits: _Exact = {}
    for container in spec.init_containers or ():
        restartable = container.restart_policy == "Always"
        raw = _requests(container.resources)
        cs = statuses.get(container.name) if statuses and restartable else None
        if cs is not None and cs.resources is not None:
            own = _effective(raw, cs.resources.requests, cs.allocated_resources, infeasible)
        else:
            own = _exact(raw)
        if restartable:
            _add(reqs, own)
            _add(sidecars, own)
            running = sidecars  # this init container's moment: every sidecar so far, itself included
        else:
            running = dict(own)
            _add(running, sidecars)
        _max(inits, running)
    _max(reqs, inits)

    # Pod-level requests replace the containers' sum for the resources they name (PodLevelResources,
    # on by default since 1.34).
    level = _requests(spec.resources)
    if level and any(_pod_level(name) for name in level):
        effective: _Exact | None = None
        if bound and status is not None and status.resources is not None:
            effective = _effective(level, status.resources.requests, status.allocated_resources, infeasible)
        for name, value in level.items():
            if _pod_level(name):
                reqs[name] = effective.get(name, ZERO) if effective is not None else parse_quantity(value)

    if spec.overhead:
        _add(reqs, _exact(spec.overhead))
    return reqs


def _canonical_requests(exact: _Exact) -> Resources:
    out: Resources = {}
    for name, amount in exact.items():
        if name == PODS or not counted(name):
            continue  # the pod slot is counted below, as NodeResourcesFit counts pods, not requests
        value = to_canonical(name, amount)
        if value > 0:  # fitsRequest skips what a pod does not request
            out[name] = value
    out[PODS] = 1
    return out


def simple_signature(pod: _Pod) -> tuple[tuple[tuple[str, str | int | float], ...], ...] | None:
    """All that ``PodRequests`` reads of most pods (plain containers, no init containers, overhead,
    pod-level resources or resize in progress): their containers' requests as given. Pods with the
    same signature have the same requests, so a peer's 100,000 pods need computing only a few times.
    None for any other pod (compute it in full)."""
    spec = pod.spec
    if spec.init_containers or spec.overhead or spec.resources is not None:
        return None
    status = pod.status
    if status is not None:
        if status.resources is not None or status.allocated_resources:
            return None
        for reported in status.container_statuses or ():
            if reported.resources is not None or reported.allocated_resources:
                return None
    signature = []
    for container in spec.containers:
        requests = container.resources.requests if container.resources is not None else None
        signature.append(tuple(requests.items()) if requests else ())
    return tuple(signature)


def pod_requests(pod: _Pod) -> Resources:
    """What a pod being placed asks of a node, as NodeResourcesFit computes it, plus its pod slot.

    Zero requests are left out: fitsRequest only checks what a pod asks for (the non-zero defaults
    of 100m CPU and 200Mi memory are for scoring, never for fit). The ``pods`` entry stands for
    fitsRequest's check that one more pod stays within the node's allowed pod number.
    """
    return _canonical_requests(exact_pod_requests(pod, bound=False))


def bound_pod_requests(pod: _Pod) -> Resources:
    """What a pod already bound to a node takes from it in kube-scheduler's cache (``NodeInfo``)."""
    return _canonical_requests(exact_pod_requests(pod, bound=True))


def sum_requests(pods: Iterable[_Pod]) -> Resources:
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
