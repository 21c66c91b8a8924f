from __future__ import annotations

import pytest

from extender.pod_requests import bound_pod_requests, pod_requests
from extender.resources import QuantityError, canonical, parse_quantity
from extender.wire.core import (
    Container,
    ContainerStatus,
    Pod,
    PodCondition,
    PodSpec,
    PodStatus,
    ResourceRequirements,
)


def _pod(
    *containers: Container, init: list[Container] | None = None, overhead: dict[str, str | int | float] | None = None
) -> Pod:
    return Pod(spec=PodSpec(containers=list(containers), init_containers=init, overhead=overhead))


def _c(
    cpu: str | None = None,
    mem: str | None = None,
    limits: dict[str, str | int | float] | None = None,
    restart: str | None = None,
) -> Container:
    requests: dict[str, str | int | float] = {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v is not None}
    return Container(resources=ResourceRequirements(requests=requests or None, limits=limits), restart_policy=restart)



@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("100m", "cpu", 100),
        ("1", "cpu", 1000),
        ("1.5", "cpu", 1500),
        ("0.0001", "cpu", 1),
        ("1Gi", "memory", 2**30),
        ("128M", "memory", 128 * 10**6),
        ("1e3", "memory", 1000),
        ("2", "nvidia.com/gpu", 2),
    ],
)
def test_quantities_convert_to_canonical_integers(text: str, name: str, expected: int) -> None:
    assert canonical(name, text) == expected


@pytest.mark.parametrize("bad", ["", "1.2.3", "ten", "1Qi", "--1"])
def test_malformed_quantities_are_rejected_with_the_accepted_forms(bad: str) -> None:
    with pytest.raises(QuantityError, match="500m"):
        parse_quantity(bad)


def test_pod_requests_sum_containers_and_count_one_pod_slot() -> None:
    req = pod_requests(_pod(_c("500m", "1Gi"), _c("250m", "512Mi")))
    assert req == {"cpu": 750, "memory": 2**30 + 2**29, "pods": 1}


def test_only_requests_are_read_as_the_apiserver_has_already_defaulted_limits_into_them() -> None:
    # pkg/apis/core/v1/defaults.go SetDefaults_Pod copies a limit without a request into the
    # request before anyone sees the pod; kube-scheduler then reads requests only.
    assert pod_requests(_pod(_c(limits={"cpu": "2", "nvidia.com/gpu": "1"}))) == {"pods": 1}
    assert pod_requests(_pod(_c("2", limits={"cpu": "4"})))["cpu"] == 2000


def test_requests_are_summed_exactly_and_rounded_up_once_as_quantities_are() -> None:
    # Two containers of 0.5m: resource.Quantity sums to 1m; rounding each first would say 2m.
    assert pod_requests(_pod(_c("500u"), _c("500u")))["cpu"] == 1
    assert pod_requests(_pod(_c(mem="0.5"), _c(mem="0.5")))["memory"] == 1


def test_resources_the_scheduler_does_not_count_are_left_out() -> None:
    counted = {"nvidia.com/gpu": "1", "hugepages-2Mi": "4Mi", "example.com/foo": "2", "ephemeral-storage": "1Gi"}
    ignored = {"foo": "3", "requests.example.com/x": "1"}
    req = pod_requests(_pod(Container(resources=ResourceRequirements(requests={**counted, **ignored}))))
    assert set(req) == {*counted, "pods"}


def test_largest_init_container_wins_when_bigger_than_the_app_containers() -> None:
    req = pod_requests(_pod(_c("500m"), init=[_c("2"), _c("1")]))
    assert req["cpu"] == 2000


def test_sidecar_init_containers_add_to_app_containers_and_to_later_inits() -> None:
    req = pod_requests(_pod(_c("500m"), init=[_c("100m", restart="Always"), _c("1")]))
    # app 500m + sidecar 100m = 600m; the regular init runs with the sidecar: 1100m
    assert req["cpu"] == 1100


def test_overhead_is_added() -> None:
    assert pod_requests(_pod(_c("500m"), overhead={"cpu": "250m"}))["cpu"] == 750


def _status(
    *containers: ContainerStatus,
    resize: str | None = None,
    pod_level: dict[str, str | int | float] | None = None,
    allocated: dict[str, str | int | float] | None = None,
) -> PodStatus:
    conditions = [PodCondition(type="PodResizePending", reason=resize)] if resize else None
    return PodStatus(
        phase="Running",
        conditions=conditions,
        container_statuses=list(containers),
        resources=ResourceRequirements(requests=pod_level) if pod_level else None,
        allocated_resources=allocated,
    )


def _reported(cpu_allocated: str | None, cpu_actuated: str | None) -> ContainerStatus:
    return ContainerStatus(
        name="c",
        allocated_resources={"cpu": cpu_allocated} if cpu_allocated else None,
        resources=ResourceRequirements(requests={"cpu": cpu_actuated}) if cpu_actuated else None,
    )


@pytest.mark.parametrize(
    ("spec", "allocated", "actuated", "resize", "expected"),
    [
        ("500m", "1500m", "1500m", None, 1500),  # shrinking: still holds the old size
        ("2", "1", "1", None, 2000),  # growing: the new spec is already counted
        ("2", "1", "1", "Infeasible", 1000),  # a resize that will never happen: spec left out
        ("500m", "1500m", None, None, 500),  # no actuated resources reported: status not used
    ],
)
def test_a_bound_pod_in_resize_counts_the_larger_of_spec_allocated_and_actuated(
    spec: str, allocated: str | None, actuated: str | None, resize: str | None, expected: int
) -> None:
    container = Container(name="c", resources=ResourceRequirements(requests={"cpu": spec}))
    pod = Pod(spec=PodSpec(containers=[container]), status=_status(_reported(allocated, actuated), resize=resize))
    assert bound_pod_requests(pod)["cpu"] == expected
    assert pod_requests(pod)["cpu"] == canonical("cpu", spec)  # a pod being placed: spec only


def test_pod_level_requests_replace_the_containers_sum_for_cpu_memory_and_hugepages_only() -> None:
    containers = [
        Container(name="a", resources=ResourceRequirements(requests={"cpu": "100m", "ephemeral-storage": "1Gi"})),
        Container(name="b"),
    ]
    pod = Pod(spec=PodSpec(containers=containers, resources=ResourceRequirements(requests={"cpu": "3"}),
                           overhead={"cpu": "100m"}))
    assert pod_requests(pod) == {"cpu": 3100, "ephemeral-storage": 2**30, "pods": 1}


def test_a_bound_pods_pod_level_resize_reads_the_pod_level_status() -> None:
    level = ResourceRequirements(requests={"cpu": "1", "memory": "1Gi"})
    status = _status(pod_level={"cpu": "2"}, allocated={"cpu": "2"})
    pod = Pod(spec=PodSpec(containers=[Container(name="c")], resources=level), status=status)
    assert bound_pod_requests(pod)["cpu"] == 2000
    assert bound_pod_requests(pod)["memory"] == 2**30
