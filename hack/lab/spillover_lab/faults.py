"""Faults on demand for the lab: kill or restart one component by PID, cut a link, run two replicas.

What the fault table of the README measures (tests/e2e/test_faults.py): a peer's apiserver or
etcd killed and started again, the home apiserver restarted, Spillover killed or stopped, a peer
partitioned from Spillover, one of two Spillover replicas down. Every process is found by the PID
the lab recorded and checked against its command line before it is signalled; nothing here is
ever looked up by name.

``TcpProxy`` is a loopback TCP relay. Between Spillover and a peer apiserver (Spillover reaches
peers through kubeconfigs, so the peer is joined again with the relay's address) it is a link
that can be cut: a cut stops forwarding in both directions without closing anything, as a
network partition does (connections stall, new ones get no answer, and TCP carries on when it
heals). In front of Spillover replicas it stands in for their Service: new connections go to a
replica whose /readyz answers 200 (polled, as kubelet's readiness probe and the endpoints
controller would), existing ones stay where they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import procs
from .lab import LabError, State, log, start_component
from .procs import LOOPBACK, free_port

CHUNK = 65536


# ---- components by PID ------------------------------------------------------------------------
def component(state: State, cluster: str, name: str) -> procs.Proc:
    for entry in state.data["clusters"][cluster]["procs"]:
        proc = procs.Proc.from_json(entry)
        if proc.name == name:
            return proc
    raise LabError(f"{cluster} has no recorded {name}")


def kill(state: State, cluster: str, name: str) -> procs.Proc:
    """SIGKILL one recorded component (a crash: no shutdown of any kind) and wait until it is gone."""
    proc = component(state, cluster, name)
    if not proc.alive():
        raise LabError(f"{cluster}/{name} (pid {proc.pid}) is not running")
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while proc.alive() and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(proc.pid, os.WNOHANG)
        time.sleep(0.05)
    return proc


def restart_with(
    state: State, cluster: str, name: str, change: Callable[[list[str]], list[str]], timeout: float = 90.0
) -> procs.Proc:
    """Stop a component and start it again with its command line changed by ``change`` (recorded:
    ``down`` and later restarts use the new one). Waits for an apiserver to be ready again."""
    old = component(state, cluster, name)
    if not old.argv:
        raise LabError(f"{cluster}/{name} was recorded without its command line; restart the lab")
    procs.stop(old)
    entry = next(e for e in state.data["clusters"][cluster]["procs"] if e["name"] == name)
    entry["argv"] = change(list(old.argv))
    state.save()
    return start_component(state, cluster, name, timeout)


def with_flags(flags: dict[str, str]) -> Callable[[list[str]], list[str]]:
    """An argv change that sets each ``--flag=value`` (replacing the flag if it is there)."""

    def change(argv: list[str]) -> list[str]:
        kept = [a for a in argv if a.split("=", 1)[0] not in flags]
        return [*kept, *(f"{flag}={value}" for flag, value in flags.items())]

    return change


# ---- a loopback TCP relay that can be cut, or spread over ready backends ----------------------
@dataclass
class Backend:
    port: int
    ready_url: str | None = None
    """Polled for 200 when set; new connections go only to backends that answer it."""
    ready: bool = True


@dataclass
class TcpProxy:
    """A relay from a loopback port to one or more loopback backends, run in a thread of its own."""

    backends: list[Backend]
    listen_port: int = 0
    probe_every: float = 0.5
    connections: int = 0
    refused: int = 0
    """Connections that found no ready backend (closed at once, as a Service with no endpoints)."""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _open: asyncio.Event | None = None
    _pairs: set[asyncio.Task[None]] = field(default_factory=set)
    _next: int = 0

    def start(self) -> TcpProxy:
        self.listen_port = self.listen_port or free_port()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(started))
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                started.set()

        self._thread = threading.Thread(target=run, name=f"tcp-proxy-{self.listen_port}", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise LabError(f"relay on port {self.listen_port} did not start: {failure[0]}")
        return self

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.listen_port}"

    def cut(self) -> None:
        """A partition: nothing more is forwarded either way, nothing is closed."""
        assert self._loop is not None and self._open is not None
        self._loop.call_soon_threadsafe(self._open.clear)

    def heal(self) -> None:
        assert self._loop is not None and self._open is not None
        self._loop.call_soon_threadsafe(self._open.set)

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _serve(self, started: threading.Event) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._accept, LOOPBACK, self.listen_port, backlog=1024)
        probes = asyncio.create_task(self._probe()) if any(b.ready_url for b in self.backends) else None
        started.set()
        async with server:
            await self._stop.wait()
        if probes is not None:
            probes.cancel()
        for task in list(self._pairs):
            task.cancel()

    async def _probe(self) -> None:
        while True:
            for backend in self.backends:
                if backend.ready_url:
                    backend.ready = await asyncio.to_thread(_answers_200, backend.ready_url)
            await asyncio.sleep(self.probe_every)

    def _pick(self) -> Backend | None:
        ready = [b for b in self.backends if b.ready]
        if not ready:
            return None
        self._next += 1
        return ready[self._next % len(ready)]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._open is not None
        await self._open.wait()  # partitioned: the client's handshake goes unanswered
        backend = self._pick()
        if backend is None:
            self.refused += 1
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, backend.port)
        except OSError:
            self.refused += 1
            writer.close()
            return
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._pairs.add(task)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._pairs.discard(task)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._open is not None
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(CHUNK):
                await self._open.wait()  # held, not lost, while cut: TCP retransmits across a partition
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.write_eof()


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# ---- a peer reached through a relay ------------------------------------------------------------
def kubeconfig_via(source: Path, target: Path, address: str) -> Path:
    """A copy of a kubeconfig whose server is ``https://address`` (the certificate names
    127.0.0.1, whatever the port, so TLS verifies as before)."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://{address}"
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def peer_port(state: State, peer: str) -> int:
    return int(state.ports(peer)["apiserver"])


