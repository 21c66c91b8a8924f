"""Spillover in the lab, installed as a user installs it, in either install mode.

``install`` applies the kustomize output of manifests/<mode> (all but the Deployment, whose
containers the lab runs itself) with the lab's kubectl, and makes the certificates with
hack/install/self-signed-certs, the documented way without cert-manager. The webhook's client
config is the one thing rewritten: a URL to the local process (plus its CA), because the lab's
apiserver has no pod network to reach a Service through.

``start`` runs the Deployment's containers as local processes (``manifests.Translation`` says
what changes): in the own-scheduler mode (the default) Spillover and a second kube-scheduler
started from the manifest's KubeSchedulerConfiguration, home's own scheduler untouched; in the
extender mode Spillover alone, and home's kube-scheduler restarted with the extender entry of
manifests/extender/kube-scheduler-config.yaml (HTTPS, the scheduler's client certificate).
Both processes authenticate with a token of the ServiceAccount the manifests create, so the
RBAC and FlowSchemas are the manifests' own. Peers get manifests/peer and join with its token.
"""

from __future__ import annotations

import base64
import datetime
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from . import manifests, procs
from .api import Api, ApiError
from .lab import REPO, LabError, State, log, replace_component, restore_component

DEFAULT_MODE = "own-scheduler"
"""What `make lab` and the e2e tests run; a test asks for the other with ``ensure_running``."""
NAMESPACE = "spillover-system"
SERVE = "spillover-serve"
SCHEDULER = "spillover-scheduler"
LAB_POD = "spillover-lab-0"
"""The name the lab's Spillover "pod" goes by (POD_NAME, its leader identity)."""
LAB_FLAGS = ("--remote-pending-timeout=20",)
"""A setting the lab adds to the manifest's arguments: tests wait for a withdrawal from a peer,
and the default minute would make them slow."""
CERTS_SCRIPT = REPO / "hack" / "install" / "self-signed-certs"
PEER_MANIFESTS = REPO / "manifests" / "peer"
TOKEN_SECONDS = 7 * 24 * 3600
PEERS = {"east": {"cost": 1.0, "tier": 0}, "west": {"cost": 2.0, "tier": 0}}
"""The default lab's peers: east is cheaper, so it fills first."""
DEPLOYMENTS = {"own-scheduler": "spillover-scheduler", "extender": "spillover"}


def home_api(state: State) -> Api:
    return Api(state.data["clusters"]["home"]["server"], state.root / "home" / "pki")


def kubectl_path(state: State) -> Path:
    return Path(state.data["bin_dir"]) / "kubectl"


def certs_dir(state: State) -> Path:
    """Where self-signed-certs keeps Spillover's CA and certificates for this lab."""
    return state.root / "home" / "certs"


def current_mode(state: State) -> str | None:
    mode: str | None = state.data.get("spillover", {}).get("mode")
    return mode


def _kubectl(state: State, cluster: str, *args: str, stdin: str | None = None) -> str:
    argv = [str(kubectl_path(state)), f"--kubeconfig={state.kubeconfig(cluster)}", *args]
    out = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise LabError(f"kubectl {' '.join(args)} in {cluster} failed: {out.stderr.strip()}")
    return out.stdout


def render(state: State, mode: str) -> list[dict[str, Any]]:
    if mode not in manifests.MODES:
        raise LabError(f"unknown install mode {mode!r}; the modes are {', '.join(manifests.MODES)}")
    return manifests.render(kubectl_path(state), manifests.MANIFESTS / mode)


def _webhook_for_the_lab(state: State, doc: dict[str, Any]) -> dict[str, Any]:
    """The manifest's webhook with only its client config changed: the local process's URL."""
    port = state.ports("home")["webhook"]
    for hook in doc["webhooks"]:
        path = hook["clientConfig"].get("service", {}).get("path", "/mutate")
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}"}
        ca = certs_dir(state) / "ca.crt"
        if ca.exists():  # a reinstall keeps working before the script patches the bundle again
            hook["clientConfig"]["caBundle"] = base64.b64encode(ca.read_bytes()).decode()
    return doc


