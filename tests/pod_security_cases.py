"""Pods that exercise every Pod Security check, shared by the unit tests (which assert the
refusal text of extender.pod_security) and the e2e test (which asks a real kube-apiserver's
PodSecurity admission about the same pods and compares its words with ours).

Each pod is valid for the apiserver (its validation runs before admission: a Windows pod sets no
Linux fields, an Unmasked procMount needs hostUsers false), so the only refusal is PodSecurity's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _container(name: str = "app", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "registry.example/app:1", **fields}


RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]
    baseline: str
    """What PodSecurity says at baseline ("" when it admits the pod)."""
    restricted: str
    annotations: dict[str, str] = field(default_factory=dict)

    def pod(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name}
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": self.spec}


UNRESTRICTED_APP = (
    'allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")'
)
"""Restricted's word on a container with no securityContext at all."""

CASES = [
    Case("plain", {"containers": [_container()]}, "", UNRESTRICTED_APP),
    Case(
        "restricted-ok",
        {"securityContext": RESTRICTED_POD, "containers": [_container(securityContext=RESTRICTED_CONTAINER)]},
        "",
        "",
    ),
    Case(
        "host-takeover",
        {
            "hostNetwork": True,
            "hostPID": True,
            "hostIPC": True,
            "securityContext": RESTRICTED_POD,
            "containers": [
                _container(
                    securityContext={**RESTRICTED_CONTAINER, "privileged": False},
                    volumeMounts=[{"name": "root", "mountPath": "/host"}],
                ),
                _container("root", securityContext={"privileged": True}),
            ],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        },
        'host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), hostPath volumes (volume "root"), '
        'privileged (container "root" must not set securityContext.privileged=true)',
        'host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), privileged (container "root" must not set '
        'securityContext.privileged=true), allowPrivilegeEscalation != false (container "root" must set '
        'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "root" must set '
        'securityContext.capabilities.drop=["ALL"]), restricted volume types (volume "root" uses restricted volume '
        'type "hostPath")',
    ),
    Case(
        "capabilities",
        {
            "securityContext": RESTRICTED_POD,
            "initContainers": [
                _container("init", securityContext={**RESTRICTED_CONTAINER, "capabilities": {"add": ["SYS_TIME"]}})
            ],
            "containers": [
                _container(
                    securityContext={
                        **RESTRICTED_CONTAINER,
                        "capabilities": {"add": ["NET_ADMIN", "CHOWN", "NET_BIND_SERVICE"], "drop": ["ALL"]},
                    }
                )
            ],
        },
        'non-default capabilities (containers "init", "app" must not include "NET_ADMIN", "SYS_TIME" in '
        "securityContext.capabilities.add)",
        'unrestricted capabilities (container "init" must set securityContext.capabilities.drop=["ALL"]; '
        'containers "init", "app" must not include "CHOWN", "NET_ADMIN", "SYS_TIME" in '
        "securityContext.capabilities.add)",
    ),
    Case(
        "host-ports",
        {
            "securityContext": RESTRICTED_POD,
            "containers": [
                _container(
                    securityContext=RESTRICTED_CONTAINER,
                    ports=[{"containerPort": 8080, "hostPort": 8080}, {"containerPort": 9090, "hostPort": 19090}],
                )
            ],
        },
        'hostPort (container "app" uses hostPorts 19090, 8080)',
        'hostPort (container "app" uses hostPorts 19090, 8080)',
    ),
    Case(
        "probe-hosts",
        {
            "securityContext": RESTRICTED_POD,
            "containers": [
                _container(
                    securityContext=RESTRICTED_CONTAINER,
                    livenessProbe={"httpGet": {"host": "10.0.0.1", "port": 80}},
                    readinessProbe={"tcpSocket": {"host": "db.example", "port": 5432}},
                    lifecycle={"preStop": {"httpGet": {"host": "10.0.0.1", "port": 80}}},
                )
            ],
        },
        'probe or lifecycle host (container "app" uses probe or lifecycle hosts "10.0.0.1", "db.example")',
        'probe or lifecycle host (container "app" uses probe or lifecycle hosts "10.0.0.1", "db.example")',
    ),
    Case(
        "apparmor",
        {
            "securityContext": {**RESTRICTED_POD, "appArmorProfile": {"type": "Unconfined"}},
            "containers": [_container(securityContext=RESTRICTED_CONTAINER)],
        },
        'forbidden AppArmor profile (pod must not set AppArmor profile type to "Unconfined")',
        'forbidden AppArmor profile (pod must not set AppArmor profile type to "Unconfined")',
    ),
    Case(
        "selinux",
        {
            "securityContext": {**RESTRICTED_POD, "seLinuxOptions": {"type": "spc_t"}},
            "containers": [
                _container(
                    securityContext={**RESTRICTED_CONTAINER, "seLinuxOptions": {"user": "root", "role": "sysadm_r"}}
                )
            ],
        },
        'seLinuxOptions (pod and container "app" set forbidden securityContext.seLinuxOptions: type "spc_t"; '
        "user may not be set; role may not be set)",
        'seLinuxOptions (pod and container "app" set forbidden securityContext.seLinuxOptions: type "spc_t"; '
        "user may not be set; role may not be set)",
    ),
    Case(
        "seccomp-unconfined",
        {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "Unconfined"}},
            "containers": [_container(securityContext=RESTRICTED_CONTAINER)],
        },
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")',
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")',
    ),
    Case(
        "sysctls",
        {
            "securityContext": {
                **RESTRICTED_POD,
                "sysctls": [
                    {"name": "kernel.msgmax", "value": "65536"},
                    {"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"},
                    {"name": "net.core.somaxconn", "value": "1024"},
                ],
            },
            "containers": [_container(securityContext=RESTRICTED_CONTAINER)],
        },
        "forbidden sysctls (kernel.msgmax, net.core.somaxconn)",
        "forbidden sysctls (kernel.msgmax, net.core.somaxconn)",
    ),
    Case(
        "root-user",
        {
            "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [_container(securityContext={**RESTRICTED_CONTAINER, "runAsUser": 0})],
        },
        "",
        "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false), runAsUser=0 (pod and container "
        '"app" must not set runAsUser=0)',
    ),
    Case(
        "user-namespace",
        {
            "hostUsers": False,
            "securityContext": {"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [_container(securityContext={**RESTRICTED_CONTAINER, "procMount": "Unmasked"})],
        },
        "",
        'procMount (container "app" must not set securityContext.procMount to "Unmasked")',
    ),
    Case(
        "volumes",
        {
            "securityContext": RESTRICTED_POD,
            "containers": [_container(securityContext=RESTRICTED_CONTAINER)],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "app"}},
                {"name": "share", "nfs": {"server": "nfs.example", "path": "/exports"}},
                {"name": "logs", "hostPath": {"path": "/var/log"}},
            ],
        },
        'hostPath volumes (volume "logs")',
        'restricted volume types (volumes "share", "logs" use restricted volume types "hostPath", "nfs")',
    ),
    Case(
        "windows",
        {"os": {"name": "windows"}, "containers": [_container()]},
        "",
        'runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)',
    ),
]
