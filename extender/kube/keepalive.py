"""A keep-alive HTTP/1.1 client for short apiserver requests, on httptools.

Why not aiohttp's client: every pod Spillover binds costs one apiserver write made from here (the
Binding), on the same cores as the apiserver and kube-scheduler, and aiohttp's request machinery
(URL objects, header multidicts, tracing hooks, timers) cost several times the bytes it sends.
This client writes the request in one buffer and parses the answer with httptools. Watches, which
stream, stay on aiohttp.

Connections are pooled (at most ``limit`` open, waiters queue). A pooled connection the server
closed while idle is the one failure that is retried, once, on a fresh connection, as Go's
transport does; anything else surfaces to the caller as ``aiohttp.ClientOSError`` or
``TimeoutError`` (both ``OSError``), the same types the aiohttp-based paths raise.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
import httptools

IDLE_SECONDS = 30.0
"""Pooled connections idle longer than this are closed rather than reused (servers drop them)."""


class _Connection(asyncio.Protocol):
    __slots__ = ("chunks", "closed", "got_bytes", "parser", "transport", "used_at", "waiter")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.chunks: list[bytes] = []
        self.closed = False
        self.got_bytes = False
        self.used_at = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(aiohttp.ClientOSError(f"connection closed by the server: {exc or 'EOF'}"))

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(aiohttp.ClientOSError(f"malformed HTTP response: {exc}"))

    def on_message_begin(self) -> None:
        self.chunks = []

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), b"".join(self.chunks), self.parser.should_keep_alive()))
        self.chunks = []

    def _fail(self, exc: Exception) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def send(self, data: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.got_bytes = False
        self.parser = httptools.HttpResponseParser(self)
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class KeepAliveClient:
    def __init__(self, base_url: str, ssl_context: ssl.SSLContext | None, limit: int = 64) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl = ssl_context if url.scheme == "https" else None
        self.prefix = url.path.rstrip("/")
        self.host_header = url.netloc
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(limit)
        self.closed = False

    async def request(
        self, method: str, target: str, body: bytes | None, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes]:
        """Send one request (``target`` is path and query) and return status and body."""
        if self.closed:
            raise aiohttp.ClientOSError("client is closed")
        lines = [f"{method} {self.prefix}{target} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        async with self.slots:
            async with asyncio.timeout(timeout):
                conn, reused = await self._connection()
                try:
                    try:
                        status, payload, keep_alive = await conn.send(data)
                    except aiohttp.ClientOSError:
                        if not (reused and not conn.got_bytes):
                            raise
                        conn.close()  # the server closed it while it sat idle: once more, on a new one
                        conn = await self._connect()
                        status, payload, keep_alive = await conn.send(data)
                except BaseException:
                    conn.close()
                    raise
        if keep_alive and not conn.closed and not self.closed:
            conn.used_at = time.monotonic()
            conn.waiter = None
            self.idle.append(conn)
        else:
            conn.close()
        return status, payload

    async def _connection(self) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.used_at < IDLE_SECONDS:
                return conn, True
            conn.close()
        return await self._connect(), False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                _Connection, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
            )
        except OSError as exc:
            raise aiohttp.ClientOSError(f"Cannot connect to host {self.host}:{self.port}: {exc}") from exc
        return conn

    def close(self) -> None:
        self.closed = True
        for conn in self.idle:
            conn.close()
        self.idle.clear()
