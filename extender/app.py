"""The composition root of `spillover serve`: builds every part and runs them in one event loop.

Three listeners: the extender (plain HTTP on a lean server of its own, loopback or cluster
network, called by kube-scheduler for every pod it schedules), the webhook (HTTPS, called by
kube-apiserver; cert reloaded when its files change) and metrics/health. Background tasks: home
watches, the peer registry and its watches, virtual nodes and Leases, the planner loop and the
delegation controllers.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import os
import signal
import ssl
from collections.abc import Awaitable
from typing import Any

import msgspec
from aiohttp import web

from extender.capacity.model import PeerState
from extender.capacity.tracker import Reservations
from extender.config import Config
from extender.delegation.delegator import Delegator
from extender.kube import client as kube_client
from extender.kube.identity import kube_system_uid
from extender.kube.raw import RawClient
from extender.kube.reflector import Reflector
from extender.kube.tasks import cancel_and_wait
from extender.labels import HOME_CLUSTER
from extender.peers.registry import PeerRegistry
from extender.peers.virtual_node import VirtualNodes
from extender.planner.live import LivePlanner
from extender.runtime import HomeNamespaces, HomeNodes, HomeView, LiveState, Namespace
from extender.scheduling.binder import Binder
from extender.scheduling.filter import namespace_refusal
from extender.server.decisions import Decisions
from extender.server.extender_app import start_extender_server
from extender.server.http_server import JsonPostServer
from extender.server.kubelet_api import DelegatorLookup, client_verifying_context, kubelet_endpoint, start_kubelet_api
from extender.server.metrics import Metrics
from extender.server.operations import Operations
from extender.server.webhook_app import make_webhook_app
from extender.webhook.mutate import WebhookConfig
from extender.wire.core import Node, Pod


class PodItems(msgspec.Struct):
    """A pod list as the apiserver returns it (only what the planner reads)."""

    items: list[Pod]


log = logging.getLogger("spillover")


class CertReloader:
    """Re-reads the webhook's cert and key when either file changes (cert-manager rotation)."""

    def __init__(self, cert: str, key: str) -> None:
        self.cert = cert
        self.key = key
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._stamp: tuple[float, float] = (0.0, 0.0)
        self.reload()

    def reload(self) -> bool:
        stamp = (os.stat(self.cert).st_mtime, os.stat(self.key).st_mtime)
        if stamp == self._stamp:
            return False
        self.context.load_cert_chain(self.cert, self.key)
        self._stamp = stamp
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(5)
            try:
                if self.reload():
                    log.info("webhook certificate reloaded from %s", self.cert)
            except (OSError, ssl.SSLError) as exc:
                log.warning("webhook certificate not reloaded (keeping the old one): %s", exc)


