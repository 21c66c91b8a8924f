"""A small HTTP/1.1 server for JSON POST endpoints, on httptools (the parser uvicorn uses).

Why not aiohttp here: kube-scheduler calls ``filter`` inside its serial scheduling cycle and
``bind`` for every pod, so this server's per-request cost is paid once or twice per scheduled pod
on the same cores the apiserver needs. aiohttp spent about 160 us of CPU per filter call in its
request, response and routing objects; this framing spends about 50 us (measured with a Go client
that calls the way the scheduler does). Everything else (webhook, metrics, status) stays on aiohttp.

Scope, on purpose: POST with a body (Content-Length or chunked), keep-alive, pipelining answered
in order, ``Expect: 100-continue``. Anything else gets a clear 4xx: an unknown path 404, another
method 405, a body over the limit 413, bytes that are not HTTP 400. A handler that raises is a bug;
it is logged and answered 500 rather than taking the connection down.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import cast

import httptools
import msgspec

log = logging.getLogger("spillover.http")

Answer = tuple[int, bytes]
"""HTTP status and a JSON body."""
Handler = Callable[[bytes], Answer | Awaitable[Answer]]
"""A route: the request body in, an answer out (directly, or awaited when it does I/O)."""

IDLE_TIMEOUT = 120.0
"""Longer than Go's default idle timeout (90 s), so the client closes idle connections first."""

_encode = msgspec.json.encode


def error_body(message: str) -> bytes:
    return _encode({"error": message})


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

    def _route(self, request: _Request) -> Answer | Awaitable[Answer]:
        if request.problem is not None:
            return request.problem
        handler = self.server.routes.get(request.path)
        if handler is None:
            return 404, error_body(f"no such endpoint {request.path.decode(errors='replace')!r}")
        if request.method != b"POST":
            return 405, error_body(f"{request.method.decode(errors='replace')} is not allowed here; use POST")
        try:
            return handler(request.body)
        except Exception:
            log.exception("handler for %s failed", request.path.decode(errors="replace"))
            return 500, error_body("internal error (logged by the server)")

    def _finished(self, request: _Request, task: asyncio.Future[Answer]) -> None:
        self.server.tasks.discard(task)
        if task.cancelled():
            answer: Answer = 503, error_body("server is shutting down")
        elif (exc := task.exception()) is not None:
            log.error("handler for %s failed: %r", request.path.decode(errors="replace"), exc, exc_info=exc)
            answer = 500, error_body("internal error (logged by the server)")
        else:
            answer = task.result()
        self._write(request, answer)
        self._next()

    def _write(self, request: _Request, answer: Answer) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        status, body = answer
        extra = b"Allow: POST\r\n" if status == 405 else b""
        transport.write(_head(status, len(body), request.keep_alive, extra) + body)
        self.last_active = time.monotonic()
        if not request.keep_alive:
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

    def close_if_idle(self, now: float) -> None:
        if not self.busy and not self.pending and now - self.last_active > IDLE_TIMEOUT and self.transport:
            self.closing = True
            self.transport.close()


class JsonPostServer:
    """Serves ``routes`` (path -> handler) on one TCP port until ``close()``."""

    def __init__(self, routes: Mapping[str, Handler], max_body: int) -> None:
        self.routes: dict[bytes, Handler] = {path.encode(): handler for path, handler in routes.items()}
        self.max_body = max_body
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Future[Answer]] = set()
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str, port: int, backlog: int = 1024) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=backlog)
        self._reaper = asyncio.create_task(self._reap_idle(), name="http-idle-reaper")

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(IDLE_TIMEOUT / 4)
            now = time.monotonic()
            for connection in list(self.connections):
                connection.close_if_idle(now)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._reaper is not None:
            self._reaper.cancel()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        if self._server is not None:
            await self._server.wait_closed()
