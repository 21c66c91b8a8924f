"""Bring the lab up, report on it, and take it down; state lives in one JSON file.

The state file is written after every process start, so even an `up` that dies half-way leaves
enough behind for `down` to stop exactly what it started.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import build, procs
from .api import Api, ApiError
from .cluster import Cluster, Ports, load_profile
from .procs import Proc

REPO = Path(__file__).resolve().parents[3]
DEFAULT_PROFILE = Path(__file__).resolve().parents[1] / "profile.yaml"
START_TIMEOUT = 120.0


def lab_root() -> Path:
    return Path(os.environ.get("SPILLOVER_LAB_DIR") or REPO / ".lab")


def log(message: str) -> None:
    print(f"[lab] {message}", flush=True)


class LabError(RuntimeError):
    """The lab could not do what was asked; the message says what to do next."""


class State:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "state.json"
        self.data: dict[str, Any] = {"clusters": {}, "extra": []}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                log(f"ignoring unreadable {self.path}")

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)

    def procs(self) -> list[Proc]:
        out = [procs.Proc.from_json(p) for p in self.data.get("extra", [])]
        for cluster in self.data["clusters"].values():
            out += [procs.Proc.from_json(p) for p in cluster.get("procs", [])]
        return out

    def add_proc(self, cluster: str | None, proc: Proc) -> None:
        if cluster is None:
            self.data.setdefault("extra", []).append(proc.to_json())
        else:
            self.data["clusters"][cluster].setdefault("procs", []).append(proc.to_json())
        self.save()

    def cluster_names(self) -> list[str]:
        return list(self.data["clusters"])

    def kubeconfig(self, name: str) -> Path:
        return Path(self.data["clusters"][name]["kubeconfig"])

    def ports(self, name: str) -> dict[str, int]:
        ports: dict[str, int] = self.data["clusters"][name]["ports"]
        return ports


def healthy(state: State) -> bool:
    if not state.data["clusters"]:
        return False
    if not all(p.alive() for p in state.procs()):
        return False
    for name, cluster in state.data["clusters"].items():
        api = Api(cluster["server"], state.root / name / "pki")
        if not api.ready():
            return False
    return True


def _start(state: State, cluster: str | None, name: str, argv: list[str], logfile: Path) -> procs.Proc:
    proc = procs.start(name, argv, logfile)
    state.add_proc(cluster, proc)
    return proc


def _wait_etcd(port: int, proc: procs.Proc, deadline: float) -> None:
    import urllib.request

    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{procs.LOOPBACK}:{port}/health", timeout=1) as r:
                if b'"health":"true"' in r.read().replace(b" ", b""):
                    return
        except OSError:
            pass
        if not proc.alive():
            raise LabError(f"etcd exited before becoming healthy; its log:\n{procs.tail(proc.log)}")
        time.sleep(0.1)
    raise LabError(f"etcd was not healthy in time; its log:\n{procs.tail(proc.log)}")


def _wait_nodes_ready(api: Api, cluster: Cluster, deadline: float) -> None:
    want = {n["metadata"]["name"] for n in cluster.node_objects()}
    pending = set(want)
    while time.monotonic() < deadline:
        nodes = api.request("GET", "/api/v1/nodes?labelSelector=type%3Dkwok")["items"]
        pending = set(want)
        for node in nodes:
            conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
            taints = {t["key"] for t in node.get("spec", {}).get("taints", []) or []}
            if conditions.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints:
                pending.discard(node["metadata"]["name"])
        if not pending:
            return
        time.sleep(0.25)
    raise LabError(f"{cluster.name}: nodes not Ready in time: {sorted(pending)}")


def _wait_default_service_account(api: Api, name: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            return
        except ApiError:
            time.sleep(0.2)
    raise LabError(f"{name}: the default ServiceAccount never appeared (is kube-controller-manager running?)")


START_ATTEMPTS = 3
"""Starts on fresh ports when a picked port was taken before its process bound it."""


def up(profile: Path = DEFAULT_PROFILE, root: Path | None = None) -> State:
    """Start every cluster of the profile; reuse a lab that is already fully up."""
    root = root or lab_root()
    state = State(root)
    if state.data["clusters"]:
        if healthy(state):
            log(f"lab already up in {root} (clusters: {', '.join(state.cluster_names())})")
            return state
        dead = [p.name for p in state.procs() if not p.alive()]
        log(
            f"found a half-started or stale lab in {root} "
            f"(not running: {', '.join(dead) or 'none'}); cleaning it up first"
        )
        down(root)
        state = State(root)
    specs = load_profile(profile)
    bin_dir = build.ensure_built()
    etcd = build.etcd_binary()
    started = time.monotonic()
    for attempt in range(1, START_ATTEMPTS + 1):
        if root.exists():
            for child in root.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
        root.mkdir(parents=True, exist_ok=True)
        state.data = {"clusters": {}, "extra": [], "profile": str(profile), "bin_dir": str(bin_dir)}
        clusters = [Cluster(spec, root, Ports.pick(spec.home)) for spec in specs]
        try:
            _start_all(state, clusters, bin_dir, etcd)
            break
        except BaseException as exc:
            down(root, quiet=True)
            lost_port = isinstance(exc, LabError) and "address already in use" in str(exc)
            if not lost_port or attempt == START_ATTEMPTS:
                log("start failed; stopped what was started (run `hack/lab/up` again to retry)")
                raise
            state = State(root)
            log(f"a port was taken between picking and binding it; starting again on new ports ({attempt})")
    log(f"lab up in {time.monotonic() - started:.1f}s; kubeconfigs: " + ", ".join(str(c.kubeconfig) for c in clusters))
    return state


def _start_all(state: State, clusters: list[Cluster], bin_dir: Path, etcd: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    etcds = {}
    for c in clusters:
        c.prepare()
        state.data["clusters"][c.name] = {
            "server": c.server,
            "kubeconfig": str(c.kubeconfig),
            "ports": asdict(c.ports),
            "home": c.spec.home,
            "procs": [],
        }
        state.save()
        log(f"{c.name}: starting etcd and kube-apiserver on {c.server}")
        etcds[c.name] = _start(state, c.name, "etcd", c.etcd_argv(etcd), c.dir / "logs" / "etcd.log")
    for c in clusters:
        _wait_etcd(c.ports.etcd, etcds[c.name], deadline)
    apiservers = {
        c.name: _start(
            state, c.name, "kube-apiserver", c.apiserver_argv(bin_dir), c.dir / "logs" / "kube-apiserver.log"
        )
        for c in clusters
    }
    for c in clusters:
        proc = apiservers[c.name]
        try:
            Api(c.server, c.pki).wait_ready(deadline, f"{c.name} kube-apiserver", proc.alive)
        except (TimeoutError, RuntimeError) as exc:
            raise LabError(f"{exc}; its log:\n{procs.tail(proc.log)}") from None
        log(f"{c.name}: kube-apiserver ready; starting controller-manager, scheduler, kwok")
        _start(
            state,
            c.name,
            "kube-controller-manager",
            c.controller_manager_argv(bin_dir),
            c.dir / "logs" / "kube-controller-manager.log",
        )
        _start(state, c.name, "kube-scheduler", c.scheduler_argv(bin_dir), c.dir / "logs" / "kube-scheduler.log")
        _start(state, c.name, "kwok", c.kwok_argv(bin_dir), c.dir / "logs" / "kwok.log")
        api = Api(c.server, c.pki)
        for node in c.node_objects():
            api.request("POST", "/api/v1/nodes", node)
    for c in clusters:
        api = Api(c.server, c.pki)
        _wait_nodes_ready(api, c, deadline)
        _wait_default_service_account(api, c.name, deadline)
        for proc in state.procs():
            if not proc.alive():
                raise LabError(f"{proc.name} exited; its log:\n{procs.tail(proc.log)}")
        log(f"{c.name}: {len(c.node_objects())} kwok nodes Ready")


def stop_component(state: State, cluster: str, component: str) -> procs.Proc:
    """Stop one recorded process (for failure tests); ``start_component`` brings it back."""
    for entry in state.data["clusters"][cluster]["procs"]:
        proc = procs.Proc.from_json(entry)
        if proc.name == component:
            procs.stop(proc)
            return proc
    raise LabError(f"{cluster} has no recorded {component}")


def start_component(state: State, cluster: str, component: str, timeout: float = 60.0) -> procs.Proc:
    entries = state.data["clusters"][cluster]["procs"]
    for i, entry in enumerate(entries):
        old = procs.Proc.from_json(entry)
        if old.name != component:
            continue
        if old.alive():
            return old
        if not old.argv:
            raise LabError(f"{cluster}/{component} was recorded without its command line; restart the lab")
        proc = procs.start(component, old.argv, Path(old.log))
        entries[i] = proc.to_json()
        state.save()
        if component == "kube-apiserver":
            api = Api(state.data["clusters"][cluster]["server"], state.root / cluster / "pki")
            api.wait_ready(time.monotonic() + timeout, f"{cluster} kube-apiserver", proc.alive)
        return proc
    raise LabError(f"{cluster} has no recorded {component}")


def replace_component(state: State, cluster: str, component: str, argv: list[str]) -> procs.Proc:
    """Restart one recorded process with another command line (home's kube-scheduler with
    Spillover's extender entry); ``restore_component`` brings back the one the lab started."""
    original = state.data["clusters"][cluster].setdefault("original_argv", {})
    if component not in original:
        original[component] = _recorded(state, cluster, component).argv
    return _restart(state, cluster, component, argv)


def restore_component(state: State, cluster: str, component: str) -> procs.Proc | None:
    original = state.data["clusters"][cluster].get("original_argv", {}).pop(component, None)
    if original is None:
        return None
    return _restart(state, cluster, component, original)


def _recorded(state: State, cluster: str, component: str) -> procs.Proc:
    for entry in state.data["clusters"][cluster]["procs"]:
        if entry["name"] == component:
            return procs.Proc.from_json(entry)
    raise LabError(f"{cluster} has no recorded {component}")


def _restart(state: State, cluster: str, component: str, argv: list[str]) -> procs.Proc:
    old = _recorded(state, cluster, component)
    procs.stop(old)
    proc = procs.start(component, argv, Path(old.log))
    entries = state.data["clusters"][cluster]["procs"]
    entries[:] = [proc.to_json() if e["name"] == component else e for e in entries]
    state.save()
    return proc


def down(root: Path | None = None, quiet: bool = False) -> int:
    """Stop exactly the recorded processes (verified by cmdline); returns how many were running."""
    root = root or lab_root()
    state = State(root)
    stopped = 0
    # Stop in reverse start order so controllers go before their apiserver and etcd.
    for proc in reversed(state.procs()):
        if procs.stop(proc):
            stopped += 1
            if not quiet:
                log(f"stopped {proc.name} (pid {proc.pid})")
    if state.path.exists():
        state.path.unlink()
    if not quiet:
        log(f"lab down ({stopped} processes stopped)")
    return stopped


def status(root: Path | None = None) -> list[dict[str, Any]]:
    root = root or lab_root()
    state = State(root)
    rows = []
    for name, cluster in state.data["clusters"].items():
        for p in cluster.get("procs", []):
            proc = procs.Proc.from_json(p)
            rows.append(
                {"cluster": name, "process": proc.name, "pid": proc.pid, "running": proc.alive(), "log": proc.log}
            )
    for p in state.data.get("extra", []):
        proc = procs.Proc.from_json(p)
        rows.append({"cluster": "-", "process": proc.name, "pid": proc.pid, "running": proc.alive(), "log": proc.log})
    return rows
