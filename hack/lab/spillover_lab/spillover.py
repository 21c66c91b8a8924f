"""Install and run Spillover in the lab: CRD, webhook registration, `spillover serve`, peers.

The webhook is registered by URL (https://127.0.0.1:PORT/mutate) with the lab CA's bundle, so
the real kube-apiserver calls the real process; the home scheduler already points its extender
at the port recorded for home.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from typing import Any

import yaml

from . import procs
from .api import Api, ApiError
from .lab import REPO, LabError, State, log

CRD = REPO / "manifests" / "base" / "crd" / "peerclusters.spillover.io.yaml"
HOME_RBAC = REPO / "manifests" / "base" / "rbac.yaml"
HOME_FLOWSCHEMA = REPO / "manifests" / "base" / "flowschema.yaml"
OPT_IN_POLICY = REPO / "manifests" / "base" / "opt-in-policy.yaml"
BUDGET_POLICY = REPO / "manifests" / "base" / "budget-policy.yaml"
PEER_RBAC = REPO / "manifests" / "peer" / "rbac.yaml"
PEER_FLOWSCHEMA = REPO / "manifests" / "peer" / "flowschema.yaml"
LAB_USER = {"kind": "User", "name": "spillover", "apiGroup": "rbac.authorization.k8s.io"}
"""The lab's Spillover identity (a client certificate) in every cluster, in place of the ServiceAccount."""
WEBHOOK_NAME = "spillover.io"
PEERS = {"east": {"cost": 1.0, "tier": 0}, "west": {"cost": 2.0, "tier": 0}}
"""The default lab's peers: east is cheaper, so it fills first."""


def home_api(state: State) -> Api:
    return Api(state.data["clusters"]["home"]["server"], state.root / "home" / "pki")


def _apply(api: Api, collection: str, body: dict[str, Any]) -> None:
    try:
        api.request("POST", collection, body)
    except ApiError as exc:
        if exc.status != 409:
            raise
        name = body["metadata"]["name"]
        existing = api.request("GET", f"{collection}/{name}")
        body = {**body, "metadata": {**body["metadata"], "resourceVersion": existing["metadata"]["resourceVersion"]}}
        api.request("PUT", f"{collection}/{name}", body)


def _manifest(path: Any, kind: str) -> dict[str, Any]:
    return next(doc for doc in yaml.safe_load_all(path.read_text()) if doc and doc.get("kind") == kind)


def grant(api: Api, rbac: Any, binding: str) -> None:
    """The ClusterRole of a Spillover manifest, bound to the lab's Spillover user."""
    role = _manifest(rbac, "ClusterRole")
    _apply(api, "/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": binding},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
        "subjects": [LAB_USER],
    }
    _apply(api, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body)


def prioritise(api: Api, flowschema: Any) -> None:
    """A Spillover FlowSchema, matching the lab's Spillover user instead of the ServiceAccount."""
    flow = _manifest(flowschema, "FlowSchema")
    flow["spec"]["rules"][0]["subjects"] = [{"kind": "User", "user": {"name": LAB_USER["name"]}}]
    _apply(api, "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas", flow)


def apply_opt_in_policy(api: Api) -> None:
    """The ValidatingAdmissionPolicies (and their bindings): prepared pods outside opted-in namespaces and
    bad spend caps are refused."""
    collections = {
        "ValidatingAdmissionPolicy": "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies",
        "ValidatingAdmissionPolicyBinding": "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
    }
    for policy in (OPT_IN_POLICY, BUDGET_POLICY):
        for doc in yaml.safe_load_all(policy.read_text()):
            if doc:
                _apply(api, collections[doc["kind"]], doc)


