"""A small HTTP server for JSON POST endpoints: HTTP/1.1 on httptools (the parser uvicorn uses),
and over TLS also HTTP/2 (``http2``), chosen per connection by ALPN.

Why not aiohttp here: kube-scheduler calls ``filter`` inside its serial scheduling cycle and
``bind`` for every pod, so this server's per-request cost is paid once or twice per scheduled pod
on the same cores the apiserver needs. aiohttp spent about 160 us of CPU per filter call in its
request, response and routing objects; this framing spends about 50 us (measured with a Go client
that calls the way the scheduler does). Everything else (webhook, metrics, status) stays on aiohttp.

Scope, on purpose: POST with a body (Content-Length or chunked), keep-alive, pipelining answered
in order, ``Expect: 100-continue``. Anything else gets a clear 4xx: an unknown path 404, another
method 405, a body over the limit 413, bytes that are not HTTP 400. A handler that raises is a bug;
it is logged and answered 500 rather than taking the connection down.

With TLS (``ReloadingTLS``), the handshake has checked the client certificate against the client CA
before a byte of HTTP is read; a certificate that does not name an allowed client is refused
here, before any route runs. When the files are reloaded, every open connection is drained
(HTTP/2 GOAWAY, HTTP/1.1 closed once idle), so no connection outlives the CA that admitted it.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Protocol, cast

import httptools

from extender.server.answers import Answer, Handler, error_body
from extender.server.http2 import H2Connection
from extender.server.tls import ReloadingTLS

log = logging.getLogger("spillover.http")

__all__ = ["Answer", "Handler", "JsonPostServer", "error_body"]

IDLE_TIMEOUT = 120.0
"""Longer than Go's default idle timeout (90 s), so the client closes idle connections first."""
H2 = "h2"
HTTP11 = "http/1.1"


def _head(status: int, length: int, keep_alive: bool, extra: bytes = b"") -> bytes:
    reason = HTTPStatus(status).phrase.encode()
    connection = b"" if keep_alive else b"Connection: close\r\n"
    return b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s%s\r\n" % (
        status,
        reason,
        length,
        connection,
        extra,
    )


class _Request:
    __slots__ = ("body", "keep_alive", "method", "path", "problem")

    def __init__(self, method: bytes, path: bytes, body: bytes, keep_alive: bool, problem: Answer | None) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.keep_alive = keep_alive
        self.problem = problem


