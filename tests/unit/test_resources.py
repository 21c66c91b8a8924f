from __future__ import annotations

import pytest

from extender.resources import QuantityError, canonical, parse_quantity, pod_requests
from extender.wire.core import Container, Pod, PodSpec, ResourceRequirements


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


def test_limits_without_requests_count_as_requests_like_apiserver_defaulting() -> None:
    assert pod_requests(_pod(_c(limits={"cpu": "2", "nvidia.com/gpu": "1"})))["nvidia.com/gpu"] == 1
    assert pod_requests(_pod(_c(limits={"cpu": "2"})))["cpu"] == 2000


def test_largest_init_container_wins_when_bigger_than_the_app_containers() -> None:
    req = pod_requests(_pod(_c("500m"), init=[_c("2"), _c("1")]))
    assert req["cpu"] == 2000


def test_sidecar_init_containers_add_to_app_containers_and_to_later_inits() -> None:
    req = pod_requests(_pod(_c("500m"), init=[_c("100m", restart="Always"), _c("1")]))
    # app 500m + sidecar 100m = 600m; the regular init runs with the sidecar: 1100m
    assert req["cpu"] == 1100


def test_overhead_is_added() -> None:
    assert pod_requests(_pod(_c("500m"), overhead={"cpu": "250m"}))["cpu"] == 750