# ---- restartPolicy: Always --------------------------------------------------------------------
class Restarter:
    """Starts named extra processes again when they exit, as kubelet restarts a Pod's container
    (restartPolicy Always, no back-off to speak of). kube-scheduler exits when it cannot renew
    its Lease (the home apiserver restarting): in a cluster its Pod comes back by itself; in the
    lab this does it. A process the lab stopped and dropped from its record stays stopped."""

    def __init__(self, state: State, names: tuple[str, ...], every: float = 0.5) -> None:
        self.state, self.names, self.every = state, names, every
        self.restarts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-restarter", daemon=True)

    def __enter__(self) -> Restarter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for i, entry in enumerate(list(self.state.data.get("extra", []))):
                proc = procs.Proc.from_json(entry)
                if proc.name not in self.names or proc.alive() or not proc.argv:
                    continue
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(proc.pid, os.WNOHANG)
                again = procs.start(proc.name, proc.argv, Path(proc.log), env=dict(os.environ))
                extra = self.state.data.get("extra", [])
                if i < len(extra) and extra[i].get("pid") == proc.pid:
                    extra[i] = again.to_json()
                    self.state.save()
                self.restarts[proc.name] += 1
                log(f"{proc.name} exited (pid {proc.pid}); started again as kubelet would (pid {again.pid})")


# ---- Spillover replicas behind a stand-in Service ----------------------------------------------
@dataclass
class Replica:
    name: str
    proc: procs.Proc
    extender: int
    webhook: int
    metrics: int

    @property
    def ready_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics}/readyz"


def serve_command(state: State) -> tuple[list[str], dict[str, str]]:
    """The command line and environment the lab runs `spillover serve` with (its mode's manifest)."""
    recorded = state.data.get("spillover") or {}
    if "serve_argv" not in recorded:
        raise LabError("Spillover was never started in this lab; start it first (spillover.ensure_running)")
    return list(recorded["serve_argv"]), dict(recorded.get("serve_env") or {})


