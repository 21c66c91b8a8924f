"""A stand-in for large peers' apiservers (and a home's), speaking the real list/watch protocol.

Serves ``--peers`` peers of ``--nodes`` nodes and ``--pods`` pods each, generated from one seed
and never stored (each object is rendered from a template when sent, about 5 KB of JSON a pod
and a node, as a real apiserver's objects weigh with managed fields, env, images):

- lists with ``limit``/``continue`` paging (without ``limit``: everything in one response,
  streamed), ``fieldSelector`` accepted, ``resourceVersion`` in list metadata;
- watches as chunked JSON lines from the list's resourceVersion: node heartbeats (a new
  resourceVersion and lastHeartbeatTime, nothing else), pod churn (a pod added on some node, an
  older one deleted), BOOKMARKs, closed after ``timeoutSeconds``;
- ``--rate`` MB/s caps each list response (a peer across a slow link); ``--tls DIR`` serves HTTPS;
- home: PeerClusters (list, watch), the kubeconfig Secrets, and what Spillover writes there
  (virtual nodes, their status and Leases, PeerCluster status, Events), counted by kind.

GET /bench/counts on the home port returns those counts; POST /bench/mode?churn=0&heartbeats=1
changes what the peers' watches send from then on.

    python hack/bench/fake_apiserver.py --peers 10 --nodes 5000 --pods 100000
    (prints one line: "ready HOME_PORT PEER_PORT...")
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import ssl
import time
from collections import Counter
from typing import Any

from aiohttp import web

PAGE_DEFAULT = 500
BOOKMARK_EVERY = 5.0


def _template(obj: dict[str, Any], slots: list[str]) -> bytes:
    """``obj`` as JSON bytes with each "@@SLOT@@" string turned into a %s to fill in."""
    text = json.dumps(obj, separators=(",", ":")).replace("%", "%%")
    for slot in slots:
        text = text.replace(f'"@@{slot}@@"', '"%s"')
    return text.encode()


POD = {
    "metadata": {
        "name": "@@NAME@@",
        "generateName": "web-7d9c8f6b5-",
        "namespace": "shop",
        "uid": "@@UID@@",
        "resourceVersion": "@@RV@@",
        "creationTimestamp": "2026-11-30T10:00:00Z",
        "labels": {"app": "@@APP@@", "pod-template-hash": "7d9c8f6b5", "tier": "backend"},
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"apps/v1","kind":"Deployment"}'
            + " " * 700,
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "9102",
        },
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9c8f6b5", "uid":
             "5c0e1b7e-1f2a-4d6b-9a8e-0c4b5d6e7f80", "controller": True, "blockOwnerDeletion": True}
        ],
        "managedFields": [
            {"manager": m, "operation": "Update", "apiVersion": "v1", "time": "2026-11-30T10:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                                                    "f:spec": {"f:containers": {'k:{"name":"app"}': {
                                                        ".": {}, "f:env": {}, "f:image": {}, "f:ports": {},
                                                        "f:resources": {"f:requests": {"f:cpu": {}}}}}}}}
            for m in ("kube-controller-manager", "kube-scheduler", "kubelet")
        ],
    },
    "spec": {
        "containers": [
            {
                "name": "app",
                "image": "registry.example.com/shop/web:1.42.7",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": f"SETTING_{i}", "value": f"value-number-{i}-of-the-shop-service"} for i in range(10)],
                "resources": {"requests": {"cpu": "@@CPU@@", "memory": "@@MEM@@"}, "limits": {"memory": "@@MEM@@"}},
                "volumeMounts": [{"name": "kube-api-access-x7k2p", "mountPath":
                                  "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                                  "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
                                  "failureThreshold": 3},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            }
        ],
        "nodeName": "@@NODE@@",
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300},
        ],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
        "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                           "fieldPath": "metadata.namespace"}}]}},
        ]}}],
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": "2026-11-30T10:00:05Z"}
            for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "hostIP": "10.0.0.1",
        "hostIPs": [{"ip": "10.0.0.1"}],
        "podIP": "@@IP@@",
        "podIPs": [{"ip": "@@IP@@"}],
        "startTime": "2026-11-30T10:00:01Z",
        "containerStatuses": [{
            "name": "app", "state": {"running": {"startedAt": "2026-11-30T10:00:04Z"}}, "lastState": {},
            "ready": True, "restartCount": 0, "image": "registry.example.com/shop/web:1.42.7",
            "imageID": "registry.example.com/shop/web@sha256:" + "4f" * 32,
            "containerID": "containerd://" + "9a" * 32, "started": True,
        }],
        "qosClass": "Burstable",
    },
}

NODE = {
    "metadata": {
        "name": "@@NAME@@",
        "uid": "@@UID@@",
        "resourceVersion": "@@RV@@",
        "creationTimestamp": "2026-11-30T09:00:00Z",
        "labels": {
            "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": "@@NAME@@", "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "m6i.12xlarge", "topology.kubernetes.io/region": "eu-west-1",
            "topology.kubernetes.io/zone": "@@ZONE@@", "node-role.kubernetes.io/worker": "",
        },
        "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach":
                        "true", "csi.volume.kubernetes.io/nodeid": '{"ebs.csi.aws.com":"i-0abc"}'},
    },
    "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"], "providerID": "aws:///eu-west-1a/i-0abc"},
    "status": {
        "capacity": {"cpu": "48", "memory": "192Gi", "pods": "110", "ephemeral-storage": "200Gi"},
        "allocatable": {"cpu": "48", "memory": "192Gi", "pods": "110", "ephemeral-storage": "190Gi"},
        "conditions": [
            {"type": t, "status": s, "lastHeartbeatTime": "@@BEAT@@", "lastTransitionTime": "2026-11-30T09:00:00Z",
             "reason": r, "message": f"kubelet reports {r}"}
            for t, s, r in (("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                            ("PIDPressure", "False", "KubeletHasSufficientPID"), ("Ready", "True", "KubeletReady"))
        ],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "@@NAME@@"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {"machineID": "ec2" + "0" * 29, "systemUUID": "ec2" + "0" * 33, "bootID": "b" * 36,
                     "kernelVersion": "6.1.0", "osImage": "Bottlerocket OS 1.20", "containerRuntimeVersion":
                     "containerd://1.7.20", "kubeletVersion": "v1.36.2", "kubeProxyVersion": "v1.36.2",
                     "operatingSystem": "linux", "architecture": "amd64"},
        "images": [{"names": [f"registry.example.com/team-{i}/service@sha256:" + "ab" * 32,
                              f"registry.example.com/team-{i}/service:v{i}.0.1"], "sizeBytes": 123456789 + i}
                   for i in range(12)],
    },
}


def _ordered_slots(template: dict[str, Any]) -> list[str]:
    """The order in which the slots appear in the rendered template (json.dumps keeps dict order)."""
    text = json.dumps(template, separators=(",", ":"))
    found: list[str] = []
    index = 0
    while True:
        start = text.find('"@@', index)
        if start < 0:
            return found
        end = text.find('@@"', start + 3)
        found.append(text[start + 3 : end])
        index = end + 3


POD_ORDER = _ordered_slots(POD)
NODE_ORDER = _ordered_slots(NODE)
POD_T = _template(POD, sorted(set(POD_ORDER)))
NODE_T = _template(NODE, sorted(set(NODE_ORDER)))
# Even nodes fill up with CPU-heavy pods, odd nodes with memory-heavy ones: a pod that wants much
# of both passes every per-resource bound and still fits no node (the filter's hardest no).
SHAPES = ((b"2", b"128Mi"), (b"100m", b"6Gi"))


class Peer:
    def __init__(self, index: int, nodes: int, pods: int, rate: float, mode: dict[str, float],
                 counts: Counter[str]) -> None:
        self.counts = counts
        self.index = index
        self.nodes = nodes
        self.pods = pods
        self.rate = rate
        self.mode = mode
        self.version = 1000
        self.churned: list[int] = []
        self.rng = random.Random(index)

    def uid(self, kind: int, i: int) -> bytes:
        # The same in every peer (each is a cluster of its own), so every peer's pages are the same
        # bytes and rendered once (``Server.page``): the stand-in spends its CPU sending, not writing.
        return f"00000000-{kind:04x}-4000-8000-{i:012x}".encode()

    def node(self, i: int, version: int, beat: str = "2026-11-30T10:00:00Z") -> bytes:
        values = {"NAME": f"node-{i}".encode(), "UID": self.uid(1, i), "RV": str(version).encode(),
                  "ZONE": f"eu-west-1{'abc'[i % 3]}".encode(), "BEAT": beat.encode()}
        return NODE_T % tuple(values[s] for s in NODE_ORDER)

    def pod(self, i: int, version: int, node: int | None = None) -> bytes:
        on = i % self.nodes if node is None else node
        cpu, mem = SHAPES[on % 2]
        if i >= self.pods:  # churn pods are small
            cpu, mem = b"100m", b"128Mi"
        values = {"NAME": f"web-{i}".encode(), "UID": self.uid(2, i), "RV": str(version).encode(),
                  "APP": f"app-{i % 50}".encode(), "CPU": cpu, "MEM": mem, "NODE": f"node-{on}".encode(),
                  "IP": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}".encode()}
        return POD_T % tuple(values[s] for s in POD_ORDER)


class Server:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.mode = {"churn": opts.churn, "heartbeats": opts.heartbeats}
        self.counts: Counter[str] = Counter()
        self.pages: dict[tuple[str, int, int], bytes] = {}
        self.peers = [Peer(i, opts.nodes, opts.pods, opts.rate, self.mode, self.counts) for i in range(opts.peers)]
        self.ports: list[int] = []

    # --- peers ---------------------------------------------------------------------------------

    def peer_app(self, peer: Peer) -> web.Application:
        app = web.Application()

        async def readyz(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def nodes(request: web.Request) -> web.StreamResponse:
            if request.query.get("watch") == "true":
                return await self.watch(request, peer, "nodes")
            return await self.list(request, peer, peer.nodes, peer.node)

        async def pods(request: web.Request) -> web.StreamResponse:
            if request.query.get("watch") == "true":
                return await self.watch(request, peer, "pods")
            if "labelSelector" in request.query:  # the delegator's own watches: no delegates here
                return web.json_response({"kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": []})
            return await self.list(request, peer, peer.pods, peer.pod)

        app.router.add_get("/readyz", readyz)
        app.router.add_get("/api/v1/nodes", nodes)
        app.router.add_get("/api/v1/pods", pods)
        return app

    async def list(self, request: web.Request, peer: Peer, total: int, render: Any) -> web.StreamResponse:
        limit = int(request.query.get("limit", "0"))
        start = int(request.query.get("continue", "0") or 0)
        end = min(total, start + limit) if limit else total
        more = b"" if end >= total else str(end).encode()
        head = b'{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"%d","continue":"%s"},"items":[' % (
            peer.version,
            more,
        )
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await self._send(response, head, peer.rate)
        for chunk_start in range(start, end, PAGE_DEFAULT):
            chunk_end = min(end, chunk_start + PAGE_DEFAULT)
            body = self.page(render, chunk_start, chunk_end)
            await self._send(response, (b"," if chunk_start > start else b"") + body, peer.rate)
        await response.write(b"]}")
        await response.write_eof()
        return response

    def page(self, render: Any, start: int, end: int) -> bytes:
        kind = render.__name__
        key = (kind, start, end)
        body = self.pages.get(key)
        if body is None:
            body = self.pages[key] = b",".join(render(i, 1) for i in range(start, end))
        return body

    async def _send(self, response: web.StreamResponse, data: bytes, rate: float) -> None:
        if not rate:
            await response.write(data)
            return
        step = 256 * 1024
        for offset in range(0, len(data), step):
            piece = data[offset : offset + step]
            await response.write(piece)
            await asyncio.sleep(len(piece) / (rate * 1e6))

    async def watch(self, request: web.Request, peer: Peer, kind: str) -> web.StreamResponse:
        seconds = float(request.query.get("timeoutSeconds", "300"))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        until = time.monotonic() + seconds
        bookmark = time.monotonic() + BOOKMARK_EVERY
        tick = 0.05
        rng = peer.rng
        while time.monotonic() < until:
            await asyncio.sleep(tick)
            lines = []
            if kind == "nodes" and self.mode["heartbeats"]:
                for _ in range(_per_tick(self.mode["heartbeats"] * peer.nodes / 40.0, tick, rng)):
                    peer.version += 1
                    beat = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    lines.append(b'{"type":"MODIFIED","object":%s}\n' % peer.node(rng.randrange(peer.nodes),
                                                                                   peer.version, beat))
            if kind == "pods" and self.mode["churn"]:
                for _ in range(_per_tick(self.mode["churn"], tick, rng)):
                    peer.version += 1
                    if peer.churned and (len(peer.churned) > 50 or rng.random() < 0.5):
                        gone = peer.churned.pop(0)
                        lines.append(b'{"type":"DELETED","object":%s}\n' % peer.pod(gone, peer.version, gone % 7))
                    else:
                        fresh = peer.pods + peer.version
                        peer.churned.append(fresh)
                        lines.append(b'{"type":"ADDED","object":%s}\n' % peer.pod(fresh, peer.version, fresh % 7))
            if time.monotonic() > bookmark:
                bookmark = time.monotonic() + BOOKMARK_EVERY
                lines.append(b'{"type":"BOOKMARK","object":{"kind":"%s","metadata":{"resourceVersion":"%d"}}}\n' % (
                    b"Node" if kind == "nodes" else b"Pod", peer.version))
            if lines:
                self.counts[f"{kind} watch events sent"] += len(lines)
                try:
                    await response.write(b"".join(lines))
                except (ConnectionResetError, RuntimeError):
                    return response
        await response.write_eof()
        return response

    # --- home ----------------------------------------------------------------------------------

    def home_app(self) -> web.Application:
        app = web.Application()
        counts = self.counts

        async def peerclusters(request: web.Request) -> web.StreamResponse:
            if request.query.get("watch") == "true":
                response = web.StreamResponse()
                await response.prepare(request)
                await asyncio.sleep(float(request.query.get("timeoutSeconds", "300")))
                await response.write_eof()
                return response
            items = [{
                "apiVersion": "spillover.io/v1alpha1", "kind": "PeerCluster",
                "metadata": {"name": f"p{p.index}", "uid": f"pc-{p.index}", "resourceVersion": "5",
                             "finalizers": ["spillover.io/detach"]},
                "spec": {"kubeconfigSecretRef": {"name": f"peer-p{p.index}-kubeconfig",
                                                 "namespace": "spillover-system", "key": "kubeconfig"},
                         "cost": 1.0 + p.index / 10},
            } for p in self.peers]
            return web.json_response({"metadata": {"resourceVersion": "5"}, "items": items})

        async def secret(request: web.Request) -> web.Response:
            index = int(request.match_info["name"].split("-")[1][1:])
            kubeconfig = kubeconfig_for(self.ports[index], self.opts.tls)
            data = {"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()}
            return web.json_response({"metadata": {"name": request.match_info["name"]}, "data": data})

        async def write(request: web.Request) -> web.Response:
            path = request.path
            if path.startswith("/api/v1/nodes"):
                counts["virtual node " + ("status" if path.endswith("/status") else request.method)] += 1
            elif "leases" in path:
                counts["lease"] += 1
            elif "peerclusters" in path:
                counts["peercluster status" if path.endswith("/status") else "peercluster"] += 1
            elif "events" in path:
                counts["event"] += 1
            await request.read()
            return web.json_response({}, status=201 if request.method == "POST" else 200)

        async def virtual_node(_: web.Request) -> web.Response:
            return web.Response(body=b'{"status":{"conditions":[{"type":"Ready","status":"True"}]}}',
                                content_type="application/json")

        async def show_counts(_: web.Request) -> web.Response:
            return web.json_response(dict(counts))

        async def set_mode(request: web.Request) -> web.Response:
            for key in ("churn", "heartbeats"):
                if key in request.query:
                    self.mode[key] = float(request.query[key])
            return web.json_response(self.mode)

        app.router.add_get("/apis/spillover.io/v1alpha1/peerclusters", peerclusters)
        app.router.add_get("/api/v1/namespaces/spillover-system/secrets/{name}", secret)
        app.router.add_get("/api/v1/nodes/{name}", virtual_node)
        app.router.add_get("/bench/counts", show_counts)
        app.router.add_post("/bench/mode", set_mode)
        app.router.add_route("*", "/{tail:.*}", write)
        return app

    async def run(self) -> None:
        runners = []
        context = None
        if self.opts.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(f"{self.opts.tls}/server.crt", f"{self.opts.tls}/server.key")
        for app in [self.home_app(), *(self.peer_app(p) for p in self.peers)]:
            runner = web.AppRunner(app, access_log=None, handle_signals=True)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=256, ssl_context=context)
            await site.start()
            runners.append(runner)
            self.ports.append(runner.addresses[0][1])  # the port the OS chose for port 0
        home, *peers = self.ports
        self.ports = peers
        print("ready", home, *peers, flush=True)
        await asyncio.Event().wait()


def kubeconfig_for(port: int, tls: str) -> str:
    """A kubeconfig for one of the served apiservers (with its CA when served over TLS)."""
    scheme, authority = "http", ""
    if tls:
        scheme = "https"
        with open(f"{tls}/ca.crt", "rb") as f:
            authority = f", certificate-authority-data: {base64.b64encode(f.read()).decode()}"
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: '{scheme}://127.0.0.1:{port}'{authority}}}}}]\n"
        "users: [{name: u, user: {token: bench}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )


def _per_tick(per_second: float, tick: float, rng: random.Random) -> int:
    expected = per_second * tick
    whole = int(expected)
    return whole + (1 if rng.random() < expected - whole else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=0.0, help="MB/s per list response (0: as fast as it goes)")
    parser.add_argument("--tls", default="", help="directory with ca.crt, server.crt, server.key: serve HTTPS")
    parser.add_argument("--churn", type=float, default=20.0, help="pod events per second per peer")
    parser.add_argument("--heartbeats", type=float, default=1.0,
                        help="node heartbeats, as a multiple of one per node every 40 s")
    opts = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(Server(opts).run())


if __name__ == "__main__":
    main()
