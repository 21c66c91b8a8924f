"""The Pod Security Standards, checked the way a peer's kube-apiserver checks them.

A PeerCluster declares the level the peer accepts (``spec.podSecurity``: privileged, baseline or
restricted). Spillover writes it as the ``pod-security.kubernetes.io/enforce`` label on the
namespaces it creates there, so the peer's own apiserver (its PodSecurity admission) refuses
what that level forbids: that is the control. These checks are the forecast: ``filter`` keeps at
home, with the reasons the peer would give, a pod the level would refuse, instead of sending it
to a bind the peer then refuses.

Every check is a transcription of k8s.io/pod-security-admission/policy at v0.36.2 (the staging
module of Kubernetes v1.36.2, `staging/src/k8s.io/pod-security-admission/policy/`), at the
newest version of each check (the enforce label carries no version: "latest"). Each function
names the file and Go function it follows. Reasons and details are worded as PodSecurity words
them, and run in its order (registry.go ``populate``: check IDs sorted, baseline before
restricted), so a message here reads like the apiserver's refusal. Restricted is every
baseline check but the four it overrides (``OverrideCheckIDs``) plus its own seven.

The pod is decoded into a model of its own (only the fields these checks read), from the JSON
the scheduler sent, and only when a peer's level is not privileged: the partial Pod model the
watches and the other verbs decode stays small.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
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


# --- helpers.go and visitor.go ----------------------------------------------------------


def _join_quote(items: Sequence[str]) -> str:
    """helpers.go joinQuote."""
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    """helpers.go pluralize."""
    return singular if count == 1 else plural


def _containers(spec: Spec) -> Iterator[Container]:
    """visitor.go visitContainers: init containers, containers, then ephemeral containers."""
    yield from spec.init_containers or ()
    yield from spec.containers
    yield from spec.ephemeral_containers or ()


def _user_namespace(spec: Spec) -> bool:
    """helpers.go relaxPolicyForUserNamespacePod: hostUsers is false."""
    return spec.host_users is False


def _windows(spec: Spec) -> bool:
    return spec.os is not None and spec.os.name == "windows"


def _containers_text(names: Sequence[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_join_quote(names)}"


def _setters(pod: bool, containers: Sequence[str]) -> list[str]:
    """Who set a forbidden value, as PodSecurity lists them: "pod", then the containers."""
    return (["pod"] if pod else []) + ([_containers_text(containers)] if containers else [])


def _profile_setters(
    pod_profile: ProfileType | None,
    visited: Sequence[Container],
    profile_of: Callable[[SecurityContext], ProfileType | None],
    allowed: Sequence[str],
) -> tuple[list[str], set[str]]:
    """Who sets a profile type outside ``allowed`` (an appArmorProfile or a seccompProfile, at pod
    or container level), and those types: the loop appArmorProfile_1_0 and
    seccompProfileBaseline_1_19 share."""
    bad: set[str] = set()
    pod_bad = pod_profile is not None and pod_profile.type not in allowed
    if pod_profile is not None and pod_bad:
        bad.add(pod_profile.type)
    names = []
    for c in visited:
        profile = profile_of(c.security_context) if c.security_context else None
        if profile is not None and profile.type not in allowed:
            names.append(c.name)
            bad.add(profile.type)
    return _setters(pod_bad, names), bad


Violation = tuple[str, str]
"""(ForbiddenReason, ForbiddenDetail) of one failed check."""
Check = Callable[[SecurityPod, Sequence[Container]], Violation | None]
"""A check reads the pod and its containers, listed once per judgement in visitContainers order."""


# --- baseline -------------------------------------------------------------------------


def _app_armor_profile(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_appArmorProfile.go appArmorProfile_1_0."""
    context = pod.spec.security_context
    setters, bad_values = _profile_setters(
        context.app_armor_profile if context else None,
        visited,
        lambda c: c.app_armor_profile,
        ("RuntimeDefault", "Localhost"),
    )
    annotations = sorted(
        f'{key}="{value}"'
        for key, value in (pod.metadata.annotations or {}).items()
        if key.startswith("container.apparmor.security.beta.kubernetes.io/")
        and not (not value or value == "runtime/default" or value.startswith("localhost/"))
    )
    values = sorted(bad_values) + annotations
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return (
        _plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(values)}",
    )


BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
"""check_capabilities_baseline.go capabilities_allowed_1_0."""


