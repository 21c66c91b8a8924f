"""Raw HTTP against an apiserver through kubernetes_asyncio's authenticated session.

The generated API classes deserialise into slow model objects; Spillover reads bytes and decodes
only the fields it needs with msgspec, and writes small JSON bodies it builds itself.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import msgspec
from kubernetes_asyncio import client

from extender.kube.api import Query
from extender.kube.keepalive import KeepAliveClient

READ_CHUNK = 2**16


class _Status(msgspec.Struct):
    """meta/v1 Status, the body of an error answer."""

    reason: str = ""
    message: str | None = None


class ApiError(Exception):
    """A non-2xx answer from an apiserver."""

    def __init__(self, status: int, body: bytes, method: str, path: str) -> None:
        self.status = status
        self.body = body
        self.reason = ""
        self.message = body[:300].decode(errors="replace")
        try:
            answer = msgspec.json.decode(body, type=_Status)
            self.reason = answer.reason
            self.message = answer.message if answer.message is not None else self.message
        except msgspec.DecodeError:  # not JSON, or not a Status (ValidationError is a DecodeError)
            pass
        super().__init__(f"{method} {path}: HTTP {status}: {self.message}")


class RawClient:
    """An ``Api`` (and ``WatchApi``) on the client's Configuration, without its REST layer.

    kubernetes_asyncio's REST layer runs aiohttp with ``trust_env``: every request looks up proxy
    variables and parses ~/.netrc in a worker thread, which was half the CPU of a bind. Short
    requests go through ``KeepAliveClient`` (see there for why); watches stream on an aiohttp
    session with no environment lookups. TLS material, host and credentials still come from
    kubernetes_asyncio's kubeconfig handling. With ``owns_api``, ``close`` closes ``api`` too.
    """

    def __init__(self, api: client.ApiClient, timeout: float = 10.0, pool: int = 256, owns_api: bool = False) -> None:
        self.api = api
        self.owns_api = owns_api
        self.timeout = timeout
        cfg = api.configuration
        self.host = (cfg.host or "").rstrip("/")
        self._cfg = cfg
        self._pool = pool
        self._session: aiohttp.ClientSession | None = None
        self._short: KeepAliveClient | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        cfg = self._cfg
        if not self.host.startswith("https"):
            return False
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
        if not cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        return ctx

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._pool, ssl=self._ssl(), ttl_dns_cache=None, keepalive_timeout=60
            )
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, json_serialize=_json_text, skip_auto_headers=("User-Agent",)
            )
        return self._session

    def short_requests(self) -> KeepAliveClient:
        if self._short is None or self._short.closed:
            context = self._ssl()
            self._short = KeepAliveClient(
                self.host, context if isinstance(context, ssl.SSLContext) else None, limit=self._pool
            )
        return self._short

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "spillover"}
        if content_type:
            headers["Content-Type"] = content_type
        cfg: Any = self._cfg
        if cfg.refresh_api_key_hook is not None:  # exec plugins and expiring tokens
            await _maybe_await(cfg.refresh_api_key_hook(cfg))
        token = cfg.api_key.get("BearerToken") or cfg.api_key.get("authorization")
        if token:
            prefix = cfg.api_key_prefix.get("BearerToken") or cfg.api_key_prefix.get("authorization")
            headers["Authorization"] = f"{prefix} {token}" if prefix else token
        return headers

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Query = (),
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> bytes:
        """Send one request and return the body; raise ApiError on a non-2xx status."""
        data = None if body is None else body if isinstance(body, bytes) else _encoder.encode(body)
        headers = await self._headers(content_type if data is not None else None)
        target = f"{path}?{urlencode([(k, str(v)) for k, v in query])}" if query else path
        status, payload = await self.short_requests().request(
            method, target, data, headers, timeout=timeout or self.timeout
        )
        if status >= 300:
            raise ApiError(status, payload, method, path)
        return payload

    async def get(self, path: str, query: Query = ()) -> bytes:
        return await self.request("GET", path, query=query)

    @contextlib.asynccontextmanager
    async def _streamed(self, path: str, query: Query, idle_timeout: float) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET whose body is read as it comes: the timeout bounds silence (connect, then each
        read), never the whole body."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=idle_timeout)
        async with self.session().get(
            self.host + path,
            params=[(k, str(v)) for k, v in query],
            headers=await self._headers(None),
            timeout=timeout,
        ) as resp:
            yield resp

    async def list_page(self, path: str, query: Query = ()) -> bytes:
        """One page of a list; a long page from a slow but healthy server is read to the end."""
        async with self._streamed(path, query, self.timeout) as resp:
            # Taken a chunk at a time (not resp.read(), which lifts the flow control): the TLS
            # layer then decrypts a bounded amount per turn of the event loop, not a whole page.
            chunks = [chunk async for chunk in resp.content.iter_chunked(READ_CHUNK)]
            body = b"".join(chunks)
            if resp.status >= 300:
                raise ApiError(resp.status, body, "GET", path)
            return body

    async def stream_lines(self, path: str, query: Query, idle_timeout: float) -> AsyncIterator[bytes]:
        """A watch stream, line by line; the server closes it after timeoutSeconds."""
        async with self._streamed(path, query, idle_timeout) as resp:
            if resp.status >= 300:
                raise ApiError(resp.status, await resp.read(), "WATCH", path)
            async for line in resp.content:
                if line.strip():
                    yield line

    @contextlib.asynccontextmanager
    async def open_stream(
        self, path: str, query: Query, idle_timeout: float | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """A streamed GET (a pod's log): the body's chunks, read as they arrive; ApiError on a
        non-2xx status. ``idle_timeout`` None waits for the next byte for ever (``follow``)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=idle_timeout)
        headers = await self._headers(None)
        headers["Accept"] = "*/*"
        async with self.session().get(
            self.host + path, params=[(k, str(v)) for k, v in query], headers=headers, timeout=timeout
        ) as resp:
            if resp.status >= 300:
                raise ApiError(resp.status, await resp.read(), "GET", path)
            yield resp.content.iter_any()

    async def close(self) -> None:
        if self._short is not None:
            self._short.close()
        if self._session is not None:
            await self._session.close()
        if self.owns_api:
            await self.api.close()


_encoder = msgspec.json.Encoder()


def _json_text(obj: Any) -> str:
    return _encoder.encode(obj).decode()


async def _maybe_await(value: Any) -> None:
    if hasattr(value, "__await__"):
        await value