def install(state: State, mode: str = DEFAULT_MODE) -> list[dict[str, Any]]:
    """Apply the mode's manifests (all but the Deployment) and its certificates; idempotent."""
    rendered = render(state, mode)
    applied = []
    for doc in rendered:
        if doc["kind"] == "Deployment":
            continue
        if doc["kind"] == "MutatingWebhookConfiguration":
            doc = _webhook_for_the_lab(state, doc)
        applied.append(doc)
    crds = [d for d in applied if d["kind"] == "CustomResourceDefinition"]
    _kubectl(state, "home", "apply", "-f", "-", stdin=yaml.safe_dump_all(crds))
    _kubectl(
        state,
        "home",
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        *(f"crd/{d['metadata']['name']}" for d in crds),
    )
    rest = [d for d in applied if d["kind"] != "CustomResourceDefinition"]
    _make_room_for_fixed_addresses(state, rest)
    _kubectl(state, "home", "apply", "-f", "-", stdin=yaml.safe_dump_all(rest))
    _certificates(state, mode)
    return rendered


def _certificates(state: State, mode: str, *more: str) -> str:
    env = dict(
        os.environ, KUBECONFIG=str(state.kubeconfig("home")), PATH=f"{state.data['bin_dir']}:{os.environ['PATH']}"
    )
    out = subprocess.run(
        [str(CERTS_SCRIPT), "--mode", mode, "--dir", str(certs_dir(state)), "--san", "127.0.0.1", *more],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise LabError(f"hack/install/self-signed-certs failed: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


def _make_room_for_fixed_addresses(state: State, docs: list[dict[str, Any]]) -> None:
    """A Service's clusterIP cannot change: one the other mode made without the fixed address is
    deleted first (a user switching modes uninstalls first; the lab switches in place)."""
    api = home_api(state)
    for doc in docs:
        wanted = doc.get("spec", {}).get("clusterIP") if doc["kind"] == "Service" else None
        if not wanted:
            continue
        path = f"/api/v1/namespaces/{doc['metadata']['namespace']}/services/{doc['metadata']['name']}"
        try:
            existing = api.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                continue
            raise
        if existing["spec"].get("clusterIP") != wanted:
            api.request("DELETE", path)


def sync_volumes(state: State) -> None:
    """Write the running pod's volumes again from their Secrets, as a kubelet does after a
    Secret changes (certificate rotation); Spillover picks the files up by itself."""
    mode = current_mode(state)
    if mode is None:
        raise LabError("Spillover is not running in this lab")
    rendered = render(state, mode)
    deployment = manifests.one(rendered, "Deployment", DEPLOYMENTS[mode])
    pod_dir = state.root / "home" / "pods" / DEPLOYMENTS[mode]
    manifests.volume_files(home_api(state), deployment, rendered, pod_dir / "volumes")


def renew_certificates(state: State) -> str:
    """hack/install/self-signed-certs --renew: new certificates from the same CA, in the Secrets
    and (extender mode) the scheduler's files; returns what the script printed."""
    return _certificates(state, current_mode(state) or DEFAULT_MODE, "--renew")


def service_account_kubeconfig(state: State, cluster: str, path: Path) -> Path:
    """A kubeconfig with a token of spillover-system/spillover (TokenRequest, as a kubelet asks)."""
    api = Api(state.data["clusters"][cluster]["server"], state.root / cluster / "pki")
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": TOKEN_SECONDS},
    }
    answer = api.request("POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/spillover/token", body)
    return manifests.token_kubeconfig(
        path,
        state.data["clusters"][cluster]["server"],
        state.root / cluster / "pki" / "ca.crt",
        answer["status"]["token"],
        "system:serviceaccount:spillover-system:spillover",
    )


def _serve_argv(state: State, deployment: dict[str, Any], mounts: dict[str, Path], identity: Path) -> list[str]:
    spec = manifests.container(deployment, "spillover")
    ports = state.ports("home")
    translation = manifests.Translation(
        # The interpreter itself, not a wrapper script (a pyenv shim would change argv[0], and
        # the lab identifies its processes by argv[0]).
        program=[sys.executable, "-m", "extender"],
        ports={
            "--extender-port": ports["extender"],
            "--webhook-port": ports["webhook"],
            "--metrics-port": ports["metrics"],
        },
        mounts=mounts,
        env=manifests.container_env(spec, LAB_POD, NAMESPACE),
        extra=[f"--kubeconfig={identity}", *LAB_FLAGS, *_kubelet_api_flags(state)],
    )
    return translation.argv(spec)


def _kubelet_api_flags(state: State) -> list[str]:
    """The virtual nodes' kubelet API (`kubectl logs` on spilled pods), which a cluster enables
    with its apiserver's kubelet-client CA (README): here the lab's CA, whose one certificate
    named kube-apiserver-kubelet-client is the apiserver's."""
    port = state.ports("home").get("kubelet")
    if not port:
        return []
    return [
        f"--kubelet-port={port}",
        f"--kubelet-client-ca-file={state.root / 'home' / 'pki' / 'ca.crt'}",
        "--kubelet-client-allowed-names=kube-apiserver-kubelet-client",
    ]


def _scheduler_argv(
    state: State, rendered: list[dict[str, Any]], deployment: dict[str, Any], mounts: dict[str, Path], identity: Path
) -> list[str]:
    """The own scheduler's command line, and its configuration file as the container reads it:
    the manifest's, with the in-cluster connection replaced by the token kubeconfig and the
    extender's port by the lab's."""
    spec = manifests.container(deployment, "kube-scheduler")
    config = manifests.scheduler_config(rendered, deployment)
    config.setdefault("clientConnection", {})["kubeconfig"] = str(identity)
    for extender in config.get("extenders", []):
        extender["urlPrefix"] = _with_port(extender["urlPrefix"], state.ports("home")["extender"])
    folder = state.root / "home" / "pods" / SCHEDULER / "lab-config"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    config_mount = next(a.split("=", 1)[1] for a in spec["args"] if a.startswith("--config="))
    mount = config_mount.rsplit("/", 1)[0]
    port = state.ports("home")["spillover_scheduler"]
    translation = manifests.Translation(
        program=[str(Path(state.data["bin_dir"]) / "kube-scheduler")],
        ports={"--secure-port": port},
        mounts={**mounts, mount: folder},
        env=manifests.container_env(spec, LAB_POD, NAMESPACE),
        extra=[
            f"--secure-port={port}",
            f"--bind-address={procs.LOOPBACK}",
            f"--authentication-kubeconfig={identity}",
            f"--authorization-kubeconfig={identity}",
        ],
    )
    return translation.argv(spec)


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


def control_plane_scheduler_config(state: State) -> Path:
    """manifests/extender/kube-scheduler-config.yaml for home's kube-scheduler: the lab's
    scheduler kubeconfig, the local extender's port and the certificate files made here."""
    config = yaml.safe_load((manifests.MANIFESTS / "extender" / "kube-scheduler-config.yaml").read_text())
    config["clientConnection"]["kubeconfig"] = str(state.root / "home" / "scheduler.kubeconfig")
    certs = certs_dir(state)
    for extender in config["extenders"]:
        extender["urlPrefix"] = _with_port("https://127.0.0.1", state.ports("home")["extender"])
        tls = extender["tlsConfig"]
        tls["caFile"], tls["certFile"], tls["keyFile"] = (
            str(certs / n) for n in ("ca.crt", "client.crt", "client.key")
        )
    path = state.root / "home" / "extender-scheduler-config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def metrics_url(state: State) -> str:
    return f"http://127.0.0.1:{state.ports('home')['metrics']}"


def running_serve(state: State) -> procs.Proc | None:
    return _running(state, SERVE)


def _running(state: State, name: str) -> procs.Proc | None:
    for proc in state.procs():
        if proc.name == name and proc.alive():
            return proc
    return None


def _start_extra(state: State, name: str, argv: list[str], env: dict[str, str]) -> procs.Proc:
    proc = procs.start(name, argv, state.root / "home" / "logs" / f"{name}.log", env=dict(os.environ, **env))
    state.data["extra"] = [p for p in state.data.get("extra", []) if p["name"] != name]
    state.add_proc(None, proc)
    return proc


def start_serve(state: State, extra_args: tuple[str, ...] = (), timeout: float = 60.0) -> procs.Proc:
    """(Re)start Spillover with the command line of the running mode and wait for /readyz."""
    recorded = state.data.get("spillover", {})
    if "serve_argv" not in recorded:
        raise LabError("Spillover was never started in this lab; use ensure_running")
    proc = _start_extra(state, SERVE, [*recorded["serve_argv"], *extra_args], recorded.get("serve_env", {}))
    wait_ready(state, proc, timeout)
    return proc


def wait_ready(state: State, proc: procs.Proc, timeout: float) -> None:
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


def _wait_leader(state: State, namespace: str, lease: str, proc: procs.Proc, since: datetime.datetime) -> None:
    """Until the scheduler just started holds its Lease (renewed after it started)."""
    api = home_api(state)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not proc.alive():
            raise LabError(f"{proc.name} exited; its log:\n{procs.tail(proc.log, 30)}")
        try:
            spec = api.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lease}")["spec"]
            renewed = datetime.datetime.strptime(spec.get("renewTime", ""), "%Y-%m-%dT%H:%M:%S.%fZ")
            if spec.get("holderIdentity") and renewed.replace(tzinfo=datetime.UTC) >= since:
                return
        except (ApiError, ValueError):
            pass
        time.sleep(0.2)
    raise LabError(
        f"{proc.name} did not take Lease {namespace}/{lease} within 60s; its log:\n{procs.tail(proc.log, 30)}"
    )


