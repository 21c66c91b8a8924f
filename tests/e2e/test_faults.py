"""The fault table of the README: each row is one test here, against the real lab.

Each test runs a workload of spilled pods, breaks one thing (a peer's apiserver or etcd, the link
to a peer, the home apiserver, Spillover itself, one of two replicas), brings it back and
measures: pods lost (the workload's pods not Running with their delegate once recovered, or,
where nothing should have moved, pods replaced), duplicate delegates (a proxy with more than
one), orphans (a delegate whose pod is gone or elsewhere), and the time from the fault's end to
a whole workload again. Each prints one line ``[fault] ...`` with its figures.

The long one, Spillover down past node grace and eviction, runs once: home's controller-manager
and apiserver are restarted with short node-lifecycle timings (30 s grace, 10 s default
tolerations; a real cluster's are 40-50 s and 300 s) and put back after. What it proves does not
depend on those values: a canary pod bound to the virtual node while Spillover is down, with the
apiserver's default tolerations, is evicted as any pod would be; the spilled pods tolerate the
node-lifecycle taints without a time limit and stay.

Lab: home 2 x 4 CPU; east 3 x 4 CPU (cost 1); west 2 x 2 CPU (cost 2); peers joined with a 20 s
grace period. The workload is remote-only, so home's room plays no part.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.client.models import V1Pod
from spillover_lab import faults
from spillover_lab import lab as lablib
from spillover_lab import spillover as sp

from tests.e2e.conftest import Cluster
from tests.e2e.waiting import eventually
from tests.e2e.workloads import (
    create_deployment,
    delete_deployment,
    ensure_namespace,
    pause_peer,
    pods,
    spillover_cli,
    unique,
    wait_peer_ready,
)

NS = "faults"
REMOTE = {"spillover.io/policy": "remote-only"}
EAST_ONLY = {**REMOTE, "spillover.io/clusters": "east"}
MANAGED = "app.kubernetes.io/managed-by=spillover,spillover.io/proxy-uid"
RECOVER_WITHIN = 150.0
"""Seconds a workload may take to be whole again (orphans are swept once 30 s old)."""
NODE_LOSS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


@dataclass
class Figures:
    pods: int
    running: int
    lost: int
    duplicates: int
    orphans: int

    @property
    def whole(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.orphans == 0


async def delegates(clusters: dict[str, Cluster], app: str) -> list[tuple[str, Any]]:
    out = []
    for peer in ("east", "west"):
        listed = await clusters[peer].core.list_pod_for_all_namespaces(label_selector=f"{MANAGED},app={app}")
        out += [(peer, d) for d in listed.items if d.metadata.deletion_timestamp is None]
    return out


def ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


async def figures(clusters: dict[str, Cluster], app: str, replicas: int) -> Figures:
    """Where the workload stands: a pod counts when Running and Ready with exactly one delegate."""
    home = clusters["home"]
    live = [p for p in await pods(home, NS, app) if p.metadata.deletion_timestamp is None]
    remote = await delegates(clusters, app)
    per_proxy = Counter(d.metadata.labels["spillover.io/proxy-uid"] for _, d in remote)
    where = {p.metadata.uid: p.spec.node_name for p in live}
    orphans = sum(
        1 for peer, d in remote if where.get(d.metadata.labels["spillover.io/proxy-uid"]) != f"spillover-{peer}"
    )
    running = sum(1 for p in live if p.status.phase == "Running" and ready(p) and per_proxy[p.metadata.uid] == 1)
    return Figures(
        pods=len(live),
        running=running,
        lost=replicas - running,
        duplicates=sum(1 for count in per_proxy.values() if count > 1),
        orphans=orphans,
    )


async def recovered(clusters: dict[str, Cluster], app: str, replicas: int, since: float) -> tuple[Figures, float]:
    """Wait until the workload is whole; returns its figures and the seconds since ``since``."""
    last: list[Figures] = []

    async def whole() -> Figures | None:
        found = await figures(clusters, app, replicas)
        last[:] = [found]
        return found if found.whole else None

    try:
        found = await eventually(whole, RECOVER_WITHIN, f"{app}: {replicas} pods Running, no duplicate, no orphan", 1)
    except AssertionError:
        raise AssertionError(f"{app} not whole {RECOVER_WITHIN:g}s after the fault: {last}") from None
    return found, time.monotonic() - since


def report(row: str, found: Figures, seconds: float, extra: str = "") -> None:
    print(
        f"\n[fault] {row}: pods lost {found.lost}, duplicate delegates {found.duplicates}, orphans {found.orphans}, "
        f"recovered in {seconds:.0f}s{'; ' + extra if extra else ''}"
    )


async def _where(clusters: dict[str, Cluster], app: str) -> str:
    placed = Counter(peer for peer, _ in await delegates(clusters, app))
    return ", ".join(f"{count} in {peer}" for peer, count in sorted(placed.items()))


async def some_delegates(clusters: dict[str, Cluster], app: str, count: int, peer: str | None = None) -> None:
    async def enough() -> bool:
        return sum(1 for p, _ in await delegates(clusters, app) if peer in (None, p)) >= count

    await eventually(enough, 90, f"{count} delegates of {app}", interval=0.2)


async def running(
    home: Cluster, clusters: dict[str, Cluster], app: str, replicas: int, hints: dict[str, str]
) -> tuple[set[str], set[str]]:
    """A Deployment of ``replicas`` spilled pods, once whole; returns its ``identities``."""
    await create_deployment(home, NS, app, replicas, "100m", hints)
    await recovered(clusters, app, replicas, time.monotonic())
    return await identities(clusters, app)


async def identities(clusters: dict[str, Cluster], app: str) -> tuple[set[str], set[str]]:
    """UIDs of the workload's pods at home and of their delegates: a restart changes them."""
    live = {p.metadata.uid for p in await pods(clusters["home"], NS, app) if p.metadata.deletion_timestamp is None}
    return live, {d.metadata.uid for _, d in await delegates(clusters, app)}


