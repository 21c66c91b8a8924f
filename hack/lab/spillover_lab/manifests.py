"""The install manifests as the lab reads them: kustomize output, and a Deployment's containers
turned into local command lines the way a kubelet would run them.

The lab has no container runtime and only loopback addresses, so a few things must change, and
only these (``Translation`` lists them; a unit test holds every other argument to the manifest):
- the program: the ``spillover`` image's entrypoint is this checkout's ``python -m extender``,
  the kube-scheduler image's is the lab's kube-scheduler binary;
- ports: each lab (several may share a machine) has its own, so ``--*-port`` flags get them;
- ``--bind-address=0.0.0.0`` becomes 127.0.0.1 (a pod's own address is the lab's loopback);
- paths under a volume mount point into the lab's copy of that volume (Secret, ConfigMap or
  emptyDir contents, written as a kubelet would);
- environment from the downward API gets the lab pod's name;
- the in-cluster identity becomes a kubeconfig with the ServiceAccount's token (a process gets
  no /var/run/secrets here), plus what each lab process needs to be told that a pod is given.
"""

from __future__ import annotations

import base64
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .api import Api, ApiError
from .procs import LOOPBACK

REPO = Path(__file__).resolve().parents[3]
MANIFESTS = REPO / "manifests"
MODES = ("own-scheduler", "extender")
"""The install modes: a folder of manifests/ each, kustomize overlays of manifests/base."""

_ENV_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class ManifestError(RuntimeError):
    """The manifests say something the lab cannot run; the message names what."""


def render(kubectl: Path, folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize FOLDER``: the objects a user's ``kubectl apply -k`` would send."""
    out = subprocess.run([str(kubectl), "kustomize", str(folder)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise ManifestError(f"kubectl kustomize {folder} failed: {out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        raise ManifestError(f"expected one {kind}{' ' + name if name else ''} in the manifests, found {len(found)}")
    return found[0]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    for entry in deployment["spec"]["template"]["spec"]["containers"]:
        if entry["name"] == name:
            found: dict[str, Any] = entry
            return found
    raise ManifestError(f"Deployment {deployment['metadata']['name']} has no container {name}")


@dataclass
class Translation:
    """What the lab changes in a container's command line, and nothing else."""

    program: list[str]
    """Replaces the image's entrypoint (and the container's ``command``)."""
    ports: dict[str, int]
    """``--flag`` -> the lab's port for it."""
    mounts: dict[str, Path]
    """Mount path -> the lab's copy of the volume."""
    env: dict[str, str]
    """Environment the container gets (values and downward-API fields resolved)."""
    extra: list[str] = field(default_factory=list)
    """Appended: what the lab must say that a pod is given (identity, serving port)."""

    def arg(self, arg: str) -> str:
        arg = _ENV_REF.sub(lambda m: self.env.get(m.group(1), m.group(0)), arg)
        flag, eq, value = arg.partition("=")
        if not eq:
            return arg
        if flag in self.ports:
            return f"{flag}={self.ports[flag]}"
        if flag.endswith("bind-address") and value == "0.0.0.0":
            return f"{flag}={LOOPBACK}"
        for mount, local in self.mounts.items():
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return f"{flag}={local}{value[len(mount.rstrip('/')) :]}"
        return arg

    def argv(self, spec: dict[str, Any]) -> list[str]:
        return [*self.program, *(self.arg(a) for a in spec.get("args", [])), *self.extra]


def container_env(spec: dict[str, Any], pod_name: str, namespace: str) -> dict[str, str]:
    """The container's environment, with the downward-API fields a lab pod has."""
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace, "status.podIP": LOOPBACK}
    env: dict[str, str] = {}
    for entry in spec.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        path = entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if path not in fields:
            raise ManifestError(
                f"container {spec['name']}: env {entry['name']} comes from {entry.get('valueFrom')}, which the lab "
                "cannot provide; teach hack/lab/spillover_lab/manifests.py about it"
            )
        env[entry["name"]] = fields[path]
    return env


def volume_files(api: Api, deployment: dict[str, Any], rendered: list[dict[str, Any]], root: Path) -> dict[str, Path]:
    """Write each volume of the pod under ``root`` as a kubelet would; mount path -> folder.

    Secrets are read from the cluster (made by hack/install/self-signed-certs, as a user's
    are); ConfigMaps come from the rendered manifests (their generated names included)."""
    pod = deployment["spec"]["template"]["spec"]
    namespace = deployment["metadata"]["namespace"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    folders: dict[str, Path] = {}
    for volume in volumes.values():
        folder = root / volume["name"]
        folder.mkdir(parents=True, exist_ok=True)
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            try:
                secret = api.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
            except ApiError as exc:
                raise ManifestError(f"Secret {namespace}/{name} for volume {volume['name']}: {exc}") from None
            for key, value in (secret.get("data") or {}).items():
                _write(folder / key, base64.b64decode(value))
        elif "configMap" in volume:
            config_map = one(rendered, "ConfigMap", volume["configMap"]["name"])
            for key, value in (config_map.get("data") or {}).items():
                _write(folder / key, value.encode())
        elif "emptyDir" not in volume:
            raise ManifestError(f"volume {volume['name']}: the lab knows Secret, ConfigMap and emptyDir volumes only")
        folders[volume["name"]] = folder
    mounts: dict[str, Path] = {}
    for spec in pod["containers"]:
        for mount in spec.get("volumeMounts", []):
            mounts[mount["mountPath"]] = folders[mount["name"]]
    return mounts


def _write(path: Path, data: bytes) -> None:
    """Replace the file in one step (a reader never sees half of it), as a Secret volume does."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o600)
    tmp.replace(path)


def scheduler_config(rendered: list[dict[str, Any]], deployment: dict[str, Any]) -> dict[str, Any]:
    """The KubeSchedulerConfiguration the scheduler container reads (from its ConfigMap volume)."""
    spec = container(deployment, "kube-scheduler")
    config_arg = next((a for a in spec.get("args", []) if a.startswith("--config=")), None)
    if config_arg is None:
        raise ManifestError("the kube-scheduler container has no --config argument")
    path = config_arg.split("=", 1)[1]
    pod = deployment["spec"]["template"]["spec"]
    for mount in spec.get("volumeMounts", []):
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            config_map = one(rendered, "ConfigMap", volume["configMap"]["name"])
            loaded: dict[str, Any] = yaml.safe_load(config_map["data"][path.rsplit("/", 1)[1]])
            return loaded
    raise ManifestError(f"--config={path} is not under any volume mount of the kube-scheduler container")


def token_kubeconfig(path: Path, server: str, ca: Path, token: str, user: str) -> Path:
    """A kubeconfig carrying a ServiceAccount token: what in-cluster config would give the process."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "lab", "cluster": {"server": server, "certificate-authority-data": _b64(ca.read_bytes())}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": user}}],
        "current-context": "lab",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
