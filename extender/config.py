"""`spillover serve` settings, each declared once: name, type, default and help text.

``Config`` is the declaration: a field's name is its config-file key and (as ``--key``) its flag,
its annotation's ``description`` its help text, its default the default. The YAML ``--config``
file takes the same keys; flags override the file; `spillover serve --help` lists them all.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec
import msgspec.inspect as inspect
import yaml

LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
"""A Kubernetes label value (the cluster id is one, on everything Spillover makes in peers)."""


def _help(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="kebab"):
    kubeconfig: Annotated[str | None, _help("home cluster kubeconfig (default: in-cluster, else $KUBECONFIG)")] = None
    bind_address: Annotated[str, _help("listen address of the extender, webhook and metrics servers")] = "127.0.0.1"
    extender_bind_address: Annotated[
        str | None,
        _help(
            "the extender's own listen address (default: --bind-address); 127.0.0.1 when kube-scheduler runs in "
            "the same pod. Plain HTTP is served on loopback only"
        ),
    ] = None
    extender_port: Annotated[int, _help("extender port")] = 8888
    webhook_port: Annotated[int, _help("webhook HTTPS port")] = 8443
    metrics_port: Annotated[int, _help("port of /metrics, /healthz, /readyz and the status page")] = 9090
    tls_cert_file: Annotated[
        str | None, _help("webhook serving certificate (PEM), reloaded when it changes; with --tls-key-file")
    ] = None
    tls_key_file: Annotated[str | None, _help("webhook serving key (PEM); without both, no webhook is served")] = None
    extender_tls_cert_file: Annotated[
        str | None,
        _help("extender serving certificate (PEM): HTTPS, HTTP/2 by ALPN; reloaded when it changes; with the key"),
    ] = None
    extender_tls_key_file: Annotated[str | None, _help("extender serving key (PEM)")] = None
    extender_client_ca_file: Annotated[
        str | None,
        _help(
            "CA bundle that must have signed the scheduler's client certificate (its extender tlsConfig); "
            "required with HTTPS"
        ),
    ] = None
    extender_client_names: Annotated[
        str,
        _help(
            "comma-separated names one of which the scheduler's client certificate must carry (common name or "
            "DNS SAN; default: any the CA signed)"
        ),
    ] = ""
    kubelet_port: Annotated[
        int, _help("HTTPS port of the virtual nodes' kubelet API (kubectl logs on spilled pods)")
    ] = 10250
    kubelet_address: Annotated[
        str,
        _help(
            "the address kube-apiserver dials for the kubelet API, written on the virtual nodes as their "
            "InternalIP (default: --bind-address; in a cluster, the pod IP)"
        ),
    ] = ""
    kubelet_client_ca_file: Annotated[
        str | None,
        _help(
            "serve the virtual nodes' kubelet API (kubectl logs on spilled pods) on --kubelet-port with the "
            "--tls-cert-file certificate, to clients whose certificate this CA signed and no one else: the CA "
            "of kube-apiserver's --kubelet-client-certificate"
        ),
    ] = None
    kubelet_client_allowed_names: Annotated[
        str,
        _help(
            "comma-separated common names the kubelet API accepts on client certificates (default: any the CA "
            "signed; like kube-apiserver's --requestheader-allowed-names; kubeadm's apiserver uses "
            "kube-apiserver-kubelet-client)"
        ),
    ] = ""
    scheduler_name: Annotated[
        str | None,
        _help(
            "the scheduler that consults Spillover (the own-scheduler install's, e.g. spillover): opted-in pods "
            "that asked for the default scheduler get it; pods naming another are left alone"
        ),
    ] = None
    peer_timeout: Annotated[
        float, _help("seconds any one call to a peer may stay silent; each page of a list is one call")
    ] = 5.0
    reservation_ttl: Annotated[float, _help("seconds capacity stays reserved for a pod being placed")] = 30.0
    remote_pending_timeout: Annotated[
        float, _help("seconds a delegate may stay unschedulable in its peer before it is withdrawn")
    ] = 60.0
    avoid_peer_seconds: Annotated[
        float, _help("seconds a workload withdrawn from a peer is kept away from that peer")
    ] = 300.0
    repatriate_after: Annotated[
        float,
        _help(
            "seconds home must have had room for a spilled pod (and the pod be this old) before it is brought "
            "home; PeerCluster spec.repatriateAfterSeconds and the pod's spillover.io/repatriate-after override it"
        ),
    ] = 300.0
    orphan_sweep_seconds: Annotated[
        float, _help("seconds between sweeps of each peer for objects whose home pod is gone")
    ] = 60.0
    cluster_id: Annotated[
        str,
        msgspec.Meta(
            pattern=LABEL_VALUE,
            max_length=63,
            description="this home's id on what Spillover creates in peers, so homes can share a peer "
            "(a label value; default: the UID of the home's kube-system namespace, stable and unique)",
        ),
    ] = ""
    shutdown_delay: Annotated[
        float,
        _help(
            "seconds a replica told to stop keeps answering, not ready, before it closes: Service endpoints drop "
            "it first, so a rolling upgrade refuses no pod and fails no scheduling call"
        ),
    ] = 5.0
    leader_elect: Annotated[
        bool, _help("run the controllers only while holding the spillover-controller Lease (for replicas)")
    ] = False
    leader_election_namespace: Annotated[str, _help("namespace of the spillover-controller Lease")] = "spillover-system"
    log_level: Annotated[str, _help("DEBUG, INFO or WARNING")] = "INFO"

    @property
    def extender_address(self) -> str:
        return self.extender_bind_address or self.bind_address

    @property
    def extender_client_name_list(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.extender_client_names.split(",") if n.strip())


@dataclass(frozen=True)
class Setting:
    """One field of ``Config`` as a flag and config-file key."""

    field: str
    key: str
    """The config-file key; the flag is ``--key``."""
    kind: type
    """int, float, str or bool."""
    default: Any
    help: str


_KINDS: dict[type, type] = {
    inspect.IntType: int,
    inspect.FloatType: float,
    inspect.StrType: str,
    inspect.BoolType: bool,
}


def settings() -> list[Setting]:
    """Every setting, in declaration order."""
    info = inspect.type_info(Config)
    assert isinstance(info, inspect.StructType)
    found = []
    for field in info.fields:
        annotated = field.type
        if not isinstance(annotated, inspect.Metadata):
            raise TypeError(f"setting {field.name} has no help text: annotate it with msgspec.Meta(description=...)")
        base = annotated.type
        if isinstance(base, inspect.UnionType):  # X | None
            base = next(t for t in base.types if not isinstance(t, inspect.NoneType))
        found.append(
            Setting(
                field=field.name,
                key=field.encode_name,
                kind=_KINDS[type(base)],
                default=field.default,
                help=(annotated.extra_json_schema or {}).get("description", ""),
            )
        )
    return found


class ConfigError(ValueError):
    pass


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 (bracketed or not) or localhost."""
    host = address.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_extender_transport(config: Config, source: str) -> Config:
    """Refuse extender settings that go together only in part, or that would expose the extender."""
    if bool(config.extender_tls_cert_file) != bool(config.extender_tls_key_file):
        raise ConfigError(f"{source}: extender-tls-cert-file and extender-tls-key-file go together")
    tls = bool(config.extender_tls_cert_file)
    if config.extender_client_ca_file and not tls:
        raise ConfigError(
            f"{source}: extender-client-ca-file needs extender-tls-cert-file and extender-tls-key-file "
            "(client certificates are checked in the TLS handshake)"
        )
    if config.extender_client_names and not config.extender_client_ca_file:
        raise ConfigError(f"{source}: extender-client-names needs extender-client-ca-file to verify them against")
    if tls and not config.extender_client_ca_file:
        raise ConfigError(
            f"{source}: the extender would serve HTTPS without checking who calls it, and anyone who reaches "
            "its port could bind pods; pass extender-client-ca-file (the CA of the scheduler's client "
            "certificate, its extender tlsConfig)"
        )
    if not tls and not is_loopback(config.extender_address):
        raise ConfigError(
            f"{source}: the extender would listen on {config.extender_address} over plain HTTP, where anyone "
            "who reaches it could bind pods; either bind it to 127.0.0.1 (extender-bind-address, with "
            "kube-scheduler in the same pod) or serve it over HTTPS with client-certificate verification "
            "(extender-tls-cert-file, extender-tls-key-file, extender-client-ca-file)"
        )
    return config


def load(path: str | None, overrides: dict[str, Any]) -> Config:
    """The file at ``path`` (if any) under ``overrides`` (field name -> value; None: not given)."""
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
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path or 'flags'}: {exc}") from exc
    return check_extender_transport(config, path or "flags")