class _Connection(asyncio.Protocol):
    """One client connection: parse, answer in order, never hold more than a few requests."""

    def __init__(self, server: JsonPostServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_big = False
        self.expect_continue = False
        self.pending: collections.deque[_Request] = collections.deque()
        self.busy = False
        self.closing = False
        self.draining = False
        self.last_active = time.monotonic()

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.closing = True
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._fail(400, f"malformed HTTP request: {exc}")

    # --- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.chunks = []
        self.size = 0
        self.too_big = False
        self.expect_continue = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True

    def on_headers_complete(self) -> None:
        if self.expect_continue and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.too_big:
            return
        self.size += len(body)
        if self.size > self.server.max_body:
            self.too_big = True
            self.chunks = []
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        problem = None
        if self.too_big:
            problem = (413, error_body(f"request body is larger than {self.server.max_body} bytes"))
        request = _Request(
            self.parser.get_method(),
            httptools.parse_url(self.url).path if self.url else b"/",
            b"".join(self.chunks),
            self.parser.should_keep_alive() and not self.too_big,
            problem,
        )
        self.chunks = []
        self.pending.append(request)
        if len(self.pending) > 8 and self.transport is not None:
            self.transport.pause_reading()  # a client pipelining this deep waits for answers
        if not self.busy:
            self._next()

    # --- answering --------------------------------------------------------------------------

    def _route(self, request: _Request) -> Answer | Awaitable[Answer]:
        if request.problem is not None:
            return request.problem
        return self.server.dispatch(request.method, request.path, request.body)

    def _next(self) -> None:
        while self.pending and not self.closing:
            request = self.pending.popleft()
            if self.transport is not None and len(self.pending) <= 8:
                self.transport.resume_reading()
            answer = self._route(request)
            if isinstance(answer, tuple):
                self._write(request, answer)
                continue
            self.busy = True
            task: asyncio.Future[Answer] = asyncio.ensure_future(answer)
            task.add_done_callback(functools.partial(self._finished, request))
            self.server.tasks.add(task)
            return
        self.busy = False

    def _finished(self, request: _Request, task: asyncio.Future[Answer]) -> None:
        self.server.tasks.discard(task)
        self._write(request, self.server.settle(request.path, task))
        self._next()

    def _write(self, request: _Request, answer: Answer) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        status, body = answer
        extra = b"Allow: POST\r\n" if status == 405 else b""
        keep_alive = request.keep_alive and not (self.draining and not self.pending) and not self.server.draining
        transport.write(_head(status, len(body), keep_alive, extra) + body)
        self.last_active = time.monotonic()
        if not keep_alive:
            self.closing = True
            transport.close()

    def _fail(self, status: int, message: str) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        body = error_body(message)
        transport.write(_head(status, len(body), False) + body)
        self.closing = True
        transport.close()

    def close_if_idle(self, now: float, idle_timeout: float) -> None:
        if not self.busy and not self.pending and now - self.last_active > idle_timeout and self.transport:
            self.closing = True
            self.transport.close()

    def drain(self) -> None:
        """Close now if idle, else after the answer in progress (with ``Connection: close``)."""
        self.draining = True
        if not self.busy and not self.pending and self.transport is not None:
            self.closing = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Served(Protocol):
    """A connection the server keeps track of, whatever its framing."""

    def close_if_idle(self, now: float, idle_timeout: float) -> None: ...
    def drain(self) -> None: ...
    def abort(self) -> None: ...


class _Handshaken(asyncio.Protocol):
    """First protocol of a TLS connection: checks the client and hands over to h2 or HTTP/1.1."""

    def __init__(self, server: JsonPostServer, tls: ReloadingTLS) -> None:
        self.server = server
        self.tls = tls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called once the handshake is complete: the client certificate is verified by now.
        ok, why = self.tls.allows(transport.get_extra_info("peercert"))
        if not ok:
            peer = transport.get_extra_info("peername")
            log.warning("refused a connection to the extender from %s: %s", peer, why)
            self.server.on_connection("refused")
            transport.close()
            return
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        protocol = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        self.server.on_connection(H2 if protocol == H2 else f"{HTTP11} (TLS)")
        chosen: asyncio.Protocol
        chosen = H2Connection(self.server) if protocol == H2 else _Connection(self.server)
        transport.set_protocol(chosen)
        chosen.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Only a refused connection still gets here (before its close takes effect): dropped."""


class JsonPostServer:
    """Serves ``routes`` (path -> handler) on one TCP port until ``close()``."""

    def __init__(
        self, routes: Mapping[str, Handler], max_body: int, on_connection: Callable[[str], None] | None = None
    ) -> None:
        self.routes: dict[bytes, Handler] = {path.encode(): handler for path, handler in routes.items()}
        self.max_body = max_body
        self.on_connection: Callable[[str], None] = on_connection or (lambda _protocol: None)
        """Told of every accepted connection: its protocol (h2, http/1.1, ...) or "refused"."""
        self.connections: set[_Served] = set()
        self.tasks: set[asyncio.Future[Answer]] = set()
        self.idle_timeout = IDLE_TIMEOUT
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.draining = False
        """Shutting down: every answer closes its connection, so clients reconnect elsewhere."""

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str, port: int, backlog: int = 1024, tls: ReloadingTLS | None = None) -> None:
        """Listen on ``host:port``; with ``tls``, HTTPS (HTTP/2 or HTTP/1.1 by ALPN) only."""
        loop = asyncio.get_running_loop()
        if tls is None:

            def plain() -> _Connection:
                self.on_connection(HTTP11)
                return _Connection(self)

            self._server = await loop.create_server(plain, host, port, backlog=backlog)
        else:
            tls.on_reload.append(self.drain)
            self._server = await loop.create_server(
                lambda: _Handshaken(self, tls), host, port, backlog=backlog, ssl=tls.context
            )
        self._reaper = asyncio.create_task(self._reap_idle(), name="http-idle-reaper")

    def dispatch(self, method: bytes, path: bytes, body: bytes) -> Answer | Awaitable[Answer]:
        """The route's answer (or the awaitable that will give it); never raises."""
        handler = self.routes.get(path)
        if handler is None:
            return 404, error_body(f"no such endpoint {path.decode(errors='replace')!r}")
        if method != b"POST":
            return 405, error_body(f"{method.decode(errors='replace')} is not allowed here; use POST")
        try:
            return handler(body)
        except Exception:
            log.exception("handler for %s failed", path.decode(errors="replace"))
            return 500, error_body("internal error (logged by the server)")

    @staticmethod
    def settle(path: bytes, task: asyncio.Future[Answer]) -> Answer:
        """The answer of a finished handler task (a failure is logged and answered 500)."""
        if task.cancelled():
            return 503, error_body("server is shutting down")
        if (exc := task.exception()) is not None:
            log.error("handler for %s failed: %r", path.decode(errors="replace"), exc, exc_info=exc)
            return 500, error_body("internal error (logged by the server)")
        return task.result()

    def drain(self) -> None:
        """Ask every open connection to finish (new TLS files: reconnect under them)."""
        for connection in list(self.connections):
            connection.drain()

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(self.idle_timeout / 4)
            now = time.monotonic()
            for connection in list(self.connections):
                connection.close_if_idle(now, self.idle_timeout)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._reaper is not None:
            self._reaper.cancel()
        if self.tasks:  # answers in flight (a bind) finish rather than leave the caller to retry
            _, late = await asyncio.wait(list(self.tasks), timeout=5)
            for task in late:
                task.cancel()
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
