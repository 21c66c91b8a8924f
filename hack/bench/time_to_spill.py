"""Time to spill: from pod creation in home to the proxy showing Running (mirrored from its delegate).

Uses the default lab (home 2 x 4 CPU, east 3 x 4 CPU, west 2 x 2 CPU) with Spillover serving.
Home is filled first by pods of an unlabelled namespace, then a burst of N pods (50m each) is
created in an opted-in namespace; a watch on home records when each proxy turns Running. As a
baseline in the same run, the same burst is created directly in east (no Spillover involved) and
timed to Running there: the peer's own scheduler + kwok.

With ``--admission both`` the spilled burst runs twice, once with pods prepared by Spillover's
webhook and once by the admission policies of manifests/policies (the webhook's registration
removed meanwhile), and prints the CPU each process spent per pod for both: what the webhook and the
policies cost the home apiserver (`--admission policies,webhook` runs them the other way round).

Usage: python hack/bench/time_to_spill.py [--pods 200] [--breakdown] [--admission webhook|policies|both] [--quick]
(goal: p50 <= 1 s, p99 <= 2 s)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lab"))
sys.path.insert(0, str(HERE.parent.parent))

from proc_cpu import CpuMeter  # noqa: E402  (hack/bench, the script's own folder)
from spillover_lab import faults  # noqa: E402
from spillover_lab import lab as lablib  # noqa: E402
from spillover_lab import spillover as sp  # noqa: E402

from extender.kube import client as kube_client  # noqa: E402
from extender.kube.raw import ApiError, RawClient  # noqa: E402

NS = "spill-bench"
DIRECT_NS = f"{NS}-direct"
"""The baseline burst's namespace in east."""
FILL_NS = "spill-bench-fill"


def pod(name: str, cpu: str, tag: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": tag}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "c",
                    "image": "registry.example/app:1",
                    "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}},
                }
            ],
        },
    }


async def ensure_ns(raw: RawClient, name: str, enabled: bool) -> None:
    body = {"metadata": {"name": name, "labels": {"spillover.io/enabled": "true"} if enabled else {}}}
    try:
        await raw.request("POST", "/api/v1/namespaces", body)
    except ApiError as exc:
        if exc.status != 409:
            raise
    deadline = time.monotonic() + 30
    while True:
        try:
            await raw.get(f"/api/v1/namespaces/{name}/serviceaccounts/default")
            return
        except ApiError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def burst(raw: RawClient, namespace: str, tag: str, count: int, cpu: str) -> dict[str, float]:
    """Create ``count`` pods at once; return name -> seconds from its create call to Running."""
    path = f"/api/v1/namespaces/{namespace}/pods"
    selector = ("labelSelector", f"bench={tag}")
    rv = msgspec.json.decode(await raw.get(path, query=[selector]))["metadata"]["resourceVersion"]
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal rv
        while not done.is_set():
            query = [selector, ("watch", "true"), ("resourceVersion", rv), ("timeoutSeconds", 120)]
            async for line in raw.stream_lines(path, query, idle_timeout=130):
                obj = msgspec.json.decode(line).get("object", {})
                rv = obj.get("metadata", {}).get("resourceVersion", rv)
                name = obj.get("metadata", {}).get("name")
                if obj.get("status", {}).get("phase") == "Running" and name not in running:
                    running[name] = time.monotonic()
                    if len(running) == count:
                        done.set()
                        return

    watcher = asyncio.create_task(watch())
    sem = asyncio.Semaphore(50)

    async def create(i: int) -> None:
        name = f"{tag}-{i}"
        async with sem:
            started = time.monotonic()
            await raw.request("POST", path, pod(name, cpu, tag))
            created[name] = started

    await asyncio.gather(*(create(i) for i in range(count)))
    try:
        await asyncio.wait_for(done.wait(), 120)
    finally:
        watcher.cancel()
    return {name: running[name] - created[name] for name in created}


