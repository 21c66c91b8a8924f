"""Pods/s bound by the real kube-scheduler, with and without Spillover in the loop, in one run.

A bench lab (home with --nodes kwok nodes) gets Spillover's manifests and certificates as the
lab installs them (hack/lab/spillover_lab/spillover.py), and two Spillover processes with the
manifests' arguments: one as in the own-scheduler mode (extender on loopback, plain HTTP), one as
in the extender mode (HTTPS with the scheduler's client certificate; HTTP/2 by ALPN). For each
round, --pods pods are created for a scheduler that is not running yet, then that scheduler is
started and the bench measures, from a watch, the rate between the first and the last binding.
The schedulers are the same binary, all named `spillover` (the webhook hands opted-in pods to
that name), one at a time; the cases differ in their KubeSchedulerConfiguration:
  baseline:  no extender, the default percentageOfNodesToScore  (pods in an unlabelled namespace)
  own:       manifests/own-scheduler's configuration: loopback HTTP, its percentageOfNodesToScore
  http:      the same extender entry with the default percentage: the scheduler alone decides
  https:     manifests/extender/kube-scheduler-config.yaml's entry: HTTPS, client certificate
  https-h1:  the same, the scheduler started with DISABLE_HTTP2=1 (HTTP/1.1 over TLS)
  bypass:    the own configuration, pods not opted in (never call out: should be 1.0x)
  filteronly, bindonly: the http case with only that verb (diagnosis: which verb costs what)
The default is baseline, own, https, https-h1 (--cases picks others). Every round runs each case
once, and the order rotates from round to round (use a multiple of the number of cases): the
case that runs first in a round was measured 15-35 % slower than the same work run later (the
lab still busy with the deletion before it), so a fixed order would favour whichever runs later.

Usage: python hack/bench/scheduler_throughput.py [--pods 500] [--nodes 50] [--rounds 4] [--cases ...] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lab"))
sys.path.insert(0, str(HERE.parent.parent))

from kubernetes_asyncio import client, config  # noqa: E402
from proc_cpu import cpu_snapshot  # noqa: E402  (hack/bench, the script's own folder)
from spillover_lab import lab as lablib  # noqa: E402
from spillover_lab import manifests, procs  # noqa: E402
from spillover_lab import spillover as sp  # noqa: E402

OPTED = "bench-opted"
PLAIN = "bench-plain"
SCHEDULER = "spillover"
"""Every case's profile name: the one the webhook gives opted-in pods (--scheduler-name)."""
CASES = ("baseline", "own", "https", "https-h1")
ALL_CASES = (*CASES, "http", "bypass", "filteronly", "bindonly")


def write_profile(root: Path, nodes: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    profile = root / "bench-profile.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "clusters": {
                    "home": {
                        "home": True,
                        "nodes": [{"count": nodes, "cpu": "64", "memory": "256Gi", "pods": 250}],
                    },
                }
            }
        )
    )
    return profile


