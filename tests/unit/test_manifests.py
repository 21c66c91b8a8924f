"""The install manifests agree with themselves, as kustomize renders them (the lab's kubectl):
every mode and its cert-manager variant builds, and the names, ports, addresses and files one
object uses to find another match. The lab applies these very objects and runs the Deployments'
containers (tests/e2e); here, what a cluster install needs beyond that, and that the lab's
command lines cannot drift from the manifests."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from spillover_lab import build, manifests

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
Docs = list[dict[str, Any]]


@cache
def rendered(folder: str) -> tuple[dict[str, Any], ...]:
    kubectl = build.ensure_built(verbose=False) / "kubectl"
    return tuple(manifests.render(kubectl, MANIFESTS / folder))


def docs(folder: str) -> Docs:
    return list(rendered(folder))


def one(found: Docs, kind: str, name: str | None = None) -> dict[str, Any]:
    return manifests.one(found, kind, name)


def args_of(container: dict[str, Any]) -> dict[str, str]:
    return {a.split("=", 1)[0]: a.split("=", 1)[1] if "=" in a else "" for a in container.get("args", [])}


def pod(found: Docs) -> dict[str, Any]:
    spec: dict[str, Any] = one(found, "Deployment")["spec"]["template"]["spec"]
    return spec


FOLDERS = [
    "own-scheduler",
    "extender",
    "cert-manager/own-scheduler",
    "cert-manager/extender",
    "kubelet-api/own-scheduler",
    "kubelet-api/extender",
    "peer",
    "policies/extender",
    "policies/own-scheduler",
]


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_install_folder_builds_with_kustomize_into_named_objects(folder: str) -> None:
    found = docs(folder)
    assert found and all(d.get("apiVersion") and d.get("kind") and d["metadata"].get("name") for d in found)


@pytest.mark.parametrize("folder", ["own-scheduler", "extender", "peer"])
def test_rbac_and_the_flowschema_name_the_serviceaccount_that_exists(folder: str) -> None:
    found = docs(folder)
    account = one(found, "ServiceAccount")["metadata"]
    subject = {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    bindings = [d for d in found if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert bindings and all(b["subjects"] == [subject] for b in bindings)
    roles = {(d["kind"], d["metadata"]["name"]) for d in found if d["kind"] in ("ClusterRole", "Role")}
    for binding in bindings:
        ref = binding["roleRef"]
        assert (ref["kind"], ref["name"]) in roles or ref["name"].startswith(("system:", "extension-apiserver"))
    (rule,) = one(found, "FlowSchema")["spec"]["rules"]
    assert rule["subjects"] == [
        {"kind": "ServiceAccount", "serviceAccount": {"name": account["name"], "namespace": account["namespace"]}}
    ]


@pytest.mark.parametrize("mode", manifests.MODES)
def test_the_deployment_service_budget_and_webhook_find_each_other(mode: str) -> None:
    found = docs(mode)
    deployment, service = one(found, "Deployment"), one(found, "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert one(found, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pod(found)["serviceAccountName"] == one(found, "ServiceAccount")["metadata"]["name"]
    (hook,) = one(found, "MutatingWebhookConfiguration")["webhooks"]
    ref = hook["clientConfig"]["service"]
    assert (ref["name"], ref["namespace"]) == (service["metadata"]["name"], service["metadata"]["namespace"])
    port = next(p for p in service["spec"]["ports"] if p["port"] == ref["port"])
    spillover = manifests.container(deployment, "spillover")
    webhook_port = next(p["containerPort"] for p in spillover["ports"] if p["name"] == port["targetPort"])
    assert args_of(spillover)["--webhook-port"] == str(webhook_port)
    assert deployment["spec"]["replicas"] >= 2, "the webhook fails closed: one replica is an outage"


@pytest.mark.parametrize("mode", manifests.MODES)
def test_containers_run_unprivileged_on_a_read_only_root_filesystem(mode: str) -> None:
    spec = pod(docs(mode))
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] != 0
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"]
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), "a writable /tmp"
        assert container["resources"]["requests"] and container["readinessProbe"] and container["livenessProbe"]


def test_the_own_scheduler_calls_its_extender_on_loopback_under_its_own_name_and_lease() -> None:
    found = docs("own-scheduler")
    deployment = one(found, "Deployment")
    spillover = args_of(manifests.container(deployment, "spillover"))
    config = manifests.scheduler_config(found, deployment)
    (extender,) = config["extenders"]
    assert extender["urlPrefix"] == f"http://{spillover['--extender-bind-address']}:{spillover['--extender-port']}"
    assert spillover["--extender-bind-address"] == "127.0.0.1", "nothing outside the pod reaches the extender"
    (profile,) = config["profiles"]
    assert profile["schedulerName"] == spillover["--scheduler-name"] != "default-scheduler"
    assert 0 < profile["percentageOfNodesToScore"] <= 20, "bounded names per filter call (README, Installing)"
    assert extender["managedResources"] == [{"name": "spillover.io/spillable", "ignoredByScheduler": True}]
    election = config["leaderElection"]
    assert election["leaderElect"] and election["resourceName"] not in ("kube-scheduler", "spillover-controller")
    lease_role = one(found, "Role", "spillover-scheduler-lease")
    assert lease_role["metadata"]["namespace"] == election["resourceNamespace"]
    assert any(election["resourceName"] in rule.get("resourceNames", []) for rule in lease_role["rules"])
    assert "extender" not in {p["name"] for p in one(found, "Service")["spec"]["ports"]}, "no extender port"
    granted = {d["roleRef"]["name"] for d in found if d["kind"] == "ClusterRoleBinding"}
    assert {"system:kube-scheduler", "system:volume-scheduler"} <= granted


def test_the_extender_is_reached_at_the_fixed_cluster_ip_over_https_by_the_scheduler_certificate_only() -> None:
    found = docs("extender")
    deployment = one(found, "Deployment")
    spillover = manifests.container(deployment, "spillover")
    flags = args_of(spillover)
    service = one(found, "Service")
    port = next(p for p in service["spec"]["ports"] if p["name"] == "extender")
    assert port["targetPort"] in {p["name"] for p in spillover["ports"]}
    snippet = yaml.safe_load((MANIFESTS / "extender" / "kube-scheduler-config.yaml").read_text())
    (extender,) = snippet["extenders"]
    assert extender["urlPrefix"] == f"https://{service['spec']['clusterIP']}:{port['port']}"
    assert extender["enableHTTPS"]
    assert extender["tlsConfig"]["serverName"] == f"spillover.{service['metadata']['namespace']}.svc"
    mounts = {m["mountPath"]: m["name"] for m in spillover["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod(found)["volumes"] if "secret" in v}
    for flag in ("--extender-tls-cert-file", "--extender-tls-key-file", "--extender-client-ca-file"):
        folder = flags[flag].rsplit("/", 1)[0]
        assert secrets[mounts[folder]] == "spillover-extender-tls", flag
    script = (REPO / "hack" / "install" / "self-signed-certs").read_text()
    assert f"extender_ip={service['spec']['clusterIP']}" in script, "the script's default certificate IP"
    assert re.search(rf"sign client {flags['--extender-client-names']} ", script), "the script's client CN"
    client = one(docs("cert-manager/extender"), "Certificate", "spillover-scheduler-client")
    assert client["spec"]["commonName"] == flags["--extender-client-names"]
    assert "client auth" in client["spec"]["usages"]


@pytest.mark.parametrize("mode", manifests.MODES)
def test_cert_manager_issues_every_secret_the_pod_mounts_and_injects_the_webhook_bundle(mode: str) -> None:
    found = docs(f"cert-manager/{mode}")
    issued = {d["spec"]["secretName"] for d in found if d["kind"] == "Certificate"}
    mounted = {v["secret"]["secretName"] for v in pod(found)["volumes"] if "secret" in v}
    assert mounted <= issued
    webhook = one(found, "MutatingWebhookConfiguration")
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "spillover-system/spillover-webhook"


@pytest.mark.parametrize("mode", manifests.MODES)
def test_one_images_entry_names_spillovers_image_and_the_makefile_builds_that_image(mode: str) -> None:
    kustomization = yaml.safe_load((MANIFESTS / mode / "kustomization.yaml").read_text())
    (entry,) = [i for i in kustomization["images"] if i["name"] == "spillover"]
    image = f"{entry['newName']}:{entry['newTag']}"
    assert {c["image"] for c in pod(docs(mode))["containers"]} >= {image}
    makefile = (REPO / "Makefile").read_text()
    assert re.search(rf"^IMAGE \?= {re.escape(entry['newName'])}:\$\(VERSION\)$", makefile, re.M)
    version = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert version and version.group(1) == entry["newTag"]


@pytest.mark.parametrize("mode", manifests.MODES)
def test_the_lab_runs_the_manifests_arguments_changing_only_ports_addresses_and_mounted_paths(mode: str) -> None:
    found = docs(mode)
    deployment = one(found, "Deployment")
    for spec in deployment["spec"]["template"]["spec"]["containers"]:
        mounts = {m["mountPath"]: Path(f"/lab/{m['name']}") for m in spec.get("volumeMounts", [])}
        translation = manifests.Translation(
            program=["PROGRAM"],
            ports={"--extender-port": 1, "--webhook-port": 2, "--metrics-port": 3, "--secure-port": 4},
            mounts=mounts,
            env=manifests.container_env(spec, "pod-0", "spillover-system"),
        )
        argv = translation.argv(spec)
        assert argv[0] == "PROGRAM" and len(argv) == 1 + len(spec["args"])
        for original, run in zip(spec["args"], argv[1:], strict=True):
            flag, _, value = original.partition("=")
            if run == original:
                continue
            explained = (
                flag in translation.ports
                or (flag.endswith("bind-address") and value == "0.0.0.0" and run == f"{flag}=127.0.0.1")
                or any(value.startswith(m) and run.startswith(f"{flag}=/lab/") for m in mounts)
            )
            assert explained, f"{mode}/{spec['name']}: the lab runs {shlex.quote(run)} for {shlex.quote(original)}"


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


def test_the_webhook_fails_open_only_into_a_guard_that_refuses_what_it_did_not_prepare() -> None:
    """failurePolicy Ignore is fail-closed only with the guard: bound, over exactly the webhook's
    namespaces and pods, refusing (Deny) with the way out in its message."""
    from extender import labels

    found = docs("base")
    (hook,) = one(found, "MutatingWebhookConfiguration")["webhooks"]
    guard = one(found, "ValidatingAdmissionPolicy", "spillover-webhook-guard")
    assert hook["failurePolicy"] == "Ignore"
    assert one(found, "ValidatingAdmissionPolicyBinding", "spillover-webhook-guard")["spec"] == {
        "policyName": "spillover-webhook-guard",
        "validationActions": ["Deny"],
    }
    assert guard["spec"]["matchConstraints"]["namespaceSelector"] == hook["namespaceSelector"]
    assert guard["spec"]["matchConstraints"]["resourceRules"][0]["operations"] == hook["rules"][0]["operations"]
    assert guard["spec"]["failurePolicy"] == "Fail"
    (check,) = guard["spec"]["validations"]
    assert labels.VIRTUAL in check["expression"]
    for way_out in ("spillover.io/enabled", "manifests/policies", "validatingadmissionpolicybinding"):
        assert way_out in check["messageExpression"]


@pytest.mark.parametrize(("folder", "scheduler"), [("extender", "default-scheduler"), ("own-scheduler", "spillover")])
def test_the_policies_hand_pods_to_the_scheduler_the_install_mode_s_webhook_names(folder: str, scheduler: str) -> None:
    """The mutating policy's scheduler is the one the install mode's webhook is given (the own
    scheduler's --scheduler-name), so policies and webhook prepare the same pods the same way."""
    policy = one(docs(f"policies/{folder}"), "MutatingAdmissionPolicy", "spillover-prepare-pods")
    (variable,) = [v for v in policy["spec"]["variables"] if v["name"] == "scheduler"]
    assert variable["expression"] == f"'{scheduler}'"
    if folder == "own-scheduler":
        container = next(c for c in pod(docs(folder))["containers"] if c["name"] == "spillover")
        assert args_of(container)["--scheduler-name"] == scheduler


@pytest.mark.parametrize("mode", manifests.MODES)
def test_the_kubelet_api_component_serves_logs_on_the_pod_ip_to_the_apiservers_client_certificate_only(
    mode: str,
) -> None:
    plain, found = pod(docs(mode)), pod(docs(f"kubelet-api/{mode}"))
    (before,) = [c for c in plain["containers"] if c["name"] == "spillover"]
    (after,) = [c for c in found["containers"] if c["name"] == "spillover"]
    flags = args_of(after)
    assert {k: v for k, v in flags.items() if not k.startswith("--kubelet-")} == args_of(before)
    ports = {p["name"]: p["containerPort"] for p in after["ports"]}
    assert ports["kubelet"] == int(flags["--kubelet-port"]) == 10250
    env = {e["name"]: e for e in after["env"]}
    assert flags["--kubelet-address"] == "$(POD_IP)"
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert flags["--kubelet-client-allowed-names"] == "kube-apiserver-kubelet-client"
    mounts = {m["mountPath"]: m["name"] for m in after["volumeMounts"]}
    ca = Path(flags["--kubelet-client-ca-file"])
    volume = next(v for v in found["volumes"] if v["name"] == mounts[str(ca.parent)])
    assert volume["configMap"] == {"name": "kube-root-ca.crt"} and ca.name == "ca.crt"
    assert "--tls-cert-file" in flags  # the kubelet API's serving certificate
    others = [c for c in found["containers"] if c["name"] != "spillover"]
    assert others == [c for c in plain["containers"] if c["name"] != "spillover"]
