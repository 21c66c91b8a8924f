"""The baseline Pod Security checks, each a transcription of its check_*.go at v1.36."""

from __future__ import annotations

from collections.abc import Sequence

from extender.pod_security.model import Container, Handler, SecurityPod, SELinuxOptions
from extender.pod_security.walk import (
    Check,
    Violation,
    containers_text,
    join_quote,
    plural,
    profile_setters,
    user_namespace,
    who_set,
)


def _app_armor_profile(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_appArmorProfile.go appArmorProfile_1_0."""
    context = pod.spec.security_context
    setters, bad_values = profile_setters(
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
        setters.append(plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return (
        plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {join_quote(values)}",
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
        f"{containers_text(containers)} must not include {join_quote(sorted(forbidden))} in "
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
    return "hostPath volumes", f"{plural('volume', 'volumes', len(names))} {join_quote(names)}"


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
        f"{containers_text(containers)} {plural('uses', 'use', len(containers))} "
        f"{plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}",
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
        f"{containers_text(sorted(containers))} {plural('uses', 'use', len(containers))} "
        f"{plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} {join_quote(sorted(hosts))}",
    )


def _privileged(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_privileged.go privileged_1_0."""
    names = [c.name for c in visited if c.security_context and c.security_context.privileged]
    if not names:
        return None
    return "privileged", f"{containers_text(names)} must not set securityContext.privileged=true"


def proc_mount_any(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
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
        f"{containers_text(containers)} must not set securityContext.procMount to {join_quote(sorted(kinds))}",
    )


def _proc_mount_baseline(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_procMount_baseline.go procMount1_35baseline: any value in a user namespace."""
    return None if user_namespace(pod.spec) else proc_mount_any(pod, visited)


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
    setters = who_set(pod_bad, containers)
    if not setters:
        return None
    data = []
    if bad_types:
        data.append(f"{plural('type', 'types', len(bad_types))} {join_quote(sorted(bad_types))}")
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
    setters, bad = profile_setters(
        context.seccomp_profile if context else None, visited, lambda c: c.seccomp_profile, SECCOMP_TYPES
    )
    if not setters:
        return None
    return (
        "seccompProfile",
        f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to {join_quote(sorted(bad))}",
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
    setters = who_set(pod_set, containers)
    if not setters:
        return None
    return "hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true"


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