def scheduler_config(state: lablib.State, case: str, extenders: dict[str, Any]) -> Path:
    """The case's KubeSchedulerConfiguration, with the bench's connection and no leader election."""
    home = state.root / "home"
    cfg: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(home / "scheduler.kubeconfig"), "qps": 1000, "burst": 2000},
        "leaderElection": {"leaderElect": False},
        "profiles": [{"schedulerName": SCHEDULER}],
    }
    if case in ("own", "bypass"):
        cfg["profiles"] = extenders["own-profiles"]
    if case != "baseline":
        cfg["extenders"] = extenders["https" if case.startswith("https") else "http"]
    drop = {"filteronly": ("bind", "preempt"), "bindonly": ("filter", "preempt")}.get(case, ())
    if drop:
        cfg["extenders"] = [
            {k: v for k, v in e.items() if k not in {f"{verb}Verb" for verb in drop}} for e in cfg["extenders"]
        ]
    path = home / f"bench-{case}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def extender_entries(state: lablib.State, plain_port: int, tls_port: int) -> dict[str, Any]:
    """The extender entries and the own scheduler's profiles, as the manifests have them."""
    rendered = sp.render(state, "own-scheduler")
    deployment = manifests.one(rendered, "Deployment", sp.DEPLOYMENTS["own-scheduler"])
    own = manifests.scheduler_config(rendered, deployment)
    http = [{**e, "urlPrefix": f"http://127.0.0.1:{plain_port}"} for e in own["extenders"]]
    snippet = yaml.safe_load((manifests.MANIFESTS / "extender" / "kube-scheduler-config.yaml").read_text())
    certs = sp.certs_dir(state)
    https = []
    for entry in snippet["extenders"]:
        tls = {**entry["tlsConfig"], "caFile": str(certs / "ca.crt")}
        tls.update(certFile=str(certs / "client.crt"), keyFile=str(certs / "client.key"))
        https.append({**entry, "urlPrefix": f"https://127.0.0.1:{tls_port}", "tlsConfig": tls})
    for profile in own["profiles"]:
        assert profile["schedulerName"] == SCHEDULER, "the bench names every case's profile as the manifest does"
    return {"own-profiles": own["profiles"], "http": http, "https": https}


def start_spillovers(state: lablib.State) -> tuple[dict[str, procs.Proc], int, int]:
    """Spillover twice, with the arguments of each mode's Deployment: plain (the own-scheduler
    mode's, whose webhook is registered) and TLS (the extender mode's), on ports of their own."""
    started = {}
    ports = {}
    for mode in ("extender", "own-scheduler"):  # own-scheduler last: its webhook stays registered
        rendered = sp.install(state, mode)
        sp.start(state, mode, rendered, scheduler=False)
        name = "spillover-tls" if mode == "extender" else "spillover-plain"
        proc = sp.running_serve(state)
        assert proc is not None
        proc.name = name
        started[name] = proc
        ports[name] = state.ports("home")["extender"]
        state.data["extra"] = [p for p in state.data.get("extra", []) if p["pid"] != proc.pid]
        state.add_proc(None, proc)
        if mode == "extender":  # the second one needs ports of its own
            home = state.data["clusters"]["home"]["ports"]
            for key in ("extender", "webhook", "metrics", "kubelet"):
                home[key] = procs.free_port()
            state.save()
    return started, ports["spillover-plain"], ports["spillover-tls"]


async def create_pods(core: client.CoreV1Api, namespace: str, count: int, tag: str) -> None:
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{tag}-{i}", "labels": {"bench": tag}},
            "spec": {
                "schedulerName": SCHEDULER,
                "terminationGracePeriodSeconds": 0,
                "containers": [
                    {
                        "name": "c",
                        "image": "registry.example/app:1",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }
                ],
            },
        }
        async with sem:
            await core.create_namespaced_pod(namespace, body)

    await asyncio.gather(*(one(i) for i in range(count)))


async def measure(
    api: client.ApiClient, namespace: str, tag: str, count: int, start: Any, watched: dict[str, int]
) -> tuple[float, dict[str, float]]:
    """Start the scheduler (``start()``); return pods/s between the first and last binding, and
    the CPU seconds each lab process (and the scheduler under test) spent over the same span,
    per pod, so a slower case shows which process paid for it."""
    import msgspec

    from extender.kube.raw import RawClient

    raw = RawClient(api, timeout=30)
    path = f"/api/v1/namespaces/{namespace}/pods"
    selector = ("labelSelector", f"bench={tag}")
    listed = msgspec.json.decode(await raw.get(path, query=[selector]))
    rv = listed["metadata"]["resourceVersion"]
    bound_at: dict[str, float] = {}
    proc = start()
    watched = {**watched, "scheduler": proc.pid}
    cpu_first: dict[str, float] = {}
    deadline = time.monotonic() + 120
    try:
        while len(bound_at) < count and time.monotonic() < deadline:
            query = [selector, ("watch", "true"), ("resourceVersion", rv), ("timeoutSeconds", 120)]
            async for line in raw.stream_lines(path, query, idle_timeout=130):
                event = msgspec.json.decode(line)
                pod = event.get("object", {})
                rv = pod.get("metadata", {}).get("resourceVersion", rv)
                name = pod.get("metadata", {}).get("name")
                if pod.get("spec", {}).get("nodeName") and name not in bound_at:
                    bound_at[name] = time.monotonic()
                    if len(bound_at) == 1:
                        cpu_first = cpu_snapshot(watched)
                    if len(bound_at) == count:
                        break
        cpu_last = cpu_snapshot(watched)
    finally:
        procs.stop(proc)
        await raw.close()
    if len(bound_at) < count:
        raise RuntimeError(f"only {len(bound_at)}/{count} pods bound in 120 s (see the scheduler log)")
    times = sorted(bound_at.values())
    per_pod_ms = {name: (cpu_last[name] - cpu_first.get(name, 0.0)) * 1000 / (count - 1) for name in cpu_last}
    return (count - 1) / (times[-1] - times[0]), per_pod_ms