@pytest.fixture(scope="module")
def restarts(spillover: lablib.State) -> Iterator[faults.Restarter]:
    """The own scheduler started again when it exits, as its Pod's kubelet would: kube-scheduler
    exits when it cannot renew its Lease (the home apiserver down a few seconds)."""
    with faults.Restarter(spillover, (sp.SCHEDULER,)) as restarter:
        yield restarter


@pytest_asyncio.fixture(scope="module")
async def home(
    clusters: dict[str, Cluster], spillover: lablib.State, restarts: faults.Restarter
) -> AsyncIterator[Cluster]:
    await ensure_namespace(clusters["home"], NS, enabled=True)
    yield clusters["home"]


async def _settled(home: Cluster, clusters: dict[str, Cluster]) -> None:
    """Both peers Ready for Spillover, and each running pods of its own: after an earlier row
    restarted its apiserver, a peer's scheduler has been seen to take a while to schedule again
    (delegates then waiting there past the remote-pending timeout are withdrawn, by design)."""
    for peer in ("east", "west"):
        await wait_peer_ready(home, peer)
        await _schedules(clusters[peer])


async def _schedules(peer: Cluster) -> None:
    name = unique("probe")
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "app", "image": "registry.example/app:1"}],
        },
    }
    await peer.core.create_namespaced_pod("default", body)
    try:

        async def runs() -> bool:
            pod: V1Pod = await peer.core.read_namespaced_pod(name, "default")
            return pod.status.phase == "Running"

        await eventually(runs, 90, f"a pod of {peer.name}'s own running there", interval=0.5)
    finally:
        await peer.core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


# ---- a peer's control plane ----------------------------------------------------------------------
async def test_peer_apiserver_killed_mid_burst(home: Cluster, clusters: dict[str, Cluster], lab: lablib.State) -> None:
    await _settled(home, clusters)
    app = unique("peer-api")
    await create_deployment(home, NS, app, 20, "100m", REMOTE)
    try:
        await some_delegates(clusters, app, 4, "east")
        killed = time.monotonic()
        await asyncio.to_thread(faults.kill, lab, "east", "kube-apiserver")
        await asyncio.sleep(3)
        await asyncio.to_thread(lablib.start_component, lab, "east", "kube-apiserver")
        back = time.monotonic()
        found, seconds = await recovered(clusters, app, 20, back)
        report(
            f"peer apiserver killed mid-burst, back after {back - killed:.0f}s",
            found,
            seconds,
            await _where(clusters, app),
        )
    finally:
        await delete_deployment(home, NS, app, timeout=120)


