"""The restricted Pod Security checks: every baseline check but the four it overrides
(``OVERRIDDEN``), plus these seven, each a transcription of its check_*.go at v1.36."""

from __future__ import annotations

from collections.abc import Sequence

from extender.pod_security.baseline import SECCOMP_TYPES, proc_mount_any
from extender.pod_security.model import Container, SecurityPod
from extender.pod_security.walk import (
    Check,
    Violation,
    containers_text,
    join_quote,
    plural,
    user_namespace,
    who_set,
    windows,
)


def _allow_privilege_escalation(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_allowPrivilegeEscalation.go allowPrivilegeEscalation_1_25 (skips Windows pods)."""
    if windows(pod.spec):
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
        f"{containers_text(names)} must set securityContext.allowPrivilegeEscalation=false",
    )


def _capabilities_restricted(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_capabilities_restricted.go capabilitiesRestricted_1_25 (skips Windows pods)."""
    if windows(pod.spec):
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
        details.append(f'{containers_text(missing_drop_all)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(
            f"{containers_text(adding)} must not include {join_quote(sorted(forbidden))} in "
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
        f"{plural('volume', 'volumes', len(names))} {join_quote(names)} {plural('uses', 'use', len(names))} "
        f"{plural('restricted volume type', 'restricted volume types', len(kinds))} {join_quote(sorted(kinds))}",
    )


def _run_as_non_root(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_runAsNonRoot.go runAsNonRoot1_35 (any value in a user namespace) and runAsNonRoot1_0."""
    spec = pod.spec
    if user_namespace(spec):
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
        setters.append(containers_text(explicit))
    if setters:
        return "runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false"
    if implicit:
        return (
            "runAsNonRoot != true",
            f"pod or {containers_text(implicit)} must set securityContext.runAsNonRoot=true",
        )
    return None


def _run_as_user(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_runAsUser.go runAsUser1_35 (any value in a user namespace) and runAsUser1_23."""
    spec = pod.spec
    if user_namespace(spec):
        return None
    names = [c.name for c in visited if c.security_context and c.security_context.run_as_user == 0]
    setters = who_set(spec.security_context is not None and spec.security_context.run_as_user == 0, names)
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


def _seccomp_restricted(pod: SecurityPod, visited: Sequence[Container]) -> Violation | None:
    """check_seccompProfile_restricted.go seccompProfileRestricted_1_25 (skips Windows pods) and
    seccompProfileRestricted_1_19 (overrides seccompProfile_baseline)."""
    spec = pod.spec
    if windows(spec):
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
        setters.append(containers_text(explicit))
    if setters:
        return (
            "seccompProfile",
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to {join_quote(sorted(bad))}",
        )
    if implicit:
        return (
            "seccompProfile",
            f'pod or {containers_text(implicit)} must set securityContext.seccompProfile.type to "RuntimeDefault" '
            'or "Localhost"',
        )
    return None


RESTRICTED_ONLY: tuple[tuple[str, Check], ...] = (
    ("allowPrivilegeEscalation", _allow_privilege_escalation),
    ("capabilities_restricted", _capabilities_restricted),
    ("procMount_restricted", proc_mount_any),
    ("restrictedVolumes", _restricted_volumes),
    ("runAsNonRoot", _run_as_non_root),
    ("runAsUser", _run_as_user),
    ("seccompProfile_restricted", _seccomp_restricted),
)
OVERRIDDEN = frozenset({"capabilities_baseline", "hostPathVolumes", "procMount", "seccompProfile_baseline"})
"""Baseline checks a restricted one replaces at v1.36 (their OverrideCheckIDs)."""