async def cleanup(raw: RawClient, namespace: str, tag: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/pods"
    await raw.request("DELETE", path, query=[("labelSelector", f"bench={tag}")])
    while msgspec.json.decode(await raw.get(path, query=[("labelSelector", f"bench={tag}")]))["items"]:
        await asyncio.sleep(0.5)


ADMISSION = "/apis/admissionregistration.k8s.io/v1"
WEBHOOK = f"{ADMISSION}/mutatingwebhookconfigurations/spillover.io"
"""Spillover's webhook registration (manifests/base/webhook.yaml), removed while the policies serve."""
_removed: dict[str, Any] = {}


async def use_policies(raw: RawClient, state: lablib.State, on: bool) -> None:
    """Prepare pods with the admission policies (the webhook's registration removed, kept aside) or
    with the webhook again; returns once a dry-run pod comes out prepared the chosen way."""
    for doc in faults.admission_policies(faults.lab_scheduler(state)):
        collection = f"{ADMISSION}/{faults.POLICY_PLURALS[doc['kind']]}"
        try:
            if on:
                await raw.request("POST", collection, doc)
            else:
                await raw.request("DELETE", f"{collection}/{doc['metadata']['name']}")
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
    if on:
        registration = msgspec.json.decode(await raw.get(WEBHOOK))
        _removed["webhook"] = {k: v for k, v in registration.items() if k != "metadata"} | {
            "metadata": {"name": registration["metadata"]["name"]}
        }
        await raw.request("DELETE", WEBHOOK)
    elif "webhook" in _removed:
        await raw.request("POST", WEBHOOK.rsplit("/", 1)[0], _removed.pop("webhook"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the apiserver picks registrations up from watches
        try:
            answer = msgspec.json.decode(
                await raw.request(
                    "POST", f"/api/v1/namespaces/{NS}/pods", pod("probe", "50m", "probe"), query=[("dryRun", "All")]
                )
            )
        except ApiError:  # refused by the webhook's guard until the policies take over
            await asyncio.sleep(0.5)
            continue
        if "spillover.io/spillable" in answer["spec"]["containers"][0]["resources"].get("requests", {}):
            await asyncio.sleep(2.0)  # every apiserver watch has caught up
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("pods were not prepared within 30 s after switching admission")


def lab_procs(state: lablib.State) -> list[tuple[str, Any]]:
    out = [(name, proc) for name, cluster in state.data["clusters"].items() for proc in map(_proc, cluster["procs"])]
    return out + [("spillover", _proc(p)) for p in state.data.get("extra", [])]


def _proc(data: dict[str, Any]) -> Any:
    from spillover_lab import procs

    return procs.Proc.from_json(data)


class Stages:
    """When each spilled pod reached each step, seen from watches on home and every peer."""

    STEPS = (
        ("created", "exists in home (its creation, through the webhook)"),
        ("delegated", "its delegate exists in a peer"),
        ("delegate_running", "its delegate is Running there"),
        ("bound", "the proxy is bound in home (the Binding, after the delegate)"),
        ("running", "the proxy shows Running in home (mirrored)"),
    )

    def __init__(self) -> None:
        self.at: dict[str, dict[str, float]] = {}

    def mark(self, pod: str, step: str) -> None:
        self.at.setdefault(pod, {}).setdefault(step, time.monotonic())

    async def watch(self, raw: RawClient, path: str, selector: str, home: bool, stop: asyncio.Event) -> None:
        rv = msgspec.json.decode(await raw.get(path, query=[("labelSelector", selector)]))["metadata"][
            "resourceVersion"
        ]
        while not stop.is_set():
            query = [("labelSelector", selector), ("watch", "true"), ("resourceVersion", rv), ("timeoutSeconds", 60)]
            async for line in raw.stream_lines(path, query, idle_timeout=70):
                obj = msgspec.json.decode(line).get("object", {})
                meta = obj.get("metadata", {})
                rv = meta.get("resourceVersion", rv)
                pod = meta.get("name") if home else (meta.get("labels") or {}).get("spillover.io/home-name")
                if not pod:
                    continue
                running = obj.get("status", {}).get("phase") == "Running"
                if home:
                    self.mark(pod, "created")
                    if obj.get("spec", {}).get("nodeName"):
                        self.mark(pod, "bound")
                    if running:
                        self.mark(pod, "running")
                else:
                    self.mark(pod, "delegated")
                    if running:
                        self.mark(pod, "delegate_running")

    def report(self, start: float) -> None:
        print("where the time went, seconds from the burst's start (every spilled pod):")
        for step, what in self.STEPS:
            seen = sorted(at[step] - start for at in self.at.values() if step in at)
            if seen:
                p90 = seen[min(len(seen) - 1, int(len(seen) * 0.9))]
                print(f"  {what:62} p50 {statistics.median(seen):5.2f}  p90 {p90:5.2f}  last {seen[-1]:5.2f}")


def summary(label: str, seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{label:44} p50 {p50:6.3f}s  p99 {p99:6.3f}s  max {ordered[-1]:6.3f}s", flush=True)
    return p50, p99


async def run(args: argparse.Namespace) -> int:
    state = lablib.up()
    sp.ensure_running(state)
    home_api = await kube_client.from_file(str(state.kubeconfig("home")))
    east_api = await kube_client.from_file(str(state.kubeconfig("east")))
    west_api = await kube_client.from_file(str(state.kubeconfig("west")))
    home, east = RawClient(home_api, timeout=30), RawClient(east_api, timeout=30)
    west = RawClient(west_api, timeout=30)
    stages = Stages()
    spilled: dict[str, dict[str, float]] = {}
    spill_cpu: dict[str, CpuMeter] = {}
    started = 0.0
    try:
        await ensure_ns(home, NS, enabled=True)
        await ensure_ns(home, FILL_NS, enabled=False)
        # Not NS: Spillover puts delegates only into a namespace it created there.
        await ensure_ns(east, DIRECT_NS, enabled=False)
        print("[bench] filling home's 8 CPUs", flush=True)
        await burst(home, FILL_NS, "fill", 8, "1")
        print(f"[bench] baseline: {args.pods} pods created directly in east", flush=True)
        watched = {f"{cluster}/{proc.name}": proc.pid for cluster, proc in lab_procs(state)}
        direct_cpu = CpuMeter(watched)
        direct = await burst(east, DIRECT_NS, "direct", args.pods, "50m")
        direct_cpu.stop()
        await cleanup(east, DIRECT_NS, "direct")
        modes = args.admission
        for mode in modes:
            if mode == "policies":
                await use_policies(home, state, True)
            print(f"[bench] spill: {args.pods} pods created in home, all spilling (prepared by the {mode})", flush=True)
            stop = asyncio.Event()
            watches = []
            if args.breakdown:  # three more watches: they load the machine being measured, so opt-in
                watches = [
                    asyncio.create_task(stages.watch(home, f"/api/v1/namespaces/{NS}/pods", "bench=spill", True, stop)),
                    *(
                        asyncio.create_task(stages.watch(peer, "/api/v1/pods", "bench=spill", False, stop))
                        for peer in (east, west)
                    ),
                ]
            meter = CpuMeter(watched)
            started = time.monotonic()
            try:
                spilled[mode] = await burst(home, NS, "spill", args.pods, "50m")
            finally:
                if mode == "policies" and sys.exc_info()[0] is not None:
                    await use_policies(home, state, False)  # the lab as it was, even on failure
            meter.stop()
            spill_cpu[mode] = meter
            stop.set()
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
            await cleanup(home, NS, "spill")
            if mode == "policies":
                await use_policies(home, state, False)
        await cleanup(home, FILL_NS, "fill")
    finally:
        await home.close()
        await east.close()
        await west.close()
        await home_api.close()
        await east_api.close()
        await west_api.close()
    print()
    base50, base99 = summary("baseline: created in east directly", list(direct.values()))
    p50 = p99 = 0.0
    for mode, seconds in spilled.items():
        p50, p99 = summary(f"spilled through Spillover ({mode})", list(seconds.values()))
        print(f"ratio to baseline: p50 {p50 / base50:.2f}x, p99 {p99 / base99:.2f}x")
    if args.breakdown:
        stages.report(started)
    spans = ", ".join(f"{m.span:.2f} s {mode}" for mode, m in spill_cpu.items())
    print(f"CPU ms per pod over each burst ({direct_cpu.span:.2f} s direct, {spans}):")
    print(f"  {'process':36} {'direct':>8} " + " ".join(f"{mode:>9}" for mode in spill_cpu))
    first = next(iter(spill_cpu.values()))
    rows = sorted(watched, key=lambda name: -first.used[name])
    for name in [*rows, "total"]:
        figures = [m.per_pod_ms(name, args.pods) for m in (direct_cpu, *spill_cpu.values())]
        if max(figures) >= 0.2:
            print(f"  {name:36} " + " ".join(f"{ms:8.2f} " for ms in figures))
    print(f"goal p50 <= 1 s: {'met' if p50 <= 1 else 'NOT met'}; goal p99 <= 2 s: {'met' if p99 <= 2 else 'NOT met'}")
    return 0


def _modes(text: str) -> list[str]:
    modes = ["webhook", "policies"] if text == "both" else text.split(",")
    if not modes or any(m not in ("webhook", "policies") for m in modes) or len(set(modes)) != len(modes):
        raise argparse.ArgumentTypeError(f"{text!r}: expected webhook, policies, both, or the two in an order")
    return modes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a burst of 50 pods (what `make bench LAB=1` runs)")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also watch every step of every spilled pod and print where the time went "
        "(costs the machine three more watches, so figures run a little slower)",
    )
    parser.add_argument(
        "--admission",
        type=_modes,
        default=["webhook"],
        help="what prepares the spilled pods: webhook (Spillover's, the default), policies (those of "
        "manifests/policies), or both in turn, in the order given (webhook,policies or policies,webhook; "
        "'both' is webhook,policies): the CPU each costs per pod, side by side",
    )
    args = parser.parse_args()
    if args.quick:
        args.pods = 50
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