def start(
    state: State, mode: str = DEFAULT_MODE, rendered: list[dict[str, Any]] | None = None, scheduler: bool = True
) -> None:
    """Run the mode's Deployment as local processes (after ``install``); ``scheduler=False``
    leaves the scheduler side alone (the throughput bench starts schedulers of its own)."""
    rendered = rendered or render(state, mode)
    deployment = manifests.one(rendered, "Deployment", DEPLOYMENTS[mode])
    pod_dir = state.root / "home" / "pods" / DEPLOYMENTS[mode]
    mounts = manifests.volume_files(home_api(state), deployment, rendered, pod_dir / "volumes")
    identity = service_account_kubeconfig(state, "home", pod_dir / "serviceaccount.kubeconfig")
    spec = manifests.container(deployment, "spillover")
    serve_env = manifests.container_env(spec, LAB_POD, NAMESPACE)
    state.data["spillover"] = {
        "mode": mode,
        "serve_argv": _serve_argv(state, deployment, mounts, identity),
        "serve_env": serve_env,
    }
    state.save()
    log(f"starting Spillover ({mode} mode) as manifests/{mode} says")
    proc = _start_extra(state, SERVE, state.data["spillover"]["serve_argv"], serve_env)
    wait_ready(state, proc, 60)
    since = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    if not scheduler:
        return
    if mode == "own-scheduler":
        argv = _scheduler_argv(state, rendered, deployment, mounts, identity)
        config = manifests.scheduler_config(rendered, deployment)["leaderElection"]
        own = _start_extra(state, SCHEDULER, argv, {})
        _wait_leader(state, config["resourceNamespace"], config["resourceName"], own, since)
    else:
        argv = [
            str(Path(state.data["bin_dir"]) / "kube-scheduler"),
            f"--config={control_plane_scheduler_config(state)}",
            f"--authentication-kubeconfig={state.root / 'home' / 'scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={state.root / 'home' / 'scheduler.kubeconfig'}",
            f"--bind-address={procs.LOOPBACK}",
            f"--secure-port={state.ports('home')['scheduler']}",
            "--v=1",
        ]
        replaced = replace_component(state, "home", "kube-scheduler", argv)
        _wait_leader(state, "kube-system", "kube-scheduler", replaced, since)


