"""The virtual nodes' kubelet API: `kubectl logs` on a spilled pod reads its delegate's log.

kube-apiserver serves ``pods/log`` by calling the kubelet of the pod's node: HTTPS to the node's
preferred address at ``status.daemonEndpoints.kubeletEndpoint.Port``
(pkg/kubelet/client/kubelet_client.go, ``NodeConnectionInfoGetter.GetConnectionInfo``), path
``/containerLogs/{namespace}/{pod}/{container}`` with the log options as query parameters
(pkg/registry/core/pod/strategy.go, ``LogLocation``), presenting its
``--kubelet-client-certificate``. A virtual node's address is this server; each call is answered
by streaming the delegate's log from the peer apiserver's ``pods/log``, with the same options.

Only kube-apiserver may call: the TLS handshake requires a client certificate signed by the CA
given as ``--kubelet-client-ca-file`` (the one that signed the apiserver's kubelet client
certificate), so anything else is refused before a byte of HTTP is read.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from extender.delegation.view import DelegationView, Proxy
from extender.kube.api import PODS, WatchApi
from extender.kube.raw import ApiError

log = logging.getLogger("spillover.kubelet")

LOG_STREAMS = ("All", "Stdout", "Stderr")
_INTEGERS = {"tailLines": 0, "limitBytes": 1, "sinceSeconds": 1}
"""Integer log options and their smallest allowed value (pkg/apis/core/validation/validation.go,
ValidatePodLogOptions)."""
_BOOLEANS = ("follow", "previous", "timestamps", "insecureSkipTLSVerifyBackend")


class LogOptionError(ValueError):
    """A query the kubelet itself would refuse; the message names the parameter."""


def _flag(value: str) -> bool:
    """A boolean query parameter as Kubernetes reads one: only "0" and "false" (any case) are
    false (k8s.io/apimachinery/pkg/runtime/conversion.go, Convert_Slice_string_To_bool)."""
    return not (value == "0" or value.lower() == "false")


def log_query(query: Mapping[str, str]) -> list[tuple[str, str]]:
    """The peer's ``pods/log`` query for a kubelet ``containerLogs`` query, validated as the
    kubelet validates it (pkg/kubelet/server/server.go, getContainerLogs: the legacy ``tail``
    parameter, "all" meaning no limit; then ValidatePodLogOptions)."""
    values = dict(query)
    if tail := values.pop("tail", ""):
        if tail != "all":
            values["tailLines"] = tail
        else:
            values.pop("tailLines", None)
    out: list[tuple[str, str]] = []
    for name in _BOOLEANS:
        if name in values and _flag(values[name]) and name != "insecureSkipTLSVerifyBackend":
            out.append((name, "true"))
    for name, least in _INTEGERS.items():
        raw = values.get(name)
        if raw is None:
            continue
        try:
            number = int(raw)
        except ValueError:
            raise LogOptionError(f"{name}={raw!r} is not a whole number") from None
        if number < least:
            raise LogOptionError(f"{name}={number} must be at least {least}")
        out.append((name, str(number)))
    if "sinceTime" in values:
        if "sinceSeconds" in values:
            raise LogOptionError("at most one of `sinceTime` or `sinceSeconds` may be specified")
        out.append(("sinceTime", values["sinceTime"]))
    if (stream := values.get("stream")) is not None:
        if stream not in LOG_STREAMS:
            raise LogOptionError(f"stream={stream!r} is not one of {', '.join(LOG_STREAMS)}")
        if stream != "All" and "tailLines" in values:
            raise LogOptionError("`tailLines` and a specific `stream` are mutually exclusive")
        if stream != "All":  # All is the default everywhere; an older peer may not know the parameter
            out.append(("stream", stream))
    return out


@dataclass(frozen=True, slots=True)
class Delegated:
    """Where a spilled pod really runs: its delegate in a peer, and a client for that peer."""

    peer: str
    namespace: str
    name: str
    client: WatchApi


class Delegates(Protocol):
    def delegated(self, namespace: str, name: str) -> Delegated | str:
        """The delegate of home pod namespace/name, or why there is none to read from."""
        ...


class DelegateLookup:
    """Finds delegates in delegation's watch caches (every replica keeps them, leader or not)."""

    def __init__(self, view: DelegationView) -> None:
        self.view = view

    def delegated(self, namespace: str, name: str) -> Delegated | str:
        candidates: Iterable[Proxy] = (
            p for p in self.view.proxies.values() if p.namespace == namespace and p.name == name
        )
        proxy = min(candidates, key=lambda p: p.deleting, default=None)  # a live one before a deleted namesake
        if proxy is None:
            return (
                f"pod {namespace}/{name} is not bound to a Spillover virtual node that this Spillover serves "
                "(not spilled, or just bound: try again in a moment)"
            )
        entry = self.view.peers.get(proxy.peer)
        if entry is None:
            return f"pod {namespace}/{name} runs in peer {proxy.peer}, which Spillover is not connected to now"
        delegate = entry.by_proxy.get(proxy.uid)
        if delegate is None:
            return (
                f"pod {namespace}/{name} has no delegate in peer {proxy.peer} (not created yet, or deleted there: "
                "see the pod's events)"
            )
        return Delegated(proxy.peer, delegate.namespace, delegate.name, entry.runtime.raw)


