"""The Pod Security checks say what a peer's PodSecurity admission would say, word for word.

The expected texts follow k8s.io/pod-security-admission/policy v0.36.2; tests/e2e/test_security.py
asks a real kube-apiserver about the same pods (tests/pod_security_cases.py) and compares.
"""

from __future__ import annotations

import json

import pytest

from extender import pod_security
from extender.pod_security import Level, from_dict, from_json, refusal, violations
from tests.pod_security_cases import CASES, Case


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_each_check_words_its_refusal_as_podsecurity_does(case: Case) -> None:
    pod = from_json(json.dumps(case.pod()).encode())
    assert pod_security.describe(violations(pod, Level.BASELINE)) == case.baseline
    assert pod_security.describe(violations(pod, Level.RESTRICTED)) == case.restricted
    assert violations(pod, Level.PRIVILEGED) == []


def test_a_privileged_level_admits_even_a_host_takeover() -> None:
    takeover = next(case for case in CASES if case.name == "host-takeover")
    assert refusal(from_dict(takeover.pod()), Level.PRIVILEGED, "east") is None


def test_the_refusal_names_the_peer_the_level_and_where_it_is_declared() -> None:
    pod = from_dict({"spec": {"hostNetwork": True, "containers": [{"name": "app"}]}})
    assert refusal(pod, Level.BASELINE, "east") == (
        'peer east enforces Pod Security "baseline" (PeerCluster spec.podSecurity) and would refuse the pod: '
        "host namespaces (hostNetwork=true)"
    )


def test_ephemeral_containers_are_checked_after_init_containers_and_containers() -> None:
    privileged = {"privileged": True}
    pod = from_dict(
        {
            "spec": {
                "initContainers": [{"name": "init", "securityContext": privileged}],
                "containers": [{"name": "app", "securityContext": privileged}],
                "ephemeralContainers": [{"name": "debug", "securityContext": privileged}],
            }
        }
    )
    assert violations(pod, Level.BASELINE) == [
        ("privileged", 'containers "init", "app", "debug" must not set securityContext.privileged=true')
    ]


def test_windows_host_process_is_refused_at_pod_and_container_level() -> None:
    host_process = {"windowsOptions": {"hostProcess": True}}
    pod = from_dict(
        {
            "spec": {
                "os": {"name": "windows"},
                "hostNetwork": True,
                "securityContext": host_process,
                "containers": [{"name": "app", "securityContext": host_process}],
            }
        }
    )
    assert violations(pod, Level.BASELINE) == [
        ("host namespaces", "hostNetwork=true"),
        ("hostProcess", 'pod and container "app" must not set securityContext.windowsOptions.hostProcess=true'),
    ]


def test_apparmor_annotations_other_than_runtime_default_or_localhost_are_refused() -> None:
    pod = from_dict(
        {
            "metadata": {
                "annotations": {
                    "container.apparmor.security.beta.kubernetes.io/b": "unconfined",
                    "container.apparmor.security.beta.kubernetes.io/a": "localhost/custom",
                    "container.apparmor.security.beta.kubernetes.io/c": "runtime/default",
                }
            },
            "spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
        }
    )
    assert violations(pod, Level.BASELINE) == [
        (
            "forbidden AppArmor profile",
            'annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/b='
            '"unconfined""',
        )
    ]


def test_a_volume_of_a_source_podsecurity_does_not_know_is_unknown_and_restricted() -> None:
    pod = from_dict({"spec": {"containers": [{"name": "app"}], "volumes": [{"name": "odd", "someFutureSource": {}}]}})
    found = dict(violations(pod, Level.RESTRICTED))
    assert found["restricted volume types"] == 'volume "odd" uses restricted volume type "unknown"'


def test_a_null_volume_source_counts_as_absent_as_in_go() -> None:
    pod = from_dict({"spec": {"containers": [{"name": "app"}], "volumes": [{"name": "v", "hostPath": None}]}})
    assert violations(pod, Level.BASELINE) == []


def test_namespace_labels_enforce_audit_and_warn_the_same_level() -> None:
    assert pod_security.namespace_labels(Level.RESTRICTED) == {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