def stop(state: State) -> None:
    """Stop Spillover and its scheduler; home's kube-scheduler goes back to its plain self."""
    for name in (SCHEDULER, SERVE):
        proc = _running(state, name)
        if proc is not None:
            procs.stop(proc)
    if current_mode(state) == "extender":
        restore_component(state, "home", "kube-scheduler")
    state.data.pop("spillover", None)
    state.save()


def stop_serve(state: State) -> None:
    """Stop Spillover (and its scheduler); kept for callers of the name."""
    stop(state)


def _healthy(state: State, mode: str) -> bool:
    if current_mode(state) != mode or running_serve(state) is None:
        return False
    return mode != "own-scheduler" or _running(state, SCHEDULER) is not None


def ensure_running(state: State, mode: str = DEFAULT_MODE) -> procs.Proc:
    """Spillover installed and running in ``mode`` (switching modes if need be), peers joined."""
    if not _healthy(state, mode):
        if current_mode(state) is not None:
            log(f"switching Spillover from the {current_mode(state)} mode to the {mode} mode")
        stop(state)
        rendered = install(state, mode)
        start(state, mode, rendered)
    missing = {name: spec for name, spec in _default_peers(state).items() if not _joined(state, name)}
    if missing:
        join_peers(state, missing)
    proc = running_serve(state)
    assert proc is not None
    return proc