def _capabilities_baseline(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_capabilities_baseline.go capabilitiesBaseline_1_0."""
    containers = []
    forbidden: set[str] = set()
    for c in visited:
        caps = c.security_context.capabilities if c.security_context else None
        if caps is None:
            continue
        bad = [cap for cap in caps.add or () if cap not in BASELINE_CAPABILITIES]
        if bad:
            containers.append(c.name)
            forbidden.update(bad)
    if not containers:
        return None
    return (
        "non-default capabilities",
        f"{_containers_text(containers)} must not include {_join_quote(sorted(forbidden))} in "
        "securityContext.capabilities.add",
    )


def _host_namespaces(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_hostNamespaces.go hostNamespaces_1_0."""
    spec = pod.spec
    shared = [
        text
        for on, text in (
            (spec.host_network, "hostNetwork=true"),
            (spec.host_pid, "hostPID=true"),
            (spec.host_ipc, "hostIPC=true"),
        )
        if on
    ]
    return ("host namespaces", ", ".join(shared)) if shared else None


def _host_path_volumes(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_hostPathVolumes.go hostPathVolumes_1_0."""
    names = [str(v.get("name", "")) for v in pod.spec.volumes or () if v.get("hostPath") is not None]
    if not names:
        return None
    return "hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)}"


def _host_ports(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_hostPorts.go hostPorts_1_0 (ports listed as sorted strings, as sets.String.List)."""
    containers = []
    ports: set[str] = set()
    for c in visited:
        used = [str(p.host_port) for p in c.ports or () if p.host_port]
        if used:
            containers.append(c.name)
            ports.update(used)
    if not containers:
        return None
    return (
        "hostPort",
        f"{_containers_text(containers)} {_plural('uses', 'use', len(containers))} "
        f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}",
    )


def _handler_hosts(handler: Handler | None) -> list[str]:
    """check_hostProbesAndhostLifecycle.go getForbiddenHostProbes / getForbiddenHostLifecycle."""
    if handler is None:
        return []
    hosts = []
    if handler.http_get is not None and handler.http_get.host:
        hosts.append(handler.http_get.host)
    if handler.tcp_socket is not None and handler.tcp_socket.host:
        hosts.append(handler.tcp_socket.host)
    return hosts


def _host_probes_and_lifecycle(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_hostProbesAndhostLifecycle.go hostProbesAndHostLifecycleV1Dot34."""
    containers: set[str] = set()
    hosts: set[str] = set()
    for c in visited:
        handlers = [c.liveness_probe, c.readiness_probe, c.startup_probe]
        if c.lifecycle is not None:
            handlers += [c.lifecycle.post_start, c.lifecycle.pre_stop]
        for handler in handlers:
            found = _handler_hosts(handler)
            if found:
                containers.add(c.name)
                hosts.update(found)
    if not containers:
        return None
    return (
        "probe or lifecycle host",
        f"{_containers_text(sorted(containers))} {_plural('uses', 'use', len(containers))} "
        f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} {_join_quote(sorted(hosts))}",
    )


def _privileged(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_privileged.go privileged_1_0."""
    names = [c.name for c in visited if c.security_context and c.security_context.privileged]
    if not names:
        return None
    return "privileged", f"{_containers_text(names)} must not set securityContext.privileged=true"


def _proc_mount_any(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_procMount_baseline.go procMount_1_0 (also the restricted procMount_restricted)."""
    containers = []
    kinds: set[str] = set()
    for c in visited:
        mount = c.security_context.proc_mount if c.security_context else None
        if mount is not None and mount != "Default":
            containers.append(c.name)
            kinds.add(mount)
    if not containers:
        return None
    return (
        "procMount",
        f"{_containers_text(containers)} must not set securityContext.procMount to {_join_quote(sorted(kinds))}",
    )


def _proc_mount_baseline(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_procMount_baseline.go procMount1_35baseline: any value in a user namespace."""
    return None if _user_namespace(pod.spec) else _proc_mount_any(pod, visited)


SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
"""check_seLinuxOptions.go selinuxAllowedTypes1_31."""


def _se_linux_options(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_seLinuxOptions.go seLinuxOptions1_31 (seLinuxOptions)."""
    bad_types: set[str] = set()
    set_user = set_role = False

    def valid(options: SELinuxOptions) -> bool:
        nonlocal set_user, set_role
        ok = True
        if options.type not in SELINUX_TYPES:
            ok = False
            bad_types.add(options.type)
        if options.user:
            ok = False
            set_user = True
        if options.role:
            ok = False
            set_role = True
        return ok

    context = pod.spec.security_context
    pod_bad = context is not None and context.se_linux_options is not None and not valid(context.se_linux_options)
    containers = [
        c.name
        for c in visited
        if c.security_context is not None
        and c.security_context.se_linux_options is not None
        and not valid(c.security_context.se_linux_options)
    ]
    setters = _setters(pod_bad, containers)
    if not setters:
        return None
    data = []
    if bad_types:
        data.append(f"{_plural('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
    if set_user:
        data.append("user may not be set")
    if set_role:
        data.append("role may not be set")
    return (
        "seLinuxOptions",
        f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}",
    )


SECCOMP_TYPES = ("RuntimeDefault", "Localhost")
"""check_seccompProfile_baseline.go validSeccomp."""


def _seccomp_baseline(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_seccompProfile_baseline.go seccompProfileBaseline_1_19."""
    context = pod.spec.security_context
    setters, bad = _profile_setters(
        context.seccomp_profile if context else None, visited, lambda c: c.seccomp_profile, SECCOMP_TYPES
    )
    if not setters:
        return None
    return (
        "seccompProfile",
        f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to {_join_quote(sorted(bad))}",
    )


SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
"""check_sysctls.go sysctlsAllowedV1Dot32."""


def _sysctls(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_sysctls.go sysctlsV1Dot32 (sysctls): in the pod's order."""
    context = pod.spec.security_context
    bad = [s.name for s in (context.sysctls if context else None) or () if s.name not in SAFE_SYSCTLS]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


def _windows_host_process(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_windowsHostProcess.go windowsHostProcess_1_0."""
    containers = [
        c.name
        for c in visited
        if c.security_context is not None
        and c.security_context.windows_options is not None
        and c.security_context.windows_options.host_process
    ]
    context = pod.spec.security_context
    pod_set = context is not None and context.windows_options is not None and bool(context.windows_options.host_process)
    setters = _setters(pod_set, containers)
    if not setters:
        return None
    return "hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true"


# --- restricted -----------------------------------------------------------------------


def _allow_privilege_escalation(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_allowPrivilegeEscalation.go allowPrivilegeEscalation_1_25 (skips Windows pods)."""
    if _windows(pod.spec):
        return None
    names = [
        c.name
        for c in visited
        if c.security_context is None or c.security_context.allow_privilege_escalation is not False
    ]
    if not names:
        return None
    return (
        "allowPrivilegeEscalation != false",
        f"{_containers_text(names)} must set securityContext.allowPrivilegeEscalation=false",
    )


def _capabilities_restricted(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_capabilities_restricted.go capabilitiesRestricted_1_25 (skips Windows pods)."""
    if _windows(pod.spec):
        return None
    missing_drop_all = []
    adding = []
    forbidden: set[str] = set()
    for c in visited:
        caps = c.security_context.capabilities if c.security_context else None
        if caps is None:
            missing_drop_all.append(c.name)
            continue
        if "ALL" not in (caps.drop or ()):
            missing_drop_all.append(c.name)
        bad = [cap for cap in caps.add or () if cap != "NET_BIND_SERVICE"]
        if bad:
            adding.append(c.name)
            forbidden.update(bad)
    details = []
    if missing_drop_all:
        details.append(f'{_containers_text(missing_drop_all)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(
            f"{_containers_text(adding)} must not include {_join_quote(sorted(forbidden))} in "
            "securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


ALLOWED_VOLUME_SOURCES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
RESTRICTED_VOLUME_SOURCES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
)
"""check_restrictedVolumes.go restrictedVolumes_1_0: the allowed sources, and the others in the
order its switch names them."""


def _restricted_volumes(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_restrictedVolumes.go restrictedVolumes_1_0 (overrides hostPathVolumes)."""
    names = []
    kinds: set[str] = set()
    for volume in pod.spec.volumes or ():
        if any(volume.get(key) is not None for key in ALLOWED_VOLUME_SOURCES):
            continue
        names.append(str(volume.get("name", "")))
        kinds.add(next((key for key in RESTRICTED_VOLUME_SOURCES if volume.get(key) is not None), "unknown"))
    if not names:
        return None
    return (
        "restricted volume types",
        f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)} {_plural('uses', 'use', len(names))} "
        f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} {_join_quote(sorted(kinds))}",
    )


def _run_as_non_root(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_runAsNonRoot.go runAsNonRoot1_35 (any value in a user namespace) and runAsNonRoot1_0."""
    spec = pod.spec
    if _user_namespace(spec):
        return None
    setters = []
    pod_non_root = False
    context = spec.security_context
    if context is not None and context.run_as_non_root is not None:
        if context.run_as_non_root:
            pod_non_root = True
        else:
            setters.append("pod")
    explicit = []
    implicit = []
    for c in visited:
        value = c.security_context.run_as_non_root if c.security_context else None
        if value is not None:
            if not value:
                explicit.append(c.name)
        elif not pod_non_root:
            implicit.append(c.name)
    if explicit:
        setters.append(_containers_text(explicit))
    if setters:
        return "runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false"
    if implicit:
        return (
            "runAsNonRoot != true",
            f"pod or {_containers_text(implicit)} must set securityContext.runAsNonRoot=true",
        )
    return None


def _run_as_user(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_runAsUser.go runAsUser1_35 (any value in a user namespace) and runAsUser1_23."""
    spec = pod.spec
    if _user_namespace(spec):
        return None
    names = [c.name for c in visited if c.security_context and c.security_context.run_as_user == 0]
    setters = _setters(spec.security_context is not None and spec.security_context.run_as_user == 0, names)
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


def _seccomp_restricted(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_seccompProfile_restricted.go seccompProfileRestricted_1_25 (skips Windows pods) and
    seccompProfileRestricted_1_19 (overrides seccompProfile_baseline)."""
    spec = pod.spec
    if _windows(spec):
        return None
    setters = []
    bad: set[str] = set()
    pod_set = False
    context = spec.security_context
    if context is not None and context.seccomp_profile is not None:
        if context.seccomp_profile.type in SECCOMP_TYPES:
            pod_set = True
        else:
            setters.append("pod")
            bad.add(context.seccomp_profile.type)
    explicit = []
    implicit = []
    for c in visited:
        profile = c.security_context.seccomp_profile if c.security_context else None
        if profile is not None:
            if profile.type not in SECCOMP_TYPES:
                explicit.append(c.name)
                bad.add(profile.type)
        elif not pod_set:
            implicit.append(c.name)
    if explicit:
        setters.append(_containers_text(explicit))
    if setters:
        return (
            "seccompProfile",
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to {_join_quote(sorted(bad))}",
        )
    if implicit:
        return (
            "seccompProfile",
            f'pod or {_containers_text(implicit)} must set securityContext.seccompProfile.type to "RuntimeDefault" '
            'or "Localhost"',
        )
    return None


BASELINE: tuple[tuple[str, Check], ...] = (
    ("appArmorProfile", _app_armor_profile),
    ("capabilities_baseline", _capabilities_baseline),
    ("hostNamespaces", _host_namespaces),
    ("hostPathVolumes", _host_path_volumes),
    ("hostPorts", _host_ports),
    ("hostProbesAndHostLifecycle", _host_probes_and_lifecycle),
    ("privileged", _privileged),
    ("procMount", _proc_mount_baseline),
    ("seLinuxOptions", _se_linux_options),
    ("seccompProfile_baseline", _seccomp_baseline),
    ("sysctls", _sysctls),
    ("windowsHostProcess", _windows_host_process),
)
"""The baseline checks by ID, in PodSecurity's order (IDs sorted as Go sorts strings)."""
RESTRICTED_ONLY: tuple[tuple[str, Check], ...] = (
    ("allowPrivilegeEscalation", _allow_privilege_escalation),
    ("capabilities_restricted", _capabilities_restricted),
    ("procMount_restricted", _proc_mount_any),
    ("restrictedVolumes", _restricted_volumes),
    ("runAsNonRoot", _run_as_non_root),
    ("runAsUser", _run_as_user),
    ("seccompProfile_restricted", _seccomp_restricted),
)
OVERRIDDEN = frozenset({"capabilities_baseline", "hostPathVolumes", "procMount", "seccompProfile_baseline"})
"""Baseline checks a restricted one replaces at v1.36 (their OverrideCheckIDs)."""
CHECKS: dict[Level, tuple[Check, ...]] = {
    Level.PRIVILEGED: (),
    Level.BASELINE: tuple(check for _, check in BASELINE),
    Level.RESTRICTED: tuple(check for name, check in BASELINE if name not in OVERRIDDEN)
    + tuple(check for _, check in RESTRICTED_ONLY),
}


def violations(pod: SecurityPod, level: Level) -> list[Violation]:
    """Every check of ``level`` the pod fails, in PodSecurity's order (empty: it is admitted)."""
    found = []
    visited = tuple(_containers(pod.spec))
    for check in CHECKS[level]:
        violation = check(pod, visited)
        if violation is not None:
            found.append(violation)
    return found


def describe(found: Sequence[Violation]) -> str:
    """checks.go AggregateCheckResult.ForbiddenDetail: "reason (detail), reason (detail)"."""
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in found)


def refusal_text(peer: str, level: Level, findings: str) -> str:
    return (
        f'peer {peer} enforces Pod Security "{level}" (PeerCluster spec.podSecurity) and would refuse the pod: '
        f"{findings}"
    )


def refusal(pod: SecurityPod, level: Level, peer: str) -> str | None:
    """Why ``peer``'s apiserver, enforcing ``level``, would refuse the pod (None: it would not)."""
    found = violations(pod, level)
    return refusal_text(peer, level, describe(found)) if found else None