async def test_peer_etcd_restarted(home: Cluster, clusters: dict[str, Cluster], lab: lablib.State) -> None:
    """East's etcd killed under pods running there, and pods created meanwhile. (Not mid-burst:
    kwok, east's stand-in kubelet, drops a pod whose Running it failed to write while etcd was
    gone, where a kubelet would retry; that would be kwok's loss, not Spillover's.)"""
    await _settled(home, clusters)
    app, during = unique("etcd-ran"), unique("etcd-new")
    try:
        before = await running(home, clusters, app, 8, EAST_ONLY)
        killed = time.monotonic()
        await asyncio.to_thread(faults.kill, lab, "east", "etcd")
        await create_deployment(home, NS, during, 6, "100m", REMOTE)
        await asyncio.sleep(3)
        await asyncio.to_thread(lablib.start_component, lab, "east", "etcd")
        back = time.monotonic()
        found, seconds = await recovered(clusters, app, 8, back)
        new, _ = await recovered(clusters, during, 6, back)
        assert await identities(clusters, app) == before, "pods running in east were not replaced"
        report(
            f"peer etcd killed, back after {back - killed:.0f}s, pods created meanwhile",
            Figures(
                14,
                found.running + new.running,
                found.lost + new.lost,
                found.duplicates + new.duplicates,
                found.orphans + new.orphans,
            ),
            seconds,
            f"0 running pods restarted; the new ones: {await _where(clusters, during)}",
        )
    finally:
        await delete_deployment(home, NS, app, timeout=120)
        await delete_deployment(home, NS, during, timeout=120)


async def test_peer_partitioned_and_back(home: Cluster, clusters: dict[str, Cluster], spillover: lablib.State) -> None:
    """East is reached through a relay that is cut for 12 s (under its 20 s grace period): what
    runs there stays (same pods, same delegates, Ready again), new pods go to west meanwhile."""
    lab = spillover
    await _settled(home, clusters)
    relay = faults.TcpProxy([faults.Backend(faults.peer_port(lab, "east"))]).start()
    direct = await asyncio.to_thread(sp.peer_kubeconfig, lab, "east")
    via = faults.kubeconfig_via(direct, lab.root / "east" / "spillover-via-relay.kubeconfig", relay.address)
    app, during = unique("part"), unique("part-new")
    try:
        await asyncio.to_thread(_join, lab, "east", via)
        await wait_peer_ready(home, "east")
        before = await running(home, clusters, app, 8, EAST_ONLY)
        relay.cut()
        cut = time.monotonic()

        async def seen_unreachable() -> bool:  # its virtual node says so within a moment of the probe
            node = await home.core.read_node("spillover-east")
            return any(c.type == "Ready" and c.reason == "PeerUnreachable" for c in node.status.conditions or [])

        await eventually(seen_unreachable, 30, "east seen unreachable (its virtual node NotReady)", interval=0.5)
        await create_deployment(home, NS, during, 4, "100m", REMOTE)

        await recovered(clusters, during, 4, cut)
        assert {p for p, _ in await delegates(clusters, during)} == {"west"}, "east is cut off: the new pods go to west"
        await asyncio.sleep(max(0.0, 12 - (time.monotonic() - cut)))
        relay.heal()
        healed = time.monotonic()
        found, seconds = await recovered(clusters, app, 8, healed)
        assert await identities(clusters, app) == before, "no pod or delegate of east was replaced"
        report("peer partitioned 12 s (under its grace period) and back", found, seconds, "0 pods restarted")
    finally:
        relay.heal()
        await asyncio.to_thread(_join, lab, "east", direct)
        await delete_deployment(home, NS, app, timeout=120)
        await delete_deployment(home, NS, during, timeout=120)
        relay.close()
        await wait_peer_ready(home, "east")


def _join(lab: lablib.State, peer: str, kubeconfig: Any) -> None:
    out = spillover_cli("join", peer, f"--peer-kubeconfig={kubeconfig}", f"--kubeconfig={lab.kubeconfig('home')}")
    assert out.returncode == 0, out.stderr