def install(state: State) -> None:
    """CRD, namespaces, RBAC, FlowSchema and the MutatingWebhookConfiguration in home (idempotent)."""
    api = home_api(state)
    grant(api, HOME_RBAC, "spillover-lab")
    prioritise(api, HOME_FLOWSCHEMA)
    apply_opt_in_policy(api)
    _apply(api, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", yaml.safe_load(CRD.read_text()))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            api.request("GET", "/apis/spillover.io/v1alpha1/peerclusters")
            break
        except ApiError:
            time.sleep(0.2)
    else:
        raise LabError("the PeerCluster CRD was not served within 30s")
    for ns in ("spillover-system",):
        _apply(api, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    port = state.ports("home")["webhook"]
    ca = base64.b64encode((state.root / "home" / "pki" / "ca.crt").read_bytes()).decode()
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_NAME},
        "webhooks": [
            {
                "name": "pods.spillover.io",
                "clientConfig": {"url": f"https://127.0.0.1:{port}/mutate", "caBundle": ca},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {"matchLabels": {"spillover.io/enabled": "true"}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "reinvocationPolicy": "IfNeeded",
                "timeoutSeconds": 5,
            }
        ],
    }
    _apply(api, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", webhook)


def serve_argv(state: State) -> list[str]:
    ports = state.ports("home")
    pki = state.root / "home" / "pki"
    # The interpreter itself, not a wrapper script (a pyenv shim would change argv[0], and the
    # lab identifies its processes by argv[0]).
    head = [sys.executable, "-m", "extender"]
    return [
        *head,
        "serve",
        f"--kubeconfig={state.root / 'home' / 'spillover.kubeconfig'}",
        "--bind-address=127.0.0.1",
        f"--extender-port={ports['extender']}",
        f"--webhook-port={ports['webhook']}",
        f"--metrics-port={ports['metrics']}",
        f"--tls-cert-file={pki / 'serving.crt'}",
        f"--tls-key-file={pki / 'serving.key'}",
        "--remote-pending-timeout=20",
        *(
            [
                f"--kubelet-port={ports['kubelet']}",
                f"--kubelet-client-ca-file={pki / 'ca.crt'}",
                # the lab's one CA signs every client: only the apiserver's kubelet client gets in
                "--kubelet-client-allowed-names=kube-apiserver-kubelet-client",
            ]
            if ports.get("kubelet")
            else []
        ),
    ]


def metrics_url(state: State) -> str:
    return f"http://127.0.0.1:{state.ports('home')['metrics']}"


def running_serve(state: State) -> procs.Proc | None:
    for proc in state.procs():
        if proc.name == "spillover-serve" and proc.alive():
            return proc
    return None


def start_serve(state: State, extra_args: tuple[str, ...] = (), timeout: float = 60.0) -> procs.Proc:
    """Start `spillover serve` (recorded in the lab state) and wait for /readyz."""
    proc = procs.start(
        "spillover-serve", [*serve_argv(state), *extra_args], state.root / "home" / "logs" / "spillover.log"
    )
    state.data["extra"] = [p for p in state.data.get("extra", []) if p["name"] != "spillover-serve"]
    state.add_proc(None, proc)
    wait_ready(state, proc, timeout)
    return proc


def wait_ready(state: State, proc: procs.Proc, timeout: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise LabError(f"spillover serve exited; its log:\n{procs.tail(proc.log, 30)}")
        try:
            with urllib.request.urlopen(metrics_url(state) + "/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise LabError(f"spillover serve not ready in {timeout}s ({last}); its log:\n{procs.tail(proc.log, 30)}")


def stop_serve(state: State) -> None:
    proc = running_serve(state)
    if proc is not None:
        procs.stop(proc)


def join_peers(state: State, peers: dict[str, dict[str, Any]] | None = None) -> None:
    """`spillover join` each peer, with the lab's spillover identity in that peer."""
    peers = peers or {name: spec for name, spec in PEERS.items() if name in state.cluster_names()}
    head = [sys.executable, "-m", "extender"]
    for name, spec in peers.items():
        peer_api = Api(state.data["clusters"][name]["server"], state.root / name / "pki")
        grant(peer_api, PEER_RBAC, "spillover-peer-lab")
        prioritise(peer_api, PEER_FLOWSCHEMA)
        cmd = [
            *head,
            "join",
            name,
            f"--peer-kubeconfig={state.root / name / 'spillover.kubeconfig'}",
            f"--kubeconfig={state.kubeconfig('home')}",
            f"--cost={spec.get('cost', 1.0)}",
            f"--tier={spec.get('tier', 0)}",
            f"--grace-period={spec.get('grace', 20)}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise LabError(f"spillover join {name} failed: {out.stderr.strip() or out.stdout.strip()}")
        log(f"joined peer {name}: {out.stdout.strip().replace(chr(10), ', ')}")


def ensure_running(state: State) -> procs.Proc:
    """Install, start serve and join peers, unless a healthy serve is already running."""
    install(state)
    proc = running_serve(state)
    if proc is None:
        log("starting spillover serve")
        proc = start_serve(state)
    join_peers(state)
    return proc


def label_namespace(api: Api, name: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"spillover.io/enabled": "true"}},
    }
    _apply(api, "/api/v1/namespaces", body)
