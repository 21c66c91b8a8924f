"""Raw HTTP against an apiserver through kubernetes_asyncio's authenticated session.

The generated API classes deserialise into slow model objects; Spillover reads bytes and decodes
only the fields it needs with msgspec, and writes small JSON bodies it builds itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import msgspec
from kubernetes_asyncio import client


class ApiError(Exception):
    """A non-2xx answer from an apiserver."""

    def __init__(self, status: int, body: bytes, method: str, path: str) -> None:
        self.status = status
        self.body = body
        self.reason = ""
        self.message = body[:300].decode(errors="replace")
        try:
            status_obj = msgspec.json.decode(body)
            if isinstance(status_obj, dict):
                self.reason = str(status_obj.get("reason", ""))
                self.message = str(status_obj.get("message", self.message))
        except msgspec.DecodeError:
            pass
        super().__init__(f"{method} {path}: HTTP {status}: {self.message}")


class RawClient:
    def __init__(self, api: client.ApiClient, timeout: float = 10.0) -> None:
        self.api = api
        self.timeout = timeout

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Sequence[tuple[str, str | int]] = (),
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> bytes:
        """Send one request and return the body; raise ApiError on a non-2xx status."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        # The library json.dumps() JSON bodies itself, so it gets builtins (not bytes).
        data = None if body is None else msgspec.to_builtins(body)
        resp: aiohttp.ClientResponse = await self.api.call_api(
            path,
            method,
            query_params=list(query),
            header_params=headers,
            body=data,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout or self.timeout,
            response_types_map={},
        )
        try:
            payload = await resp.read()
        finally:
            resp.release()
        if resp.status >= 300:
            raise ApiError(resp.status, payload, method, path)
        return payload

    async def get(self, path: str, query: Sequence[tuple[str, str | int]] = ()) -> bytes:
        return await self.request("GET", path, query=query)

    async def stream_lines(
        self, path: str, query: Sequence[tuple[str, str | int]], idle_timeout: float
    ) -> AsyncIterator[bytes]:
        """A watch stream, line by line; the server closes it after timeoutSeconds."""
        resp: aiohttp.ClientResponse = await self.api.call_api(
            path,
            "GET",
            query_params=list(query),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=idle_timeout),
            response_types_map={},
        )
        try:
            if resp.status >= 300:
                raise ApiError(resp.status, await resp.read(), "WATCH", path)
            async for line in resp.content:
                if line.strip():
                    yield line
        finally:
            resp.release()