async def delete_all(core: client.CoreV1Api, namespace: str, tag: str) -> None:
    await core.delete_collection_namespaced_pod(namespace, label_selector=f"bench={tag}", grace_period_seconds=0)
    while (await core.list_namespaced_pod(namespace, label_selector=f"bench={tag}")).items:
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace) -> int:
    os.environ["SPILLOVER_LAB_DIR"] = str(Path(args.lab_dir).expanduser())
    root = lablib.lab_root()
    cases = tuple(args.cases.split(",")) if args.cases else CASES
    unknown = set(cases) - set(ALL_CASES)
    if unknown:
        print(f"error: unknown cases {sorted(unknown)}; the cases are {', '.join(ALL_CASES)}", file=sys.stderr)
        return 2
    print(f"[bench] bench lab in {root}: home with {args.nodes} kwok nodes", flush=True)
    state = lablib.up(write_profile(root, args.nodes), root=root)
    try:
        sp.stop(state)
        spillovers, plain_port, tls_port = start_spillovers(state)
        extenders = extender_entries(state, plain_port, tls_port)
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(state.kubeconfig("home")), client_configuration=cfg)
        cfg.connection_pool_maxsize = 64
        api = client.ApiClient(cfg)
        core = client.CoreV1Api(api)
        for ns, opted in ((OPTED, True), (PLAIN, False)):
            body = {"metadata": {"name": ns, "labels": {"spillover.io/enabled": "true"} if opted else {}}}
            try:
                await core.create_namespace(body)
            except client.exceptions.ApiException as exc:
                if exc.status != 409:
                    raise
            while True:
                try:
                    await core.read_namespaced_service_account("default", ns)
                    break
                except client.exceptions.ApiException:
                    await asyncio.sleep(0.2)
        bin_dir = Path(state.data["bin_dir"])
        results: dict[str, list[float]] = {k: [] for k in cases}
        cpu: dict[str, list[dict[str, float]]] = {k: [] for k in cases}
        watched = {p.name: p.pid for p in state.procs() if p.alive()}
        watched["bench"] = os.getpid()
        order = list(cases)
        for round_no in range(args.rounds):
            shift = round_no % len(order)
            for case in order[shift:] + order[:shift]:
                tag = f"{case}-{round_no}"
                ns = PLAIN if case in ("baseline", "bypass") else OPTED
                await create_pods(core, ns, args.pods, tag)
                conf = scheduler_config(state, case, extenders)
                argv = [
                    str(bin_dir / "kube-scheduler"),
                    f"--config={conf}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={procs.free_port()}",
                    f"--authentication-kubeconfig={state.root / 'home' / 'scheduler.kubeconfig'}",
                    f"--authorization-kubeconfig={state.root / 'home' / 'scheduler.kubeconfig'}",
                ]
                env = dict(os.environ, DISABLE_HTTP2="1") if case == "https-h1" else None

                def start(argv: list[str] = argv, case: str = case, env: dict[str, str] | None = env) -> procs.Proc:
                    log = state.root / "home" / "logs" / f"bench-{case}.log"
                    return procs.start(f"bench-{case}", argv, log, env=env)

                rate, per_pod = await measure(api, ns, tag, args.pods, start, watched)
                results[case].append(rate)
                cpu[case].append(per_pod)
                print(f"[bench] round {round_no + 1}/{args.rounds} {case:9}: {rate:6.0f} pods/s", flush=True)
                await delete_all(core, ns, tag)
        await api.close()
        for proc in spillovers.values():
            procs.stop(proc)
    finally:
        if not args.keep:
            lablib.down(root, quiet=True)
    report(args, cases, results, cpu)
    return 0