def peer_kubeconfig(state: State, name: str) -> Path:
    """manifests/peer applied in the peer, and a kubeconfig with its ServiceAccount token Secret
    (the README's recipe for a peer kubeconfig)."""
    _kubectl(state, name, "apply", "-k", str(PEER_MANIFESTS))
    api = Api(state.data["clusters"][name]["server"], state.root / name / "pki")
    deadline = time.monotonic() + 30
    token = ""
    while not token:
        secret = api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/spillover-token")
        token = (secret.get("data") or {}).get("token", "")
        if not token:
            if time.monotonic() > deadline:
                raise LabError(f"{name}: the token Secret spillover-system/spillover-token was never filled in")
            time.sleep(0.2)
    return manifests.token_kubeconfig(
        state.root / name / "spillover-token.kubeconfig",
        state.data["clusters"][name]["server"],
        state.root / name / "pki" / "ca.crt",
        base64.b64decode(token).decode(),
        "spillover",
    )


def _default_peers(state: State) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in PEERS.items() if name in state.cluster_names()}


def _joined(state: State, name: str) -> bool:
    """A PeerCluster of that name exists and is not being deleted (a mode switch keeps them)."""
    try:
        peer = home_api(state).request("GET", f"/apis/spillover.io/v1alpha1/peerclusters/{name}")
    except ApiError:
        return False
    return not peer["metadata"].get("deletionTimestamp")


def join_peers(state: State, peers: dict[str, dict[str, Any]] | None = None) -> None:
    """`spillover join` each peer, with the identity manifests/peer makes there."""
    peers = peers or _default_peers(state)
    head = [sys.executable, "-m", "extender"]
    for name, spec in peers.items():
        cmd = [
            *head,
            "join",
            name,
            f"--peer-kubeconfig={peer_kubeconfig(state, name)}",
            f"--kubeconfig={state.kubeconfig('home')}",
            f"--cost={spec.get('cost', 1.0)}",
            f"--tier={spec.get('tier', 0)}",
            f"--grace-period={spec.get('grace', 20)}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise LabError(f"spillover join {name} failed: {out.stderr.strip() or out.stdout.strip()}")
        log(f"joined peer {name}: {out.stdout.strip().replace(chr(10), ', ')}")


def label_namespace(api: Api, name: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"spillover.io/enabled": "true"}},
    }
    try:
        api.request("POST", "/api/v1/namespaces", body)
    except ApiError as exc:
        if exc.status != 409:
            raise
        api.request(
            "PATCH",
            f"/api/v1/namespaces/{name}",
            {"metadata": body["metadata"]},
            content_type="application/merge-patch+json",
        )
