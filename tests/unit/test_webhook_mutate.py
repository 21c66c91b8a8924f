from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import msgspec
import pytest

from extender.webhook.mutate import VIRTUAL_TOLERATION, BadReview, WebhookConfig, mutate
from extender.webhook.patches import pointer
from extender.wire.admission import AdmissionRequest, AdmissionResponse, review_decoder

FIXTURE = Path(__file__).parent.parent / "fixtures" / "admission" / "pod_create.json"
MARKER = "spillover.io/spillable"


def review(obj: dict[str, Any] | None = None, **request: Any) -> AdmissionRequest:
    body = json.loads(FIXTURE.read_bytes())
    if obj is not None:
        body["request"]["object"] = obj
    body["request"].update(request)
    decoded = review_decoder.decode(json.dumps(body).encode())
    assert decoded.request is not None
    return decoded.request


def fixture_pod() -> dict[str, Any]:
    pod: dict[str, Any] = json.loads(FIXTURE.read_bytes())["request"]["object"]
    return pod


def apply(pod: dict[str, Any], response: AdmissionResponse) -> dict[str, Any]:
    assert response.allowed
    if response.patch is None:
        return pod
    assert response.patch_type == "JSONPatch"
    result: dict[str, Any] = jsonpatch.apply_patch(pod, json.loads(response.patch))
    return result


def mutated(pod: dict[str, Any], config: WebhookConfig | None = None) -> dict[str, Any]:
    return apply(copy.deepcopy(pod), mutate(review(pod), config or WebhookConfig()))


def test_pointer_escapes_slash_and_tilde_per_rfc_6901() -> None:
    assert pointer("spec", "containers", 0, "resources", "limits", MARKER) == (
        "/spec/containers/0/resources/limits/spillover.io~1spillable"
    )
    assert pointer("a~b/c") == "/a~0b~1c"


def test_a_pod_gets_the_toleration_and_the_marker_in_requests_and_limits_and_nothing_else() -> None:
    before = fixture_pod()
    after = mutated(before)
    assert after["spec"]["tolerations"][-1] == VIRTUAL_TOLERATION
    assert after["spec"]["tolerations"][:-1] == before["spec"]["tolerations"]
    resources = after["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "500m", "memory": "256Mi", MARKER: "1"}, "limits": {MARKER: "1"}}
    # Nothing else changed.
    after["spec"]["tolerations"].pop()
    after["spec"]["containers"][0]["resources"] = before["spec"]["containers"][0]["resources"]
    assert after == before


def test_the_marker_key_is_patched_with_an_escaped_path() -> None:
    pod = fixture_pod()
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}
    response = mutate(review(pod), WebhookConfig())
    assert response.patch is not None
    paths = [op["path"] for op in json.loads(response.patch)]
    assert "/spec/containers/0/resources/requests/spillover.io~1spillable" in paths
    assert "/spec/containers/0/resources/limits/spillover.io~1spillable" in paths


def test_missing_resources_and_tolerations_are_created() -> None:
    pod = fixture_pod()
    del pod["spec"]["containers"][0]["resources"]
    del pod["spec"]["tolerations"]
    after = mutated(pod)
    assert after["spec"]["tolerations"] == [VIRTUAL_TOLERATION]
    assert after["spec"]["containers"][0]["resources"] == {"requests": {MARKER: "1"}, "limits": {MARKER: "1"}}


def test_empty_resources_get_requests_and_limits_objects() -> None:
    pod = fixture_pod()
    pod["spec"]["containers"][0]["resources"] = {}
    pod["spec"]["tolerations"] = []
    after = mutated(pod)
    assert after["spec"]["containers"][0]["resources"] == {"requests": {MARKER: "1"}, "limits": {MARKER: "1"}}
    assert after["spec"]["tolerations"] == [VIRTUAL_TOLERATION]


