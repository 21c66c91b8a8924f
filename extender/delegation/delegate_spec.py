"""Turn a home proxy pod into the delegate pod for a peer, and find what it references.

Works on the pod's raw JSON so every field the user wrote is carried over untouched; only what
the webhook added and what cannot mean the same thing in another cluster is removed:
the virtual-node toleration and marker resource, nodeName and schedulerName, the home service
account token volume (the peer mounts its own), and the priority class (the peer may not have
it). The name derives from the proxy UID, so a retried bind finds its own delegate.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from typing import Any

from extender import labels
from extender.kube.api import CONFIGMAPS, SECRETS
from extender.resources import SPILLABLE

COPY_LABEL = "spillover.io/copy"
COPIES_ANNOTATION = "spillover.io/copies"
"""On a delegate: the ConfigMaps/Secrets copied for it (kind/name, comma-separated)."""
REFERENCES_ANNOTATION = "spillover.io/references"
"""On a delegate: every ConfigMap/Secret its pod references, copied or not (one missing at home
at bind is copied when it appears)."""
SOURCE_VERSION_ANNOTATION = "spillover.io/source-resource-version"
"""On a copy: the resourceVersion of the home object it was copied from (stale when they differ)."""
COPIED = {"ConfigMap": CONFIGMAPS, "Secret": SECRETS}
"""The kinds Spillover copies into peers, and where they live in the API."""
_SKIP_CONFIGMAPS = {"kube-root-ca.crt"}
DELEGATES = f"{labels.MANAGED_BY}={labels.MANAGED_BY_VALUE},{labels.PROXY_UID}"
"""Label selector of Spillover's delegate pods in a peer, of every home sharing it."""


def delegates_selector(home_cluster: str) -> str:
    """This home's delegates only: a peer may be shared, and another home's are not ours to touch."""
    return DELEGATES + (f",{labels.HOME_CLUSTER}={home_cluster}" if home_cluster else "")


def copies_selector(home_cluster: str) -> str:
    """This home's copied ConfigMaps and Secrets only."""
    return f"{COPY_LABEL}=true" + (f",{labels.HOME_CLUSTER}={home_cluster}" if home_cluster else "")


def delegate_name(proxy_name: str, proxy_uid: str) -> str:
    digest = hashlib.sha256(proxy_uid.encode()).hexdigest()[:10]
    return f"{proxy_name[:52].rstrip('-.')}-{digest}"


def references(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod spec needs to start."""
    refs: set[tuple[str, str]] = set()
    for volume in spec.get("volumes") or ():
        if cm := volume.get("configMap"):
            refs.add(("ConfigMap", cm.get("name", "")))
        if secret := volume.get("secret"):
            refs.add(("Secret", secret.get("secretName", "")))
        for source in (volume.get("projected") or {}).get("sources") or ():
            if cm := source.get("configMap"):
                refs.add(("ConfigMap", cm.get("name", "")))
            if secret := source.get("secret"):
                refs.add(("Secret", secret.get("name", "")))
    for container in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]:
        for env in container.get("env") or ():
            source = env.get("valueFrom") or {}
            if ref := source.get("configMapKeyRef"):
                refs.add(("ConfigMap", ref.get("name", "")))
            if ref := source.get("secretKeyRef"):
                refs.add(("Secret", ref.get("name", "")))
        for env_from in container.get("envFrom") or ():
            if ref := env_from.get("configMapRef"):
                refs.add(("ConfigMap", ref.get("name", "")))
            if ref := env_from.get("secretRef"):
                refs.add(("Secret", ref.get("name", "")))
    for pull in spec.get("imagePullSecrets") or ():
        refs.add(("Secret", pull.get("name", "")))
    return {(kind, name) for kind, name in refs if name and name not in _SKIP_CONFIGMAPS}


def copies_of(annotations: dict[str, str] | None, key: str = COPIES_ANNOTATION) -> list[tuple[str, str]]:
    """(kind, name) of the copies a delegate's ``COPIES_ANNOTATION`` (or ``key``) lists."""
    refs = ((annotations or {}).get(key) or "").split(",")
    return [(kind, name) for kind, _, name in (ref.partition("/") for ref in refs) if name]


def needed_by(annotations: dict[str, str] | None) -> set[tuple[str, str]]:
    """(kind, name) of every copy a delegate needs in its namespace: what it references (a
    delegate made before that annotation existed: what was copied for it)."""
    return {*copies_of(annotations), *copies_of(annotations, REFERENCES_ANNOTATION)}


def _listed(refs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f"{kind}/{name}" for kind, name in sorted(refs))


def _strip_marker(container: dict[str, Any]) -> None:
    resources = container.get("resources") or {}
    for part in ("requests", "limits"):
        values = resources.get(part)
        if isinstance(values, dict):
            values.pop(SPILLABLE, None)
            if not values:
                resources.pop(part)


def _strip_token_volume(spec: dict[str, Any]) -> None:
    token_volumes = {
        v["name"] for v in spec.get("volumes") or () if str(v.get("name", "")).startswith("kube-api-access-")
    }
    if not token_volumes:
        return
    spec["volumes"] = [v for v in spec["volumes"] if v.get("name") not in token_volumes]
    for container in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]:
        mounts = container.get("volumeMounts")
        if mounts:
            container["volumeMounts"] = [m for m in mounts if m.get("name") not in token_volumes]


