"""The composition root of `spillover serve`: builds every part and runs them in one event loop.

Three listeners: the extender (a lean server of its own, called by kube-scheduler for every pod it
schedules: plain HTTP on loopback beside the scheduler, else HTTPS that admits only the
scheduler's client certificate), the webhook (HTTPS, called by kube-apiserver) and
metrics/health. The TLS listeners pick up rotated certificate files. Background tasks: home
watches, the peer registry and its watches, virtual nodes and Leases, the planner loop and the
delegation controllers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from typing import Any

from aiohttp import web

from extender.budgets import Budgets
from extender.capacity.reservations import Reservations
from extender.config import Config, is_loopback
from extender.delegation.avoid import AvoidList
from extender.delegation.copy_keeper import CopyKeeper
from extender.delegation.creator import DelegateCreator
from extender.delegation.evacuation import Evacuation
from extender.delegation.lifecycle import Lifecycle
from extender.delegation.mirror import StatusMirror
from extender.delegation.node_loss import NodeLossTolerations
from extender.delegation.sweep import OrphanSweeper
from extender.delegation.view import Delegations
from extender.delegation.watches import DelegationWatches
from extender.delegation.writer import ProxyWriter
from extender.home_capacity import HomeCapacity
from extender.kube import client as kube_client
from extender.kube.api import NAMESPACES, NODES, PODS, Client
from extender.kube.events import EventRecorder
from extender.kube.fanout import FanOut
from extender.kube.identity import kube_system_uid
from extender.kube.leader import LeaderElector, LeaderGate
from extender.kube.reflector import Reflector
from extender.kube.tasks import TaskSet, every
from extender.labels import HOME_CLUSTER
from extender.live_state import HomeNamespaces, HomeView, LiveState, Namespace, PlannerVeto
from extender.peers.detach import PeerDetacher
from extender.peers.directory import PeerDirectory
from extender.peers.registry import PeerRegistry
from extender.peers.status import PeerStatusWriter
from extender.peers.virtual_node import VirtualNodes
from extender.planner.live import HOME_PODS_QUERY, BacklogPods, LivePlanner
from extender.repatriation.controller import Repatriation
from extender.repatriation.pingpong_store import PingPongStore
from extender.scheduling.binder import Binder
from extender.scheduling.refusals import PeerRefusals
from extender.server.decisions import Decisions
from extender.server.extender_app import start_extender_server
from extender.server.http_server import JsonPostServer
from extender.server.kubelet_api import DelegateLookup, start_kubelet_api
from extender.server.metrics import Metrics
from extender.server.operations import Operations
from extender.server.tls import ReloadingTLS, TLSFiles
from extender.server.webhook_app import make_webhook_app
from extender.webhook.mutate import WebhookConfig
from extender.wire.core import Node, Pod

log = logging.getLogger("spillover")


def scheduler_only(cfg: Config) -> bool:
    """Whether only the scheduler can call the extender: served on loopback (Spillover as a sidecar
    of its own kube-scheduler, or the lab), or over HTTPS to verified client certificates (the
    configuration refuses anything else). Only then may bind use the pods filter was sent."""
    return is_loopback(cfg.extender_address) or bool(cfg.extender_client_ca_file)


class Spillover:
    """Every part of `spillover serve`, each built here with all it needs: no part is handed a
    callback or a collaborator after it is built, so nothing that runs early can miss one.

    What everyone reads is built first (the home caches, the peer directory, the delegation
    state), then the controllers around them, then the registry that fills the directory.
    The controllers that write on their own initiative run as one group under the leader gate.
    """

    def __init__(self, config: Config, home: Client, cluster_id: str) -> None:
        cfg = self.config = config
        self.home = home
        self.metrics = Metrics()
        self.events = EventRecorder(home)
        self.tasks = TaskSet("spillover")
        self.runners: list[web.AppRunner] = []
        self.servers: list[JsonPostServer] = []
        self.draining = False
        """Told to stop: not ready, still answering until the shutdown delay is over."""

        backlog = BacklogPods()
        self.directory = PeerDirectory()
        self.home_capacity = HomeCapacity()
        # A cap raised (or removed) lets pods waiting under it go: kube-scheduler retries them on
        # a cluster event, so the virtual nodes are rewritten as for a change of capacity.
        self.home_namespaces = HomeNamespaces(
            on_cap_change=lambda: self.directory.capacity_changed(list(self.directory.peers))
        )
        self.budgets = Budgets(self.directory.by_virtual_node, self.home_namespaces, self.home_capacity.is_spilled)
        self.repatriation = Repatriation(
            home,
            self.home_capacity,
            self.directory,
            self.events,
            self.metrics,
            default_after=cfg.repatriate_after,
            store=PingPongStore(home, cfg.leader_election_namespace),
        )
        # One watch of home's live pods for everyone who reads them (a pod that finishes leaves it
        # as DELETED): the planner's backlog, home's free room, the spend ledger, repatriation.
        home_pods = FanOut([backlog, self.home_capacity.pods, self.budgets, self.repatriation.pods])
        self.home_reflectors: list[Reflector[Any]] = [
            Reflector(home, NODES.collection(), Node, self.home_capacity.nodes, name="home/nodes"),
            Reflector(home, NAMESPACES.collection(), Namespace, self.home_namespaces, name="home/namespaces"),
            Reflector(home, PODS.collection(), Pod, home_pods, query=HOME_PODS_QUERY, name="home/pods"),
        ]
        self.reservations = Reservations(ttl=cfg.reservation_ttl)
        self.virtual_nodes = VirtualNodes(home, kubelet_endpoint(cfg))
        self._nodes_written = False

        self.delegations = Delegations()
        avoid = AvoidList(cfg.avoid_peer_seconds)
        refusals = PeerRefusals()  # filter's and bind's lasting refusals, for the planner too
        writer = ProxyWriter(home, self.delegations, self.events, self.metrics)
        mirror = StatusMirror(self.delegations, writer, self.events)
        lifecycle = Lifecycle(
            home,
            self.delegations,
            writer,
            self.events,
            self.metrics,
            avoid,
            self.directory,
            cluster_id,
            cfg.remote_pending_timeout,
        )
        sweeper = OrphanSweeper(self.delegations, writer, self.metrics, cluster_id, cfg.orphan_sweep_seconds)
        tolerations = NodeLossTolerations(home, self.delegations)
        self.copies = CopyKeeper(home, self.directory, self.delegations, self.events, cluster_id)
        watches = DelegationWatches(
            home, self.delegations, mirror, lifecycle, sweeper, tolerations, self.copies, cluster_id
        )
        detacher = PeerDetacher(home, self.directory, self.virtual_nodes, Evacuation(self.delegations, writer, sweeper))
        self.gate = LeaderGate(
            LeaderElector(home, cfg.leader_election_namespace, cfg.leader_elect),
            [mirror, lifecycle, sweeper, detacher, self.repatriation, tolerations, self.copies, self.virtual_nodes],
        )

        self.planner = LivePlanner(
            self.directory.states,
            PlannerVeto(self.home_namespaces, avoid, refusals),
            self.metrics,
            in_flight=self.reservations.placing,
            backlog=backlog,
            peer_of_node=self.directory.peer_of_node,
            # Gang members wait in the scheduler's unschedulable queue; a change to the virtual
            # node moves them back at once.
            on_gangs_placed=self.directory.capacity_changed,
            budgets=self.budgets.left_for,
        )
        self.peer_status = PeerStatusWriter(home, self.directory, detacher.progress, self.planner.advice_for)
        self.registry = PeerRegistry(
            home,
            self.directory,
            self.virtual_nodes,
            self.reservations,
            self.peer_status,
            self.gate.recorder(self.events),
            watchers=[watches],
            peer_timeout=cfg.peer_timeout,
        )
        binder = Binder(
            home,
            self.directory.by_virtual_node,
            self.reservations,
            HomeView(self.home_capacity, self.home_namespaces),
            delegation=DelegateCreator(home, self.delegations, writer, self.events, avoid, cluster_id, self.copies),
            on_peer_bound=self.planner.bound,
            trust_filtered=scheduler_only(cfg),
            budgets=self.budgets,
            refusals=refusals,
        )
        self.state = LiveState(
            home,
            self.directory,
            self.home_capacity,
            self.home_namespaces,
            binder,
            avoid,
            planner=self.planner,
            budgets=self.budgets,
        )
        self.metrics.watch(self.directory.states, self.delegations.delegate_phases)
        self.decisions = Decisions()
        self.operations = Operations(
            home,
            self.state,
            self.directory,
            self.delegations,
            self.planner,
            self.decisions,
            self.reservations,
            self.ready,
            self.budgets,
            self.repatriation,
        )
        self.metrics.watch_spend(self.operations.spend, self.operations.budgets)
        self.metrics.watch_repatriation(self.operations.repatriation)

    async def start(self) -> None:
        cfg = self.config
        for reflector in [*self.home_reflectors, *self.copies.reflectors]:
            self.tasks.spawn(reflector.run(), reflector.name)
        self.tasks.spawn(self.registry.reflector.run(), "peerclusters")
        self.tasks.spawn(self.peer_status.run(), "peer-status")
        self.tasks.spawn(self.virtual_nodes.run_flush(), "virtual-nodes")
        self.tasks.spawn(self.virtual_nodes.run_leases(), "virtual-node-leases")
        self.tasks.spawn(every(1.0, self._expire_reservations, "reservations not expired"), "reservations")
        self.tasks.spawn(self.events.run(), "events")
        self.tasks.spawn(self.gate.run(), "leader-gate")
        self.tasks.spawn(self.planner.run(), "planner")
        self.tasks.spawn(self.operations.history.run(), "spilled-history")
        self.servers.append(
            await start_extender_server(
                self.state, self.metrics, cfg.extender_address, cfg.extender_port, self.decisions, self._extender_tls()
            )
        )
        if cfg.tls_cert_file and cfg.tls_key_file:
            webhook_tls = self._tls(TLSFiles(cfg.tls_cert_file, cfg.tls_key_file), "webhook")
            webhook = make_webhook_app(
                WebhookConfig(scheduler_name=cfg.scheduler_name), self.metrics, lambda: self.draining
            )
            await self._serve(webhook, cfg.webhook_port, webhook_tls.context)
            await self._serve_kubelet_api(cfg)
        else:
            log.warning("no --tls-cert-file/--tls-key-file: the admission webhook is not served")
        await self._serve(self._health_app(), cfg.metrics_port, None)
        log.info(
            "serving",
            extra={
                "extender_port": cfg.extender_port,
                "webhook_port": cfg.webhook_port,
                "metrics_port": cfg.metrics_port,
            },
        )

    async def _serve_kubelet_api(self, cfg: Config) -> None:
        if not cfg.kubelet_client_ca_file or not cfg.tls_cert_file or not cfg.tls_key_file:
            log.info("no --kubelet-client-ca-file: `kubectl logs` on spilled pods is not served")
            return
        files = TLSFiles(cfg.tls_cert_file, cfg.tls_key_file, client_ca=cfg.kubelet_client_ca_file)
        context = self._tls(files, "kubelet API").context
        names = frozenset(n.strip() for n in cfg.kubelet_client_allowed_names.split(",") if n.strip())
        lookup = DelegateLookup(self.delegations)
        runner, _ = await start_kubelet_api(lookup, cfg.bind_address, cfg.kubelet_port, context, names)
        self.runners.append(runner)

    def _extender_tls(self) -> ReloadingTLS | None:
        cfg = self.config
        if not (cfg.extender_tls_cert_file and cfg.extender_tls_key_file):
            return None
        files = TLSFiles(
            cfg.extender_tls_cert_file,
            cfg.extender_tls_key_file,
            client_ca=cfg.extender_client_ca_file,
            client_names=cfg.extender_client_name_list,
            alpn=("h2", "http/1.1"),
        )
        return self._tls(files, "extender")

    def _tls(self, files: TLSFiles, what: str) -> ReloadingTLS:
        """A listener's TLS, its files checked for changes for the life of the process."""
        tls = ReloadingTLS(files, what)
        self.tasks.spawn(tls.run(), f"{what}-tls-reloader")
        return tls

    async def _expire_reservations(self) -> None:
        self.reservations.expire()

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "shutting down"
        for reflector in self.home_reflectors:
            if not reflector.synced.is_set():
                return False, f"home cache {reflector.name} not synced"
        if not self.registry.synced():
            return False, "peer caches not synced yet"
        if not self._nodes_written:  # once: a later health flip is written within FLUSH_EVERY anyway
            if not self.virtual_nodes.caught_up():
                return False, "virtual nodes not written yet"
            self._nodes_written = True
        return True, "ok"

    def _health_app(self) -> web.Application:
        app = web.Application()

        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def readyz(_: web.Request) -> web.Response:
            ok, why = self.ready()
            return web.Response(text=why, status=200 if ok else 503)

        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", self.metrics.handler)
        app.router.add_get("/plan.json", self._plan_json)
        self.operations.add_routes(app)
        return app

    async def _plan_json(self, _: web.Request) -> web.Response:
        return web.json_response(self.planner.summary())

    async def _serve(self, app: web.Application, port: int, context: ssl.SSLContext | None) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.bind_address, port, ssl_context=context, backlog=1024)
        await site.start()
        self.runners.append(runner)

    async def drain(self, hurry: asyncio.Event) -> None:
        """Say not ready and close each connection after its answer, but keep answering for the
        shutdown delay: endpoints (and kube-proxy) drop this replica before it stops listening,
        so the apiserver and kube-scheduler never call a replica that is gone."""
        self.draining = True
        for server in self.servers:
            server.draining = True
            server.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hurry.wait(), self.config.shutdown_delay)

    async def stop(self) -> None:
        for server in self.servers:
            await server.close()
        for runner in self.runners:
            await runner.cleanup()
        await self.tasks.cancel()
        await self.registry.close()
        await self.home.close()


def kubelet_endpoint(config: Config) -> tuple[str, int] | None:
    """The address and port to write on the virtual nodes, when the kubelet API is served."""
    if not config.kubelet_client_ca_file or not config.tls_cert_file:
        return None
    return config.kubelet_address or config.bind_address, config.kubelet_port


def _tune_gc() -> None:
    """Fewer, later collections: the extender answers inside kube-scheduler's serial scheduling
    cycle, so a collector pause there stalls every pod behind it. Objects alive after start-up
    (modules, caches' scaffolding) are frozen out of collection altogether."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def serve_forever(config: Config) -> None:
    home = await kube_client.connect(config.kubeconfig, timeout=config.peer_timeout)
    cluster_id = config.cluster_id or await kube_system_uid(home)
    log.info("home cluster id %s (label %s on what Spillover creates in peers)", cluster_id, HOME_CLUSTER)
    app = Spillover(config, home, cluster_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    _tune_gc()
    try:
        await stop.wait()
        log.info("stopping: not ready, still answering for %gs (--shutdown-delay)", config.shutdown_delay)
        hurry = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second signal cuts the delay short
            loop.add_signal_handler(sig, hurry.set)
        await app.drain(hurry)
    finally:
        log.info("shutting down")
        await app.stop()
