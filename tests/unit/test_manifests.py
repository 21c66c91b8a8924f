"""The install manifests agree with themselves: every listed file exists and parses, and the
names one object uses to find another (ServiceAccount, labels, Service, ports) match. The lab
applies the ClusterRoles and FlowSchemas for real; this covers what only a cluster install uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def docs(base: str) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((MANIFESTS / base / "kustomization.yaml").read_text())
    out: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        out += [d for d in yaml.safe_load_all((MANIFESTS / base / name).read_text()) if d]
    return out


def one(found: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (match,) = [d for d in found if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return match


@pytest.mark.parametrize("base", ["base", "peer"])
def test_every_manifest_listed_parses_and_names_its_kind(base: str) -> None:
    found = docs(base)
    assert found and all(d.get("apiVersion") and d.get("kind") and d["metadata"].get("name") for d in found)


@pytest.mark.parametrize("base", ["base", "peer"])
def test_rbac_and_the_flowschema_name_the_serviceaccount_that_exists(base: str) -> None:
    found = docs(base)
    account = one(found, "ServiceAccount")["metadata"]
    binding = one(found, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    assert binding["roleRef"]["name"] == one(found, "ClusterRole")["metadata"]["name"]
    (rule,) = one(found, "FlowSchema")["spec"]["rules"]
    assert rule["subjects"] == [
        {"kind": "ServiceAccount", "serviceAccount": {"name": account["name"], "namespace": account["namespace"]}}
    ]


def test_the_deployment_service_budget_and_webhook_find_each_other() -> None:
    found = docs("base")
    deployment, service = one(found, "Deployment"), one(found, "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels == service["spec"]["selector"]
    assert one(found, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == labels
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == one(found, "ServiceAccount")["metadata"]["name"]
    )
    (hook,) = one(found, "MutatingWebhookConfiguration")["webhooks"]
    ref = hook["clientConfig"]["service"]
    assert (ref["name"], ref["namespace"]) == (service["metadata"]["name"], service["metadata"]["namespace"])
    port = next(p for p in service["spec"]["ports"] if p["port"] == ref["port"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    webhook_port = next(p["containerPort"] for p in container["ports"] if p["name"] == port["targetPort"])
    assert f"--webhook-port={webhook_port}" in container["args"]
    assert deployment["spec"]["replicas"] >= 2, "the webhook fails closed: one replica is an outage"


def test_the_peer_token_is_minted_for_the_peer_serviceaccount() -> None:
    found = docs("peer")
    secret = one(found, "Secret")
    account = one(found, "ServiceAccount")["metadata"]
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == account["name"]
    assert secret["metadata"]["namespace"] == account["namespace"]


def test_the_peer_clusterrole_grants_all_that_join_checks_for() -> None:
    from extender.peers.access import NEEDED

    granted = {
        (resource, verb)
        for rule in one(docs("peer"), "ClusterRole")["rules"]
        if rule["apiGroups"] == [""]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert set(NEEDED) <= granted


def test_the_opt_in_policy_guards_exactly_the_namespaces_the_webhook_leaves_alone() -> None:
    from extender import labels
    from extender.resources import SPILLABLE

    found = docs("base")
    policy = one(found, "ValidatingAdmissionPolicy", "spillover-opt-in")
    assert one(found, "ValidatingAdmissionPolicyBinding", "spillover-opt-in")["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    (hook,) = one(found, "MutatingWebhookConfiguration")["webhooks"]
    assert hook["namespaceSelector"] == {"matchLabels": {labels.ENABLED: "true"}}
    assert policy["spec"]["matchConstraints"]["namespaceSelector"] == {
        "matchExpressions": [{"key": labels.ENABLED, "operator": "NotIn", "values": ["true"]}]
    }
    expressions = " ".join(v["expression"] for v in policy["spec"]["variables"])
    assert f"'{SPILLABLE}'" in expressions and f"'{labels.VIRTUAL}'" in expressions


def test_the_budget_policy_accepts_exactly_the_caps_spillover_parses() -> None:
    from extender.budgets import CAP_FORM, MAX_SPEND

    found = docs("base")
    policy = one(found, "ValidatingAdmissionPolicy", "spillover-budgets")
    assert one(found, "ValidatingAdmissionPolicyBinding", "spillover-budgets")["spec"] == {
        "policyName": "spillover-budgets",
        "validationActions": ["Deny"],
    }
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["namespaces"] and rule["operations"] == ["CREATE", "UPDATE"]
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    assert f".matches('{CAP_FORM}')" in variables["wellFormed"]
    assert "size(variables.value) <= 32" in variables["wellFormed"]
    assert f"'{MAX_SPEND}'" in variables["present"]


def test_spillover_may_evict_and_create_pods_in_home_to_bring_them_home() -> None:
    role = one(docs("base"), "ClusterRole")
    granted = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert {("pods/eviction", "create"), ("pods", "create")} <= granted
