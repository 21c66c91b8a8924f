"""What a pod asks of a node, as kube-scheduler v1.36 computes it: ``PodRequests``
(k8s.io/component-helpers/resource/helpers.go, v0.36) with the options the scheduler passes.

Requests are summed as exact decimals and converted once at the end (``resources.to_canonical``),
as NodeResourcesFit converts the summed ``resource.Quantity`` values. Objects are read as the
apiserver sends them, defaulting applied: a container's limit without a request has already become
its request there (pkg/apis/core/v1/defaults.go ``SetDefaults_Pod``), so only requests are read,
as the scheduler does. The pod is read through Protocols, so the full ``wire.core.Pod`` and a
peer's lean ``PeerPod`` both do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Protocol

from extender.resources import (
    CPU,
    MEMORY,
    PODS,
    ZERO,
    RawQuantities,
    Resources,
    add_into,
    counted,
    parse_quantity,
    to_canonical,
)


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