# ---- home and Spillover ----------------------------------------------------------------------------
async def test_home_apiserver_restarted(
    home: Cluster, clusters: dict[str, Cluster], lab: lablib.State, restarts: faults.Restarter
) -> None:
    await _settled(home, clusters)
    ran, app = unique("home-api-ran"), unique("home-api")
    try:
        before = await running(home, clusters, ran, 6, REMOTE)
        await create_deployment(home, NS, app, 12, "100m", REMOTE)
        await some_delegates(clusters, app, 3)
        exited = restarts.restarts[sp.SCHEDULER]
        await asyncio.to_thread(lablib.stop_component, lab, "home", "kube-apiserver")
        await asyncio.to_thread(lablib.start_component, lab, "home", "kube-apiserver")
        back = time.monotonic()
        found, seconds = await recovered(clusters, app, 12, back)
        assert (await figures(clusters, ran, 6)).whole
        assert await identities(clusters, ran) == before, "pods already running were not replaced"
        exits = restarts.restarts[sp.SCHEDULER] - exited
        report(
            "home apiserver restarted mid-burst",
            found,
            seconds,
            f"0 running pods restarted; the own scheduler lost its Lease and was restarted {exits} time(s)",
        )
    finally:
        await delete_deployment(home, NS, app, timeout=120)
        await delete_deployment(home, NS, ran, timeout=120)


async def test_spillover_killed_mid_burst(home: Cluster, clusters: dict[str, Cluster], spillover: lablib.State) -> None:
    await _settled(home, clusters)
    app = unique("killed")
    await create_deployment(home, NS, app, 20, "100m", REMOTE)
    try:
        await some_delegates(clusters, app, 3)
        proc = sp.running_serve(spillover)
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(sp.start_serve, spillover)
        found, seconds = await recovered(clusters, app, 20, time.monotonic())
        report("Spillover killed (SIGKILL) mid-burst", found, seconds)
    finally:
        await delete_deployment(home, NS, app, timeout=120)


