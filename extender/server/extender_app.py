"""The extender verbs as kube-scheduler calls them (POST, JSON, capitalised keys), over HTTP(S).

Input is never trusted: a body that does not decode is answered 400 with msgspec's message (which
names the path of the bad value), so a misconfigured scheduler shows up in its own logs with the
reason. Bind failures are not HTTP errors: the scheduler expects 200 with ``Error`` set, and then
retries the pod. Nothing here raises into the server; a 5xx would mean a bug, and the property
tests look for exactly that. The transport is ``http_server`` (see there for why not aiohttp).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import msgspec

from extender.scheduling.filter import Outcome, filter_nodes
from extender.scheduling.preempt import UnknownNode, preempt
from extender.scheduling.prioritize import prioritize
from extender.scheduling.state import BindError, SchedulingState
from extender.server.decisions import Decisions
from extender.server.http_server import Answer, Handler, JsonPostServer, error_body
from extender.server.logs import log_request
from extender.server.metrics import Metrics
from extender.server.tls import ReloadingTLS
from extender.wire.core import Pod, pod_decoder
from extender.wire.extender import (
    ExtenderBindingResult,
    args_decoder,
    binding_args_decoder,
    encoder,
    filter_args_decoder,
    preemption_args_decoder,
)

log = logging.getLogger("spillover.extender")

MAX_BODY = 64 * 2**20
"""A filter call for 5000 nodes is ~150 KiB; a preempt call with full victim pods can be far bigger."""


def _problem(what: str, exc: msgspec.MsgspecError) -> str:
    message = f"body is not valid {what}: {exc}"
    if "`NodeNames`" in message:
        message += " (configure the extender with nodeCacheCapable: true so the scheduler sends NodeNames)"
    return message


class ExtenderVerbs:
    """filter, prioritize and preempt answer from caches at once; bind awaits its API writes."""

    def __init__(self, state: SchedulingState, metrics: Metrics, decisions: Decisions | None = None) -> None:
        self.state = state
        self.metrics = metrics
        self.decisions = decisions

    def _answer(
        self, verb: str, started: float, body: bytes, pod: Pod | None, decision: str, level: int = logging.INFO
    ) -> Answer:
        seconds = time.perf_counter() - started
        self.metrics.observe_extender(verb, 200, seconds)
        meta = pod.metadata if pod is not None else None
        log_request(
            verb,
            meta.namespace if meta else "",
            meta.name if meta else "",
            meta.uid if meta else "",
            decision,
            seconds,
            level=level,
        )
        return 200, body

    def _refuse(self, verb: str, started: float, message: str) -> Answer:
        seconds = time.perf_counter() - started
        self.metrics.observe_extender(verb, 400, seconds)
        log_request(verb, "", "", "", "bad request: " + message, seconds, level=logging.WARNING)
        return 400, error_body(message)

    def _known(self, node: str) -> bool:
        state = self.state
        return state.peer_for_node(node) is not None or state.is_virtual_node_name(node) or state.home_node_exists(node)

    def filter(self, body: bytes) -> Answer:
        started = time.perf_counter()
        try:
            args = filter_args_decoder.decode(body)
            pod = pod_decoder.decode(args.Pod)
        except msgspec.MsgspecError as exc:
            problem = exc
            try:  # decoded whole, for the message's full path ($.Pod...); only on this error path
                args_decoder.decode(body)
            except msgspec.MsgspecError as whole:
                problem = whole
            return self._refuse("filter", started, _problem("extender arguments", problem))
        pod_json = bytes(args.Pod)
        filtered = filter_nodes(self.state, pod, args.NodeNames, pod_json)
        if filtered.outcome is not Outcome.NONE and pod.metadata.uid:  # for its bind, moments later
            self.state.remember_pod(pod, pod_json)
        self.metrics.count_filter_decision(filtered.outcome.value)
        result = filtered.result
        if self.decisions is not None:
            meta = pod.metadata
            self.decisions.record(
                meta.namespace, meta.name, meta.uid, filtered.outcome.value, len(args.NodeNames), result
            )
        decision = (
            f"{filtered.outcome.value}: {len(result.NodeNames)} passed, {len(result.FailedNodes)} failed, "
            f"{len(result.FailedAndUnresolvableNodes)} unresolvable"
            if not result.Error
            else f"error: {result.Error}"
        )
        # Home placements are the bulk and say nothing new: logged at DEBUG, counted in metrics.
        level = logging.DEBUG if filtered.outcome is Outcome.HOME else logging.INFO
        return self._answer("filter", started, encoder.encode(result), pod, decision, level)

    def prioritize(self, body: bytes) -> Answer:
        started = time.perf_counter()
        try:
            args = args_decoder.decode(body)
        except msgspec.MsgspecError as exc:
            return self._refuse("prioritize", started, _problem("extender arguments", exc))
        scores = prioritize(self.state, args.Pod, args.NodeNames)
        return self._answer(
            "prioritize", started, encoder.encode(scores), args.Pod, f"{len(scores)} scored", logging.DEBUG
        )

    def preempt(self, body: bytes) -> Answer:
        started = time.perf_counter()
        try:
            args = preemption_args_decoder.decode(body)
        except msgspec.MsgspecError as exc:
            return self._refuse("preempt", started, _problem("preemption arguments", exc))
        try:
            result = preempt(self.state, args)
        except UnknownNode as exc:
            return self._refuse("preempt", started, str(exc))
        decision = f"{len(result.NodeNameToMetaVictims)} nodes offered"
        return self._answer("preempt", started, encoder.encode(result), args.Pod, decision)

    async def bind(self, body: bytes) -> Answer:
        started = time.perf_counter()
        try:
            args = binding_args_decoder.decode(body)
        except msgspec.MsgspecError as exc:
            return self._refuse("bind", started, _problem("binding arguments", exc))
        for field in ("PodName", "PodNamespace", "Node"):
            if not getattr(args, field):
                return self._refuse("bind", started, f"body is not valid binding arguments: {field} is empty")
        error = ""
        try:
            if not self._known(args.Node) and not await self.state.confirm_home_node(args.Node):
                message = f"unknown node {args.Node!r} (neither a home node nor a virtual one)"
                return self._refuse("bind", started, message)
            await self.state.bind(args.PodNamespace, args.PodName, args.PodUID, args.Node)
        except BindError as exc:
            error = str(exc) or "bind failed"
        except Exception as exc:  # the scheduler retries on Error; a 5xx would tell it less
            log.exception("bind of %s/%s to %s failed unexpectedly", args.PodNamespace, args.PodName, args.Node)
            error = f"bind failed unexpectedly: {exc!r}"
        seconds = time.perf_counter() - started
        self.metrics.observe_extender("bind", 200, seconds)
        decision = f"error: {error}" if error else f"bound to {args.Node}"
        level = logging.INFO if error or self.state.peer_for_node(args.Node) is not None else logging.DEBUG
        log_request("bind", args.PodNamespace, args.PodName, args.PodUID, decision, seconds, level, node=args.Node)
        return 200, encoder.encode(ExtenderBindingResult(Error=error))


def extender_routes(
    state: SchedulingState, metrics: Metrics, decisions: Decisions | None = None
) -> Mapping[str, Handler]:
    verbs = ExtenderVerbs(state, metrics, decisions)
    return {"/filter": verbs.filter, "/prioritize": verbs.prioritize, "/preempt": verbs.preempt, "/bind": verbs.bind}


async def start_extender_server(
    state: SchedulingState,
    metrics: Metrics,
    host: str,
    port: int,
    decisions: Decisions | None = None,
    tls: ReloadingTLS | None = None,
) -> JsonPostServer:
    """POST /filter, /prioritize, /preempt, /bind on ``host:port`` (port 0 picks a free one);
    HTTPS with ``tls`` (its client CA and names decide who may call)."""
    connections = metrics.extender_connections
    server = JsonPostServer(
        extender_routes(state, metrics, decisions),
        max_body=MAX_BODY,
        on_connection=lambda protocol: connections.labels(protocol).inc(),
    )
    await server.start(host, port, tls=tls)
    return server