def test_only_the_first_container_gets_the_marker() -> None:
    pod = fixture_pod()
    pod["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    after = mutated(pod)
    assert after["spec"]["containers"][1] == {"name": "sidecar", "image": "busybox"}


def test_reinvocation_is_a_no_op() -> None:
    once = mutated(fixture_pod(), WebhookConfig(scheduler_name="spillover-scheduler"))
    response = mutate(review(once), WebhookConfig(scheduler_name="spillover-scheduler"))
    assert response.allowed and response.patch is None


def test_a_wrong_marker_value_is_set_to_one() -> None:
    pod = fixture_pod()
    pod["spec"]["containers"][0]["resources"] = {"requests": {MARKER: "2"}, "limits": {MARKER: "2"}}
    after = mutated(pod)
    assert after["spec"]["containers"][0]["resources"] == {"requests": {MARKER: "1"}, "limits": {MARKER: "1"}}


def test_local_only_pods_get_no_toleration_and_no_marker() -> None:
    pod = fixture_pod()
    pod["metadata"]["annotations"] = {"spillover.io/policy": "local-only"}
    response = mutate(review(pod), WebhookConfig(scheduler_name="spillover-scheduler"))
    assert response.allowed and response.patch is None


@pytest.mark.parametrize(
    ("annotations", "mentions"),
    [
        ({"spillover.io/policy": "remote-sometimes"}, ["spillover.io/policy", "remote-sometimes", "local-first"]),
        ({"spillover.io/prefer": "west=high"}, ["spillover.io/prefer", "west=high", "west=3,east=1"]),
        ({"spillover.io/max-cost": "-1"}, ["spillover.io/max-cost", "-1", "non-negative decimal number"]),
        ({"spillover.io/clusters": "West!"}, ["spillover.io/clusters", "West!", "peer names"]),
    ],
)
def test_invalid_hints_are_denied_naming_annotation_value_and_accepted_forms(
    annotations: dict[str, str], mentions: list[str]
) -> None:
    pod = fixture_pod()
    pod["metadata"]["annotations"] = annotations
    response = mutate(review(pod), WebhookConfig())
    assert not response.allowed and response.patch is None
    assert response.status is not None and response.status.code == 400
    for text in mentions:
        assert text in response.status.message


def test_scheduler_name_is_set_only_when_configured_and_the_pod_asked_for_the_default() -> None:
    assert "schedulerName" not in json.dumps(json.loads(mutate(review(fixture_pod()), WebhookConfig()).patch or b"[]"))
    assert mutated(fixture_pod(), WebhookConfig(scheduler_name="spill"))["spec"]["schedulerName"] == "spill"
    explicit = fixture_pod()
    explicit["spec"]["schedulerName"] = "default-scheduler"
    assert mutated(explicit, WebhookConfig(scheduler_name="spill"))["spec"]["schedulerName"] == "spill"
    ours = fixture_pod()
    ours["spec"]["schedulerName"] = "spill"
    pod = mutated(ours, WebhookConfig(scheduler_name="spill"))
    assert pod["spec"]["schedulerName"] == "spill" and MARKER in pod["spec"]["containers"][0]["resources"]["requests"]


@pytest.mark.parametrize("config", [WebhookConfig(scheduler_name="spill"), WebhookConfig()])
def test_a_pod_naming_another_scheduler_is_left_alone_and_the_annotation_says_why(config: WebhookConfig) -> None:
    custom = fixture_pod()
    custom["spec"]["schedulerName"] = "gang-scheduler"
    pod = mutated(custom, config)
    assert pod["spec"] == custom["spec"], "no marker, no toleration, its own scheduler"
    why = pod["metadata"]["annotations"]["spillover.io/skipped"]
    assert "'gang-scheduler'" in why and repr(config.spillover_scheduler) in why and "will not spill" in why
    assert {k: v for k, v in pod["metadata"]["annotations"].items() if k != "spillover.io/skipped"} == (
        custom["metadata"].get("annotations") or {}
    )
    again = mutate(review(pod), config)
    assert again.allowed and again.patch is None, "a reinvocation changes nothing"
    bare = copy.deepcopy(custom)
    bare["metadata"].pop("annotations", None)
    assert "spillover.io/skipped" in mutated(bare, config)["metadata"]["annotations"]


def test_other_kinds_and_operations_are_allowed_untouched() -> None:
    update = mutate(review(operation="UPDATE"), WebhookConfig())
    assert update.allowed and update.patch is None and update.uid == "3f2a9c1e-5b7d-4e2f-8a1c-9d0e1f2a3b4c"
    configmap = mutate(review({"data": {}}, kind={"group": "", "version": "v1", "kind": "ConfigMap"}), WebhookConfig())
    assert configmap.allowed and configmap.patch is None
    binding = mutate(review(subResource="binding"), WebhookConfig())
    assert binding.allowed and binding.patch is None


def test_an_object_that_is_not_a_pod_is_a_bad_review() -> None:
    with pytest.raises(BadReview, match=r"not a readable Pod.*\$\.spec\.containers"):
        mutate(review({"spec": {"containers": "nope"}}), WebhookConfig())


def test_patch_is_valid_json_patch_that_the_apiserver_can_apply_to_the_raw_object() -> None:
    response = mutate(review(fixture_pod()), WebhookConfig())
    assert response.patch is not None
    ops = msgspec.json.decode(response.patch)
    assert all(op["op"] == "add" for op in ops)
    assert jsonpatch.JsonPatch(ops).apply(fixture_pod())


def test_a_misspelled_hint_key_is_admitted_with_a_warning_that_names_it_and_the_likely_key() -> None:
    pod = fixture_pod()
    pod["metadata"]["annotations"] = {"spillover.io/polciy": "remote-only", "spillover.io/max-cost": "2"}
    response = mutate(review(pod), WebhookConfig())
    assert response.allowed and response.patch is not None
    assert response.warnings is not None and len(response.warnings) == 1
    warning = response.warnings[0]
    assert "annotation spillover.io/polciy is not a Spillover hint and is ignored" in warning
    assert "did you mean spillover.io/policy?" in warning
    wire = msgspec.json.decode(msgspec.json.encode(response))
    assert wire["warnings"] == [warning], "the apiserver reads warnings from the response"


def test_known_keys_and_other_prefixes_carry_no_warning() -> None:
    pod = fixture_pod()
    pod["metadata"]["annotations"] = {
        "spillover.io/policy": "remote-first",
        "spillover.io/cluster": "east",  # written by Spillover; a copied pod may carry it
        "example.com/polciy": "x",
    }
    response = mutate(review(pod), WebhookConfig())
    assert response.allowed and response.warnings is None
    assert "warnings" not in msgspec.json.decode(msgspec.json.encode(response))