def home_labels(home_cluster: str) -> dict[str, str]:
    """The label naming the home that made an object in a peer ("" for none: unit tests)."""
    return {labels.HOME_CLUSTER: home_cluster} if home_cluster else {}


def delegate_body(
    proxy: dict[str, Any],
    peer: str,
    namespace: str,
    copies: list[tuple[str, str]],
    home_cluster: str = "",
    referenced: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    meta = proxy.get("metadata") or {}
    spec = copy.deepcopy(proxy.get("spec") or {})
    for key in (
        "nodeName",
        "schedulerName",
        "serviceAccountName",
        "serviceAccount",
        "priorityClassName",
        "priority",
        "preemptionPolicy",
    ):
        spec.pop(key, None)
    tolerations = [t for t in spec.get("tolerations") or () if t.get("key") != labels.VIRTUAL]
    if tolerations:
        spec["tolerations"] = tolerations
    else:
        spec.pop("tolerations", None)
    for container in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]:
        _strip_marker(container)
    _strip_token_volume(spec)
    proxy_labels = dict(meta.get("labels") or {})
    proxy_labels.pop(labels.PEER, None)
    user_annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith("kubectl.kubernetes.io/") and k != labels.DELEGATE
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": delegate_name(meta.get("name", "pod"), meta.get("uid", "")),
            "namespace": namespace,
            "labels": {
                **proxy_labels,
                labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
                **home_labels(home_cluster),
                labels.PROXY_UID: meta.get("uid", ""),
                labels.HOME_NAMESPACE: meta.get("namespace", ""),
                labels.HOME_NAME: meta.get("name", "")[:63].rstrip("-."),
            },
            "annotations": {
                **user_annotations,
                COPIES_ANNOTATION: _listed(copies),
                REFERENCES_ANNOTATION: _listed({*referenced, *copies}),
            },
        },
        "spec": spec,
    }


def copy_body(original: dict[str, Any], namespace: str, home_namespace: str, home_cluster: str = "") -> dict[str, Any]:
    """A peer copy of a home ConfigMap or Secret: same data, labels that point back."""
    meta = original.get("metadata") or {}
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": original.get("kind", ""),
        "metadata": {
            "name": meta.get("name", ""),
            "namespace": namespace,
            "labels": {
                labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
                COPY_LABEL: "true",
                **home_labels(home_cluster),
                labels.HOME_NAMESPACE: home_namespace,
            },
            "annotations": {SOURCE_VERSION_ANNOTATION: meta.get("resourceVersion", "")},
        },
    }
    for key in ("data", "binaryData", "type", "immutable"):
        if key in original:
            body[key] = original[key]
    return body


MIRRORED_STATUS_FIELDS = (
    "phase",
    "conditions",
    "message",
    "reason",
    "podIP",
    "podIPs",
    "hostIP",
    "hostIPs",
    "startTime",
    "containerStatuses",
    "initContainerStatuses",
    "qosClass",
)


def mirrored_status(delegate_status: dict[str, Any] | None) -> dict[str, Any]:
    """The part of a delegate's status that is copied onto its proxy (the truth, as the peer sees it)."""
    status = delegate_status or {}
    return {key: status[key] for key in MIRRORED_STATUS_FIELDS if key in status}
