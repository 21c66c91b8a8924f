from __future__ import annotations

from typing import Any

from extender import labels
from extender.delegation.delegate_spec import delegate_body, delegate_name, mirrored_status, references


def proxy() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-abc",
            "namespace": "shop",
            "uid": "1234-uid",
            "labels": {"app": "web"},
            "annotations": {
                "spillover.io/policy": "local-first",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": {
            "nodeName": "spillover-east",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "priorityClassName": "high",
            "priority": 1000,
            "tolerations": [
                {"key": "spillover.io/virtual", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "gpu", "operator": "Exists"},
            ],
            "containers": [
                {
                    "name": "app",
                    "image": "nginx",
                    "resources": {
                        "requests": {"cpu": "1", "spillover.io/spillable": "1"},
                        "limits": {"spillover.io/spillable": "1"},
                    },
                    "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "a"}}}],
                    "envFrom": [{"configMapRef": {"name": "settings"}}],
                    "volumeMounts": [
                        {"name": "kube-api-access-x1", "mountPath": "/var/run/secrets"},
                        {"name": "cfg", "mountPath": "/cfg"},
                    ],
                }
            ],
            "volumes": [
                {"name": "kube-api-access-x1", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}},
                {"name": "cfg", "configMap": {"name": "files"}},
            ],
            "imagePullSecrets": [{"name": "regcred"}],
        },
        "status": {"phase": "Pending"},
    }


def test_delegate_name_is_stable_per_proxy_uid_and_distinct_across_uids() -> None:
    assert delegate_name("web", "u1") == delegate_name("web", "u1")
    assert delegate_name("web", "u1") != delegate_name("web", "u2")
    assert len(delegate_name("x" * 250, "u1")) <= 63


def test_references_cover_volumes_env_envfrom_and_pull_secrets_but_not_the_root_ca() -> None:
    refs = references(proxy()["spec"])
    assert refs == {("Secret", "creds"), ("ConfigMap", "settings"), ("ConfigMap", "files"), ("Secret", "regcred")}


def test_delegate_drops_what_the_webhook_and_home_added_and_keeps_the_rest() -> None:
    body = delegate_body(proxy(), "east", "shop", [("ConfigMap", "files")])
    spec = body["spec"]
    for gone in ("nodeName", "schedulerName", "serviceAccountName", "priorityClassName", "priority"):
        assert gone not in spec
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    container = spec["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "1"}}
    assert [m["name"] for m in container["volumeMounts"]] == ["cfg"]
    assert [v["name"] for v in spec["volumes"]] == ["cfg"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    meta = body["metadata"]
    assert meta["labels"][labels.PROXY_UID] == "1234-uid" and meta["labels"]["app"] == "web"
    assert meta["labels"][labels.HOME_NAMESPACE] == "shop"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in meta["annotations"]
    assert "status" not in body


def test_original_proxy_is_not_modified() -> None:
    original = proxy()
    delegate_body(original, "east", "shop", [])
    assert original["spec"]["nodeName"] == "spillover-east"
    assert "spillover.io/spillable" in original["spec"]["containers"][0]["resources"]["requests"]


def test_mirrored_status_copies_the_truth_fields_only() -> None:
    status = {
        "phase": "Running",
        "podIP": "10.0.0.1",
        "podIPs": [{"ip": "10.0.0.1"}],
        "nominatedNodeName": "x",
        "containerStatuses": [{"name": "app", "ready": True, "restartCount": 2}],
    }
    mirrored = mirrored_status(status)
    assert mirrored["phase"] == "Running" and mirrored["podIP"] == "10.0.0.1"
    assert mirrored["containerStatuses"][0]["restartCount"] == 2
    assert "nominatedNodeName" not in mirrored


def test_the_copies_a_delegate_lists_read_back_as_written() -> None:
    from extender.delegation.delegate_spec import copies_of

    copies = [("Secret", "creds"), ("ConfigMap", "files")]
    body = delegate_body(proxy(), "east", "shop", copies)
    assert copies_of(body["metadata"]["annotations"]) == sorted(copies)
    assert copies_of({}) == [] and copies_of(None) == []


def test_a_delegate_lists_every_reference_copied_or_not_and_needs_them_all() -> None:
    from extender.delegation.delegate_spec import needed_by

    body = delegate_body(proxy(), "east", "shop", [("Secret", "creds")], referenced=[("ConfigMap", "late")])

    annotations = body["metadata"]["annotations"]
    assert annotations["spillover.io/references"] == "ConfigMap/late,Secret/creds"
    assert needed_by(annotations) == {("ConfigMap", "late"), ("Secret", "creds")}
    assert needed_by({"spillover.io/copies": "ConfigMap/files"}) == {("ConfigMap", "files")}, "made before the list"


def test_a_copy_carries_the_version_of_the_home_object_it_was_made_from() -> None:
    from extender.delegation.delegate_spec import copy_body

    original = {"kind": "ConfigMap", "metadata": {"name": "settings", "resourceVersion": "42"}, "data": {"a": "1"}}

    copied = copy_body(original, "shop", "shop", "home-a")

    assert copied["metadata"]["annotations"] == {"spillover.io/source-resource-version": "42"}