async def test_one_of_two_replicas_down_during_a_burst_and_a_rolling_upgrade_refuses_nothing(
    home: Cluster, clusters: dict[str, Cluster], spillover: lablib.State
) -> None:
    """Two replicas with leader election behind a stand-in Service (relays on the ports the home
    scheduler and the webhook registration use, to replicas that answer /readyz). The leader is
    killed mid-burst; then both replicas are replaced one after the other (SIGTERM, as a rolling
    update does) while pods are created all along: none refused, none lost."""
    lab = spillover
    await _settled(home, clusters)
    ports = lab.ports("home")
    await asyncio.to_thread(faults.stop_serve_only, lab)
    live: list[faults.Replica] = []
    extender = faults.TcpProxy([], ports["extender"]).start()
    webhook = faults.TcpProxy([], ports["webhook"]).start()
    app, steady = unique("replicas"), unique("rolling")
    try:
        for name in ("a", "b"):  # each in ``live`` as soon as it runs: stopped whatever happens next
            live.append(await asyncio.to_thread(faults.start_replica, lab, name))
        _serve_through(extender, webhook, live)
        leader = await _leader(home, live)
        await create_deployment(home, NS, app, 20, "100m", REMOTE)
        await some_delegates(clusters, app, 3)
        os.kill(leader.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        found, seconds = await recovered(clusters, app, 20, killed)
        report("one of two replicas (the leader) killed mid-burst", found, seconds)

        live.remove(leader)
        faults.forget(lab, leader.proc)
        live.append(await asyncio.to_thread(faults.start_replica, lab, f"{leader.name}2"))
        _serve_through(extender, webhook, live)
        created, refused = await _rolling_upgrade(home, lab, extender, webhook, live, steady)
        found, seconds = await recovered(clusters, steady, created, time.monotonic())
        print(f"\n[fault] rolling upgrade of both replicas: {refused} of {created + refused} pod creations refused")
        assert refused == 0
    finally:
        await delete_deployment(home, NS, app, timeout=120)
        await home.core.delete_collection_namespaced_pod(NS, label_selector=f"app={steady}", grace_period_seconds=0)
        for relay in (extender, webhook):
            relay.close()
        for replica in live:
            await asyncio.to_thread(faults.stop_replica, replica)
            faults.forget(lab, replica.proc)
        await asyncio.to_thread(sp.start_serve, lab)


def _serve_through(extender: faults.TcpProxy, webhook: faults.TcpProxy, replicas: list[faults.Replica]) -> None:
    """Point the stand-in Service at these replicas (an endpoints update)."""
    extender.backends[:] = [faults.Backend(r.extender, r.ready_url) for r in replicas]
    webhook.backends[:] = [faults.Backend(r.webhook, r.ready_url) for r in replicas]


async def _leader(home: Cluster, replicas: list[faults.Replica]) -> faults.Replica:
    leases = client.CoordinationV1Api(home.api)

    async def holder() -> str | None:
        lease = await leases.read_namespaced_lease("spillover-controller", "spillover-system")
        return lease.spec.holder_identity or None

    who = await eventually(holder, 60, "a replica holding the controller Lease", interval=0.5)
    (leader,) = [r for r in replicas if who.startswith(f"{r.name}_")]
    return leader


async def _rolling_upgrade(
    home: Cluster,
    lab: lablib.State,
    extender: faults.TcpProxy,
    webhook: faults.TcpProxy,
    live: list[faults.Replica],
    app: str,
) -> tuple[int, int]:
    """Create pods one after another while each replica in ``live`` in turn is replaced (the new
    one ready first, then the old one told to stop, as maxSurge 1 / maxUnavailable 0 does; its
    endpoint goes a moment after the signal, as in a cluster). Returns pods created, refused."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"app": app}, "annotations": REMOTE},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": "registry.example/app:1"}],
        },
    }
    created = refused = 0
    stop = asyncio.Event()
    errors: list[str] = []

    async def create_all_along() -> None:
        nonlocal created, refused
        while not stop.is_set():
            try:
                await home.core.create_namespaced_pod(
                    NS, {**body, "metadata": {**body["metadata"], "name": unique(app)}}
                )
                created += 1
            except ApiException as exc:
                refused += 1
                errors.append(str(exc.body)[:300])
            await asyncio.sleep(0.1)

    creator = asyncio.create_task(create_all_along())
    try:
        for old in list(live):
            live.append(await asyncio.to_thread(faults.start_replica, lab, f"{old.name}-next"))
            _serve_through(extender, webhook, live)
            await asyncio.sleep(1.0)  # the new replica takes traffic
            stopping = asyncio.create_task(asyncio.to_thread(faults.stop_replica, old))
            await asyncio.sleep(1.0)  # then its endpoint goes
            live.remove(old)
            _serve_through(extender, webhook, live)
            await stopping
            faults.forget(lab, old.proc)
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await creator
    assert not errors, errors[:3]
    return created, refused


# ---- the long one: past node grace and eviction ------------------------------------------------------
CANARY_NS = "default"
"""Not opted in: while Spillover is down, its webhook's guard refuses new pods in opted-in namespaces."""
SHORT_KCM = {"--node-monitor-grace-period": "30s", "--node-monitor-period": "2s"}
SHORT_APISERVER = {"--default-not-ready-toleration-seconds": "10", "--default-unreachable-toleration-seconds": "10"}


async def test_spillover_down_and_a_peer_paused_past_node_grace_and_eviction_lose_no_pod(
    home: Cluster, clusters: dict[str, Cluster], spillover: lablib.State
) -> None:
    lab = spillover
    kcm = list(faults.component(lab, "home", "kube-controller-manager").argv or [])
    apiserver = list(faults.component(lab, "home", "kube-apiserver").argv or [])
    app, paused_app, canary = unique("outage"), unique("paused"), unique("canary")
    try:
        await asyncio.to_thread(faults.restart_with, lab, "home", "kube-apiserver", faults.with_flags(SHORT_APISERVER))
        await asyncio.to_thread(
            faults.restart_with, lab, "home", "kube-controller-manager", faults.with_flags(SHORT_KCM)
        )
        await _settled(home, clusters)
        await create_deployment(home, NS, app, 6, "100m", EAST_ONLY)
        await create_deployment(home, NS, paused_app, 3, "100m", {**REMOTE, "spillover.io/clusters": "west"})
        await recovered(clusters, app, 6, time.monotonic())
        await recovered(clusters, paused_app, 3, time.monotonic())
        await _all_tolerate_node_loss(home, app, paused_app)
        before = await identities(clusters, app), await identities(clusters, paused_app)

        # West paused for longer than the default toleration: its node stays Ready, its pods stay.
        await pause_peer(home, "west", True)
        watched = time.monotonic()
        while time.monotonic() - watched < 25:
            node = await home.core.read_node("spillover-west")
            assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
            assert not [t for t in node.spec.taints or [] if t.key in NODE_LOSS], node.spec.taints
            await asyncio.sleep(1)

        # Spillover down: its virtual nodes' Leases lapse, the node-lifecycle controller taints
        # them unreachable:NoExecute, and evicts what does not tolerate that for ever.
        proc = sp.running_serve(lab)
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        down = time.monotonic()
        await home.core.create_namespaced_pod(CANARY_NS, _canary(canary))

        async def evicted() -> bool:
            pod = await home.core.read_namespaced_pod(canary, CANARY_NS)
            return pod.metadata.deletion_timestamp is not None

        await eventually(evicted, 120, "the canary (default tolerations) evicted from spillover-east", interval=1)
        evicted_after = time.monotonic() - down
        for node in ("spillover-east", "spillover-west"):
            taints = {t.key for t in (await home.core.read_node(node)).spec.taints or []}
            assert "node.kubernetes.io/unreachable" in taints, (node, taints)
        marked = [p.metadata.name for p in await pods(home, NS, app) if not ready(p)]
        assert marked, "the node-lifecycle controller marks the pods of an Unknown node not Ready"
        await asyncio.sleep(15)  # a further toleration period and more: anything evictable is gone
        for workload in (app, paused_app):
            live = [p for p in await pods(home, NS, workload) if p.metadata.deletion_timestamp is None]
            assert len(live) == (6 if workload == app else 3), f"{workload}: evicted while Spillover was down"
        downtime = time.monotonic() - down

        await asyncio.to_thread(sp.start_serve, lab)
        back = time.monotonic()
        found, seconds = await recovered(clusters, app, 6, back)
        paused_found, _ = await recovered(clusters, paused_app, 3, back)
        after = await identities(clusters, app), await identities(clusters, paused_app)
        assert after == before, "no pod or delegate replaced: 0 restarted"
        report(
            f"Spillover down {downtime:.0f}s (node grace 30 s + default tolerations 10 s; canary evicted after "
            f"{evicted_after:.0f}s) with west paused",
            Figures(9, found.running + paused_found.running, found.lost + paused_found.lost, 0, 0),
            seconds,
            "0 pods restarted",
        )

        async def canary_gone() -> bool:
            try:
                await home.core.read_namespaced_pod(canary, CANARY_NS)
                return False
            except ApiException as exc:
                return exc.status == 404

        await eventually(canary_gone, 60, "the evicted canary finalised once Spillover is back", interval=1)
    finally:
        if sp.running_serve(lab) is None:
            await asyncio.to_thread(sp.start_serve, lab)
        with contextlib.suppress(Exception):
            await pause_peer(home, "west", False)
        await asyncio.to_thread(faults.restart_with, lab, "home", "kube-apiserver", lambda _: apiserver)
        await asyncio.to_thread(faults.restart_with, lab, "home", "kube-controller-manager", lambda _: kcm)
        with contextlib.suppress(ApiException):
            await home.core.delete_namespaced_pod(canary, CANARY_NS, grace_period_seconds=0)
        await delete_deployment(home, NS, app, timeout=120)
        await delete_deployment(home, NS, paused_app, timeout=120)
        await _settled(home, clusters)


def _canary(name: str) -> dict[str, Any]:
    """A pod bound to the virtual node by hand while Spillover is down: it has the apiserver's
    default tolerations only, as every spilled pod had before this change."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": "spillover-east",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": "registry.example/app:1"}],
        },
    }


async def _all_tolerate_node_loss(home: Cluster, *apps: str) -> None:
    async def tolerating() -> bool:
        for app in apps:
            for pod in await pods(home, NS, app):
                unlimited = {t.key for t in pod.spec.tolerations or [] if t.toleration_seconds is None}
                if not set(NODE_LOSS) <= unlimited:
                    return False
        return True

    await eventually(tolerating, 60, "every spilled pod tolerating node loss without a time limit", interval=0.5)