def _common_name(request: web.Request) -> str:
    cert = request.transport.get_extra_info("peercert") if request.transport is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


class KubeletApi:
    """GET /containerLogs/{namespace}/{pod}/{container}, streamed from the delegate's log."""

    def __init__(self, delegates: Delegates, allowed_names: frozenset[str] = frozenset()) -> None:
        self.delegates = delegates
        self.allowed_names = allowed_names

    @web.middleware
    async def only_allowed_names(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """The TLS handshake already proved the CA signed the caller's certificate; when that CA
        signs other clients too, only the names given are let in."""
        if self.allowed_names and (name := _common_name(request)) not in self.allowed_names:
            log.warning("kubelet API call refused: client certificate for %r is not an allowed name", name)
            return _text(403, f"client certificate for {name!r} is not allowed here")
        response: web.StreamResponse = await handler(request)
        return response

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        namespace = request.match_info["namespace"]
        pod = request.match_info["pod"]
        container = request.match_info["container"]
        try:
            query = log_query(request.query)
        except LogOptionError as exc:
            return _text(400, f"invalid log options: {exc}")
        target = self.delegates.delegated(namespace, pod)
        if isinstance(target, str):
            return _text(404, target)
        follow = ("follow", "true") in query
        path = PODS.item(target.name, target.namespace, "log")
        where = f"delegate {target.namespace}/{target.name} in peer {target.peer}"
        response: web.StreamResponse | None = None
        try:
            async with target.client.open_stream(
                path, [("container", container), *query], idle_timeout=None if follow else 60.0
            ) as chunks:
                response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
                await response.prepare(request)
                async for chunk in chunks:
                    await response.write(chunk)
                await response.write_eof()
                return response
        except ApiError as exc:
            status = exc.status if 400 <= exc.status < 500 else 502
            return _text(status, f"peer {target.peer} refused the log of {where}: {exc.message}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if response is not None:  # the stream broke after it started: nothing more can be said
                log.info("log stream of %s ended: %r", where, exc)
                return response
            return _text(503, f"cannot read the log of {where}: peer unreachable ({exc!r}); try again when it is back")


def _text(status: int, message: str) -> web.Response:
    """Errors as the kubelet writes them: plain text, which kube-apiserver hands to kubectl."""
    return web.Response(status=status, text=message + "\n")


def make_kubelet_app(delegates: Delegates, allowed_names: frozenset[str] = frozenset()) -> web.Application:
    api = KubeletApi(delegates, allowed_names)
    app = web.Application(middlewares=[api.only_allowed_names])
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", api.container_logs)
    return app


def client_verifying_context(context: ssl.SSLContext, client_ca_file: str) -> ssl.SSLContext:
    """Require a client certificate signed by ``client_ca_file`` on ``context`` (a server context
    with its certificate loaded): the TLS handshake then refuses every other caller."""
    context.load_verify_locations(cafile=client_ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def start_kubelet_api(
    delegates: Delegates, host: str, port: int, context: ssl.SSLContext, allowed_names: frozenset[str] = frozenset()
) -> tuple[web.AppRunner, int]:
    """Serve the kubelet API on ``host:port`` (0: a free port); returns the runner and the port.

    Handlers are cancelled when their caller goes: a ``kubectl logs -f`` that is stopped must
    not keep a stream open to the peer until the delegate's next log line."""
    runner = web.AppRunner(
        make_kubelet_app(delegates, allowed_names), access_log=None, handle_signals=False, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    await site.start()
    return runner, int(runner.addresses[0][1])