def scheduler_only(cfg: Config) -> bool:
    """Whether only the scheduler can call the extender: served on loopback (Spillover as a sidecar
    of its own kube-scheduler, or the lab). Only then may bind use the pods filter was sent."""
    host = cfg.bind_address.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Spillover:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.tasks: list[asyncio.Task[Any]] = []
        self.runners: list[web.AppRunner] = []
        self.servers: list[JsonPostServer] = []

    async def start(self) -> None:
        cfg = self.config
        self.home_api = await kube_client.from_file(cfg.kubeconfig)
        home = RawClient(self.home_api, timeout=cfg.peer_timeout)
        self.home = home
        if not cfg.cluster_id:
            cfg.cluster_id = await kube_system_uid(home)
        log.info("home cluster id %s (label %s on what Spillover creates in peers)", cfg.cluster_id, HOME_CLUSTER)
        self.reservations = Reservations(ttl=cfg.reservation_ttl)
        self.virtual_nodes = VirtualNodes(home, kubelet_endpoint(cfg))
        self.registry = PeerRegistry(home, self.virtual_nodes, self.reservations, peer_timeout=cfg.peer_timeout)
        self.home_nodes = HomeNodes()
        self.home_namespaces = HomeNamespaces()
        node_reflector = Reflector(home, "/api/v1/nodes", Node, self.home_nodes, name="home/nodes")
        ns_reflector = Reflector(home, "/api/v1/namespaces", Namespace, self.home_namespaces, name="home/namespaces")
        self.delegator = self._delegator(home)
        self.planner = self._planner()
        binder = Binder(
            home,
            self.registry.by_virtual_node,
            self.reservations,
            HomeView(self.home_nodes, self.home_namespaces),
            delegation=self.delegator,
            on_peer_bound=self.planner.bound,
            trust_filtered=scheduler_only(cfg),
        )
        self.state = LiveState(self.registry, self.home_nodes, self.home_namespaces, binder, planner=self.planner)
        self.decisions = Decisions()
        self.operations = Operations(
            home, self.state, self.registry, self.delegator, self.planner, self.decisions, self.reservations, self.ready
        )
        self.metrics.watch_spend(self.operations.spend)
        self._spawn(self.operations.history.run(), "spilled-history")
        self.home_reflectors: list[Reflector[Any]] = [node_reflector, ns_reflector]
        self._spawn(node_reflector.run(), "home-nodes")
        self._spawn(ns_reflector.run(), "home-namespaces")
        self._spawn(self.registry.reflector.run(), "peerclusters")
        self._spawn(self.registry.run_status(), "peer-status")
        self._spawn(self.virtual_nodes.run_flush(), "virtual-nodes")
        self._spawn(self.virtual_nodes.run_leases(), "virtual-node-leases")
        self._spawn(self._expire_reservations(), "reservations")
        self.servers.append(
            await start_extender_server(self.state, self.metrics, cfg.bind_address, cfg.extender_port, self.decisions)
        )
        if cfg.tls_cert_file and cfg.tls_key_file:
            reloader = CertReloader(cfg.tls_cert_file, cfg.tls_key_file)
            self._spawn(reloader.run(), "cert-reloader")
            webhook = make_webhook_app(WebhookConfig(scheduler_name=cfg.scheduler_name), self.metrics)
            await self._serve(webhook, cfg.webhook_port, reloader.context)
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
        context = client_verifying_context(
            CertReloader(cfg.tls_cert_file, cfg.tls_key_file).context, cfg.kubelet_client_ca_file
        )
        names = frozenset(n.strip() for n in cfg.kubelet_client_allowed_names.split(",") if n.strip())
        lookup = DelegatorLookup(self.delegator)
        runner, _ = await start_kubelet_api(lookup, cfg.bind_address, cfg.kubelet_port, context, names)
        self.runners.append(runner)

    def _delegator(self, home: RawClient) -> Delegator:
        delegator = Delegator(home, self.registry, self.config, self.metrics)

        def peer_event(ref: dict[str, str], reason: str, message: str, warning: bool) -> None:
            if delegator.leader.leading:  # one replica tells, not each
                delegator.events.record(ref, reason, message, warning=warning)

        self.registry.record_event = peer_event
        self.metrics.watch(lambda: [rt.state for rt in self.registry.peers.values()], delegator.delegate_phases)
        self.registry.listeners.append(delegator.peer_started)
        self._spawn(delegator.run(), "delegator")
        return delegator

    def _planner(self) -> LivePlanner:
        namespaces = self.home_namespaces

        def veto(pod: Pod, peer: PeerState) -> str | None:
            namespace = pod.metadata.namespace
            refused = namespace_refusal(peer, namespace, namespaces.labels.get(namespace, {}))
            return refused or self.delegator.avoided(pod, peer.name)

        home = self.home

        async def namespace_pods(namespace: str) -> list[Pod]:
            body = await home.get(f"/api/v1/namespaces/{namespace}/pods")
            return msgspec.json.decode(body, type=PodItems).items

        def peer_of_node(node_name: str) -> str | None:
            peer = self.registry.by_virtual_node.get(node_name)
            return peer.name if peer is not None else None

        planner = LivePlanner(
            lambda: [rt.state for rt in self.registry.peers.values()],
            veto,
            self.metrics,
            in_flight=self.reservations.holds,
            namespace_pods=namespace_pods,
            peer_of_node=peer_of_node,
        )
        self.registry.advice_for = planner.advice_for

        def nudge(peers: set[str]) -> None:
            # Gang members wait in the scheduler's unschedulable queue; a change to the virtual
            # node moves them back at once (kube-scheduler re-queues on node updates).
            for name in peers:
                runtime = self.registry.peers.get(name)
                if runtime is not None:
                    runtime.tracker.changed()

        planner.on_gangs_placed = nudge
        self._spawn(planner.run(), "planner")
        return planner

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        task.add_done_callback(self._task_done)
        self.tasks.append(task)

    @staticmethod
    def _task_done(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s died: %r", task.get_name(), task.exception())

    async def _expire_reservations(self) -> None:
        while True:
            await asyncio.sleep(1)
            self.reservations.expire()

    def ready(self) -> tuple[bool, str]:
        for reflector in self.home_reflectors:
            if not reflector.synced.is_set():
                return False, f"home cache {reflector.name} not synced"
        if not self.registry.synced():
            return False, "peer caches not synced yet"
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

    async def stop(self) -> None:
        for server in self.servers:
            await server.close()
        for runner in self.runners:
            await runner.cleanup()
        await cancel_and_wait(self.tasks)
        await self.registry.close()
        await self.home.close()
        await self.home_api.close()


def _tune_gc() -> None:
    """Fewer, later collections: the extender answers inside kube-scheduler's serial scheduling
    cycle, so a collector pause there stalls every pod behind it. Objects alive after start-up
    (modules, caches' scaffolding) are frozen out of collection altogether."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def serve_forever(config: Config) -> None:
    app = Spillover(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    _tune_gc()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await app.stop()