def report(
    args: argparse.Namespace,
    cases: tuple[str, ...],
    results: dict[str, list[float]],
    cpu: dict[str, list[dict[str, float]]],
) -> None:
    print()
    print(f"kube-scheduler v1.36.2, {args.nodes} kwok nodes, {args.pods} pods per run, median of {args.rounds} rounds")
    labels = {
        "baseline": "baseline (no extender)",
        "own": "own scheduler (loopback HTTP, manifest)",
        "http": "extender over HTTP, default percentage",
        "https": "extender over HTTPS (HTTP/2)",
        "https-h1": "extender over HTTPS (HTTP/1.1)",
        "bypass": "own scheduler, pods not opted in",
        "filteronly": "extender over HTTP, filter only",
        "bindonly": "extender over HTTP, bind only",
    }
    medians = {case: statistics.median(results[case]) for case in cases}
    base = medians.get("baseline")
    print(f"{'case':42} {'pods/s':>8} {'vs baseline':>12} {'per-round ratios':>18}")
    for case in cases:
        if base is None:
            print(f"{labels[case]:42} {medians[case]:8.0f}")
            continue
        paired = [c / b for c, b in zip(results[case], results["baseline"], strict=True)]
        print(
            f"{labels[case]:42} {medians[case]:8.0f} {medians[case] / base:11.2f}x "
            f"{statistics.median(paired):8.2f}x ({', '.join(f'{r:.2f}' for r in paired)})"
        )
    if "https" in cases and "https-h1" in cases:
        paired = [a / b for a, b in zip(results["https"], results["https-h1"], strict=True)]
        print(f"HTTPS: HTTP/2 vs HTTP/1.1 over TLS, median of per-round ratios {statistics.median(paired):.2f}x")
    if "https" in cases and "http" in cases:
        paired = [a / b for a, b in zip(results["https"], results["http"], strict=True)]
        print(f"HTTPS (HTTP/2) vs plain HTTP, median of per-round ratios {statistics.median(paired):.2f}x")
    print_cpu(cpu)


def print_cpu(cpu: dict[str, list[dict[str, float]]]) -> None:
    """Median CPU milliseconds per bound pod, per process: where a slower case spends its time."""
    names = sorted({name for rounds in cpu.values() for per_pod in rounds for name in per_pod})
    print()
    print("CPU ms per bound pod, median over rounds (2 cores: a pod at 400/s has 5 ms of CPU in all)")
    print(f"{'process':28}" + "".join(f"{kind:>11}" for kind in cpu))
    for name in [*names, "total"]:
        row = []
        for rounds in cpu.values():
            values = [sum(r.values()) if name == "total" else r.get(name, 0.0) for r in rounds]
            row.append(statistics.median(values) if values else 0.0)
        print(f"{name:28}" + "".join(f"{v:11.3f}" for v in row))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4, help="a multiple of the number of cases (each runs first)")
    parser.add_argument("--lab-dir", default="~/.cache/spillover-lab/bench-lab")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    parser.add_argument("--quick", action="store_true", help="200 pods per round (what `make bench LAB=1` runs)")
    parser.add_argument(
        "--cases", default="", help=f"comma-separated cases (default {','.join(CASES)}) of: {', '.join(ALL_CASES)}"
    )
    args = parser.parse_args()
    if args.quick:
        args.pods = 200
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
