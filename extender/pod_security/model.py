"""What Pod Security reads and writes: its namespace labels and levels, and the fields of a pod
its checks read (core/v1, camelCase as the apiserver writes them), decoded apart from the partial
Pod model the watches and the other verbs decode, so that model stays small."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import msgspec

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
AUDIT_LABEL = "pod-security.kubernetes.io/audit"
WARN_LABEL = "pod-security.kubernetes.io/warn"
MODE_LABELS = (ENFORCE_LABEL, AUDIT_LABEL, WARN_LABEL)
"""Written together on the namespaces Spillover creates in a peer: the peer refuses (enforce),
records (audit) and tells (warn) at the same level."""


class Level(enum.StrEnum):
    PRIVILEGED = "privileged"
    BASELINE = "baseline"
    RESTRICTED = "restricted"


DEFAULT_LEVEL = Level.BASELINE


def namespace_labels(level: Level | str) -> dict[str, str]:
    """The Pod Security labels of a peer namespace that enforces ``level``."""
    return dict.fromkeys(MODE_LABELS, str(level))


# --- the fields the checks read (core/v1, camelCase as the apiserver writes them) ---------


class _Base(msgspec.Struct, rename="camel", omit_defaults=True, forbid_unknown_fields=False):
    pass


class SELinuxOptions(_Base):
    user: str = ""
    role: str = ""
    type: str = ""


class ProfileType(_Base):
    """seccompProfile and appArmorProfile: only the type is checked."""

    type: str = ""


class WindowsOptions(_Base):
    host_process: bool | None = None


class Capabilities(_Base):
    add: list[str] | None = None
    drop: list[str] | None = None


class Sysctl(_Base):
    name: str = ""


class SecurityContext(_Base):
    """A container's securityContext."""

    privileged: bool | None = None
    capabilities: Capabilities | None = None
    se_linux_options: SELinuxOptions | None = None
    windows_options: WindowsOptions | None = None
    run_as_user: int | None = None
    run_as_non_root: bool | None = None
    allow_privilege_escalation: bool | None = None
    proc_mount: str | None = None
    seccomp_profile: ProfileType | None = None
    app_armor_profile: ProfileType | None = None


class PodSecurityContext(_Base):
    se_linux_options: SELinuxOptions | None = None
    windows_options: WindowsOptions | None = None
    run_as_user: int | None = None
    run_as_non_root: bool | None = None
    sysctls: list[Sysctl] | None = None
    seccomp_profile: ProfileType | None = None
    app_armor_profile: ProfileType | None = None


class HostAction(_Base):
    """httpGet and tcpSocket of probes and lifecycle handlers: only the host is checked."""

    host: str = ""


class Handler(_Base):
    """A Probe or a LifecycleHandler."""

    http_get: HostAction | None = None
    tcp_socket: HostAction | None = None


class Lifecycle(_Base):
    post_start: Handler | None = None
    pre_stop: Handler | None = None


class ContainerPort(_Base):
    host_port: int = 0


class Container(_Base):
    name: str = ""
    security_context: SecurityContext | None = None
    ports: list[ContainerPort] | None = None
    liveness_probe: Handler | None = None
    readiness_probe: Handler | None = None
    startup_probe: Handler | None = None
    lifecycle: Lifecycle | None = None


class PodOS(_Base):
    name: str = ""


class Spec(_Base):
    containers: list[Container] = msgspec.field(default_factory=list)
    init_containers: list[Container] | None = None
    ephemeral_containers: list[Container] | None = None
    volumes: list[dict[str, Any]] | None = None
    """Kept as JSON: which volume source key is set is all the checks ask."""
    security_context: PodSecurityContext | None = None
    host_network: bool = False
    host_pid: bool = msgspec.field(default=False, name="hostPID")
    host_ipc: bool = msgspec.field(default=False, name="hostIPC")
    host_users: bool | None = None
    os: PodOS | None = None


class Meta(_Base):
    annotations: dict[str, str] | None = None


class SecurityPod(_Base):
    metadata: Meta = msgspec.field(default_factory=Meta)
    spec: Spec = msgspec.field(default_factory=Spec)


decoder = msgspec.json.Decoder(SecurityPod)


def from_json(body: bytes) -> SecurityPod:
    """The pod as the scheduler or the apiserver sent it (raises msgspec errors on bad JSON)."""
    return decoder.decode(body)


def from_dict(raw: Mapping[str, Any]) -> SecurityPod:
    return msgspec.convert(raw, SecurityPod)
