from __future__ import annotations

import base64
import json
from pathlib import Path

import msgspec
import pytest

from extender.wire.admission import JSON_PATCH, AdmissionResponse, review_decoder, review_response
from extender.wire.extender import (
    ExtenderBindingResult,
    ExtenderFilterResult,
    ExtenderPreemptionResult,
    HostPriority,
    MetaPod,
    MetaVictims,
    args_decoder,
    binding_args_decoder,
    encoder,
    preemption_args_decoder,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_filter_args_from_kube_scheduler_decode_pod_and_node_names() -> None:
    args = args_decoder.decode(fixture("extender/filter_args.json"))
    assert args.NodeNames == ["home-1", "home-2", "spillover-east", "spillover-west"]
    assert args.Pod.metadata.namespace == "shop"
    assert args.Pod.metadata.uid == "6b1f0c2e-3d4a-4e8b-9a71-2f5c8d9e0a13"
    assert args.Pod.spec.containers[0].resources is not None
    assert args.Pod.spec.containers[0].resources.requests == {
        "cpu": "500m",
        "memory": "256Mi",
        "spillover.io/spillable": "1",
    }
    assert bytes(args.Nodes) == b"null"


def test_prioritize_and_virtual_only_filter_fixtures_decode() -> None:
    assert args_decoder.decode(fixture("extender/prioritize_args.json")).NodeNames == [
        "spillover-east",
        "spillover-west",
    ]
    assert args_decoder.decode(fixture("extender/filter_args_virtual_only.json")).NodeNames == ["spillover-east"]


def test_nodes_are_kept_raw_and_never_parsed() -> None:
    body = b'{"Pod": {}, "NodeNames": [], "Nodes": {"items": [{"weird": [1, 2, {"x": null}]}]}}'
    args = args_decoder.decode(body)
    assert json.loads(bytes(args.Nodes)) == {"items": [{"weird": [1, 2, {"x": None}]}]}


def test_missing_node_names_is_an_error_naming_the_field() -> None:
    with pytest.raises(msgspec.ValidationError, match="NodeNames"):
        args_decoder.decode(b'{"Pod": {}, "Nodes": null}')


def test_wrong_types_name_the_path() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.NodeNames"):
        args_decoder.decode(b'{"Pod": {}, "NodeNames": 5}')
    with pytest.raises(msgspec.ValidationError, match=r"\$\.Pod\.metadata\.name"):
        args_decoder.decode(b'{"Pod": {"metadata": {"name": 1}}, "NodeNames": []}')


def test_preempt_args_with_meta_victims_decode() -> None:
    args = preemption_args_decoder.decode(fixture("extender/preempt_args.json"))
    assert args.NodeNameToVictims is None
    assert args.NodeNameToMetaVictims is not None
    east = args.NodeNameToMetaVictims["spillover-east"]
    assert east is not None and east.NumPDBViolations == 1
    assert [p.UID for p in east.Pods or ()] == [
        "a1b2c3d4-0000-4000-8000-000000000002",
        "a1b2c3d4-0000-4000-8000-000000000003",
    ]


def test_bind_args_decode() -> None:
    args = binding_args_decoder.decode(fixture("extender/bind_args.json"))
    assert (args.PodNamespace, args.PodName, args.Node) == ("shop", "web-7d4b9c6f5d-x8k2p", "spillover-east")


def test_results_encode_with_the_go_field_names() -> None:
    result = ExtenderFilterResult(
        NodeNames=["a"], FailedNodes={"b": "full"}, FailedAndUnresolvableNodes={"c": "policy"}, Error=""
    )
    assert json.loads(encoder.encode(result)) == {
        "NodeNames": ["a"],
        "FailedNodes": {"b": "full"},
        "FailedAndUnresolvableNodes": {"c": "policy"},
    }
    assert json.loads(encoder.encode([HostPriority(Host="a", Score=7)])) == [{"Host": "a", "Score": 7}]
    preemption = ExtenderPreemptionResult(
        NodeNameToMetaVictims={"n": MetaVictims(Pods=[MetaPod(UID="u")], NumPDBViolations=2)}
    )
    assert json.loads(encoder.encode(preemption)) == {
        "NodeNameToMetaVictims": {"n": {"Pods": [{"UID": "u"}], "NumPDBViolations": 2}}
    }
    assert json.loads(encoder.encode(ExtenderBindingResult(Error="no"))) == {"Error": "no"}


def test_an_empty_filter_result_still_writes_node_names_because_null_means_nothing_passed() -> None:
    assert json.loads(encoder.encode(ExtenderFilterResult(NodeNames=[]))) == {"NodeNames": []}


def test_admission_review_decodes_and_the_pod_is_decoded_lazily() -> None:
    review = review_decoder.decode(fixture("admission/pod_create.json"))
    request = review.request
    assert request is not None
    assert request.is_pod and request.operation == "CREATE" and request.namespace == "shop"
    pod = request.pod()
    assert pod.metadata.generate_name == "web-7d4b9c6f5d-"
    assert pod.metadata.annotations == {"spillover.io/clusters": "east,west"}


def test_admission_response_has_api_version_kind_and_a_base64_patch() -> None:
    body = review_response(AdmissionResponse(uid="u1", allowed=True, patch=b'[{"op":"add"}]', patch_type=JSON_PATCH))
    decoded = json.loads(body)
    assert decoded["apiVersion"] == "admission.k8s.io/v1"
    assert decoded["kind"] == "AdmissionReview"
    assert decoded["response"]["uid"] == "u1"
    assert decoded["response"]["patchType"] == "JSONPatch"
    assert base64.b64decode(decoded["response"]["patch"]) == b'[{"op":"add"}]'
