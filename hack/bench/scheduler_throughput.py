"""Pods/s bound by the real kube-scheduler, with and without Spillover in the loop, in one run.

A bench lab (home with 50 kwok nodes) runs `spillover serve`. For each round, 500 pods are
created for a scheduler that is not running yet, then that scheduler is started and the bench
measures, from a watch, the rate between the first and the last binding. Three schedulers, the
same binary and settings but for the extender entry:
  baseline:  no extender                              (pods in an unlabelled namespace)
  spillover: extender configured, pods opted in       (filter + prioritize + bind by Spillover)
  bypass:    extender configured, pods not opted in   (never call out: should be 1.0x)
Every round runs each case once, and the order rotates from round to round (use a multiple of
three rounds): the case that runs first in a round was measured 15-35 % slower than the same
work run later (the lab still busy with the deletion before it), so a fixed order would favour
whichever case runs later.

Usage: python hack/bench/scheduler_throughput.py [--pods 500] [--nodes 50] [--rounds 3]
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
from spillover_lab import procs  # noqa: E402
from spillover_lab import spillover as sp  # noqa: E402

OPTED = "bench-opted"
PLAIN = "bench-plain"


def write_profile(root: Path, nodes: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    profile = root / "bench-profile.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "clusters": {
                    "home": {
                        "extender": True,
                        "nodes": [{"count": nodes, "cpu": "64", "memory": "256Gi", "pods": 250}],
                    },
                }
            }
        )
    )
    return profile


def scheduler_config(state: lablib.State, name: str, extender: bool, drop_verbs: tuple[str, ...] = ()) -> Path:
    home = state.root / "home"
    cfg: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(home / "scheduler.kubeconfig"), "qps": 1000, "burst": 2000},
        "leaderElection": {"leaderElect": False},
        "profiles": [{"schedulerName": name}],
    }
    if extender:
        base = yaml.safe_load((home / "scheduler-config.yaml").read_text())
        cfg["extenders"] = base["extenders"]
        for verb in drop_verbs:  # diagnosis: which verb costs what
            for entry in cfg["extenders"]:
                entry.pop(f"{verb}Verb", None)
    path = home / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


async def create_pods(core: client.CoreV1Api, namespace: str, scheduler: str, count: int, tag: str) -> None:
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{tag}-{i}", "labels": {"bench": tag}},
            "spec": {
                "schedulerName": scheduler,
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
    print(f"[bench] bench lab in {root}: home with {args.nodes} kwok nodes", flush=True)
    state = lablib.up(write_profile(root, args.nodes), root=root)
    started_lab = True
    try:
        sp.install(state)
        if sp.running_serve(state) is None:
            sp.start_serve(state)
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
        kinds = {
            "baseline": (PLAIN, "bench-baseline", False),
            "spillover": (OPTED, "bench-extender", True),
            "bypass": (PLAIN, "bench-extender", True),
            "filteronly": (OPTED, "bench-filteronly", True),
            "bindonly": (OPTED, "bench-bindonly", True),
        }
        if args.only:
            kinds = {k: kinds[k] for k in args.only.split(",")}
        else:
            kinds = {k: kinds[k] for k in ("baseline", "spillover", "bypass")}
        results: dict[str, list[float]] = {k: [] for k in kinds}
        cpu: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        watched = {p.name: p.pid for p in state.procs()}
        watched["bench"] = os.getpid()
        order = list(kinds.items())
        for round_no in range(args.rounds):
            shift = round_no % len(order)
            for kind, (ns, scheduler, extender) in order[shift:] + order[:shift]:
                tag = f"{kind}-{round_no}"
                await create_pods(core, ns, scheduler, args.pods, tag)
                drop = {"filteronly": ("bind", "preempt"), "bindonly": ("filter", "preempt")}.get(kind, ())
                conf = scheduler_config(state, scheduler, extender, drop)
                argv = [
                    str(bin_dir / "kube-scheduler"),
                    f"--config={conf}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={procs.free_port()}",
                    f"--authentication-kubeconfig={state.root / 'home' / 'scheduler.kubeconfig'}",
                    f"--authorization-kubeconfig={state.root / 'home' / 'scheduler.kubeconfig'}",
                ]

                def start(argv: list[str] = argv, kind: str = kind) -> procs.Proc:
                    return procs.start(f"bench-{kind}", argv, state.root / "home" / "logs" / f"bench-{kind}.log")

                rate, per_pod = await measure(api, ns, tag, args.pods, start, watched)
                results[kind].append(rate)
                cpu[kind].append(per_pod)
                print(f"[bench] round {round_no + 1}/{args.rounds} {kind:9}: {rate:6.0f} pods/s", flush=True)
                await delete_all(core, ns, tag)
        await api.close()
    finally:
        if started_lab and not args.keep:
            lablib.down(root, quiet=True)
    if args.only:
        print_cpu(cpu)
        return 0
    base = statistics.median(results["baseline"])
    print()
    print(f"kube-scheduler v1.36.2, {args.nodes} kwok nodes, {args.pods} pods per run, median of {args.rounds} rounds")
    print(f"{'case':40} {'pods/s':>8} {'ratio':>7}")
    print(f"{'baseline (no extender)':40} {base:8.0f} {1.0:7.2f}x")
    opted = statistics.median(results["spillover"])
    bypass = statistics.median(results["bypass"])
    print(f"{'Spillover in the loop (opted-in pods)':40} {opted:8.0f} {opted / base:7.2f}x   goal >= 0.90x")
    print(f"{'extender configured, pods not opted in':40} {bypass:8.0f} {bypass / base:7.2f}x   goal ~1.00x")
    # Each round runs the three cases back to back, so a ratio within a round is spared most of
    # the machine's drift between rounds; the bypass case shows how much noise is left.
    paired = [s / b for s, b in zip(results["spillover"], results["baseline"], strict=True)]
    paired_bypass = [s / b for s, b in zip(results["bypass"], results["baseline"], strict=True)]
    print(
        f"median of per-round ratios: Spillover {statistics.median(paired):.2f}x "
        f"(rounds {', '.join(f'{r:.2f}' for r in paired)}); "
        f"not opted in {statistics.median(paired_bypass):.2f}x (rounds {', '.join(f'{r:.2f}' for r in paired_bypass)})"
    )
    print_cpu(cpu)
    return 0


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
    parser.add_argument("--rounds", type=int, default=3, help="a multiple of 3, so each case runs first as often")
    parser.add_argument("--lab-dir", default="~/.cache/spillover-lab/bench-lab")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated cases to run, no summary (for diagnosis): baseline, spillover, bypass, "
        "filteronly (extender filters, scheduler binds), bindonly (extender binds only)",
    )
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