def stop_serve_only(state: State, kill: bool = False) -> procs.Proc:
    """Stop the running `spillover serve` (SIGTERM, or SIGKILL: a crash), leaving its scheduler
    and the lab's record of it: ``spillover.start_serve`` brings it back as it was."""
    from . import spillover as sp

    proc = sp.running_serve(state)
    if proc is None:
        raise LabError("spillover serve is not running")
    if kill:
        os.kill(proc.pid, signal.SIGKILL)
    procs.stop(proc)
    return proc


def start_replica(state: State, name: str, extra_args: tuple[str, ...] = ()) -> Replica:
    """One more `spillover serve`, as the lab runs it (leader election on), on ports of its own and
    named ``name`` (POD_NAME); recorded, so `down` stops it."""
    ports = {"extender": free_port(), "webhook": free_port(), "metrics": free_port(), "kubelet": free_port()}
    argv, env = serve_command(state)
    argv = [a for a in argv if not a.startswith(tuple(f"--{kind}-port=" for kind in ports))]
    argv += [f"--{kind}-port={port}" for kind, port in ports.items()]
    argv += [*(["--leader-elect"] if "--leader-elect" not in argv else []), *extra_args]
    log_file = state.root / "home" / "logs" / f"spillover-{name}.log"
    proc = procs.start(f"spillover-{name}", argv, log_file, env={**os.environ, **env, "POD_NAME": name})
    state.data["extra"] = [p for p in state.data.get("extra", []) if p["name"] != proc.name]
    state.add_proc(None, proc)
    replica = Replica(name, proc, ports["extender"], ports["webhook"], ports["metrics"])
    deadline = time.monotonic() + 90
    while not _answers_200(replica.ready_url):
        problem = "exited" if not proc.alive() else "not ready in 90s" if time.monotonic() > deadline else ""
        if problem:  # never left running: a stray replica would hold the Lease and renew virtual nodes
            procs.stop(proc)
            forget(state, proc)
            raise LabError(f"replica {name} {problem}; its log:\n{procs.tail(proc.log, 30)}")
        time.sleep(0.2)
    log(f"spillover replica {name} ready (pid {proc.pid})")
    return replica


def stop_replica(replica: Replica, timeout: float = 30.0) -> float:
    """SIGTERM, as kubelet does on a rolling update; returns the seconds it took to exit."""
    started = time.monotonic()
    procs.stop(replica.proc, timeout=timeout)
    return time.monotonic() - started


def forget(state: State, proc: procs.Proc) -> None:
    """Drop a stopped extra process from the lab's record (a dead one there marks the lab unhealthy)."""
    state.data["extra"] = [p for p in state.data.get("extra", []) if p["pid"] != proc.pid]
    state.save()


# ---- admission without Spillover ---------------------------------------------------------------
POLICIES = Path(__file__).resolve().parents[3] / "manifests" / "policies" / "extender"
POLICY_PLURALS = {
    "MutatingAdmissionPolicy": "mutatingadmissionpolicies",
    "MutatingAdmissionPolicyBinding": "mutatingadmissionpolicybindings",
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
}


def admission_policies(scheduler: str) -> list[dict[str, Any]]:
    """manifests/policies' objects, handing pods to ``scheduler`` (what the own-scheduler overlay
    sets: ``spillover``; the extender install's is ``default-scheduler``)."""
    docs = [
        d for f in ("mutating.yaml", "validating.yaml") for d in yaml.safe_load_all((POLICIES / f).read_text()) if d
    ]
    for doc in docs:
        for variable in doc["spec"].get("variables") or ():
            if doc["kind"] == "MutatingAdmissionPolicy" and variable["name"] == "scheduler":
                variable["expression"] = f"'{scheduler}'"
    return docs


def lab_scheduler(state: State) -> str:
    """The scheduler that consults Spillover in the lab's running mode."""
    from . import spillover as sp

    return "spillover" if sp.current_mode(state) == "own-scheduler" else "default-scheduler"
