"""`spillover serve` settings: a YAML file (optional) overridden by command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
"""A Kubernetes label value (the cluster id is one, on everything Spillover makes in peers)."""


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="kebab"):
    kubeconfig: str | None = None
    """Home cluster kubeconfig; None: in-cluster or $KUBECONFIG."""
    bind_address: str = "127.0.0.1"
    extender_port: int = 8888
    webhook_port: int = 8443
    metrics_port: int = 9090
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    kubelet_port: int = 10250
    kubelet_address: str = ""
    """Where kube-apiserver reaches the virtual nodes' kubelet API (written on them as their
    InternalIP); "": the --bind-address. In a cluster: the pod's IP."""
    kubelet_client_ca_file: str | None = None
    """The CA that signed kube-apiserver's --kubelet-client-certificate. Set, the kubelet API
    (`kubectl logs` on spilled pods) is served on --kubelet-port with the --tls-cert-file
    certificate, to callers presenting a certificate that CA signed and no one else."""
    kubelet_client_allowed_names: str = ""
    """Comma-separated common names accepted on the kubelet API's client certificates (""
    accepts any the CA signed); like kube-apiserver's --requestheader-allowed-names. Set it when
    that CA signs other clients too (kubeadm: kube-apiserver-kubelet-client)."""
    scheduler_name: str | None = None
    """If set, the webhook sets spec.schedulerName on opted-in pods."""
    peer_timeout: float = 5.0
    reservation_ttl: float = 30.0
    remote_pending_timeout: float = 60.0
    avoid_peer_seconds: float = 300.0
    orphan_sweep_seconds: float = 60.0
    cluster_id: Annotated[str, msgspec.Meta(pattern=LABEL_VALUE, max_length=63)] = ""
    """This home's name in the peers it shares with other homes; "": the UID of its kube-system
    namespace (stable for the cluster's life, unique without configuration)."""
    leader_elect: bool = False
    leader_election_namespace: str = "spillover-system"
    log_level: str = "INFO"


class ConfigError(ValueError):
    pass


def load(path: str | None, overrides: dict[str, Any]) -> Config:
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings (for example `extender-port: 8888`)")
        data.update(loaded)
    data.update({k.replace("_", "-"): v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path or 'flags'}: {exc}") from exc
