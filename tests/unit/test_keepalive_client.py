"""The keep-alive client that makes Spillover's short apiserver requests, against a real local server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from extender.kube.keepalive import KeepAliveClient
from extender.server.http_server import Answer, JsonPostServer


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def echo(self, body: bytes) -> Answer:
        self.bodies.append(body)
        return 200, b'{"echo":' + body + b"}"

    def conflict(self, body: bytes) -> Answer:
        return 409, b'{"reason":"AlreadyExists"}'

    async def slow(self, body: bytes) -> Answer:
        await asyncio.sleep(5)
        return 200, b"{}"


@pytest.fixture
async def server() -> AsyncIterator[tuple[JsonPostServer, Recorder]]:
    recorder = Recorder()
    srv = JsonPostServer({"/echo": recorder.echo, "/conflict": recorder.conflict, "/slow": recorder.slow}, 1024)
    await srv.start("127.0.0.1", 0)
    yield srv, recorder
    await srv.close()


async def test_requests_reuse_one_connection_and_return_status_and_body(
    server: tuple[JsonPostServer, Recorder],
) -> None:
    srv, recorder = server
    client = KeepAliveClient(f"http://127.0.0.1:{srv.port}", None)
    for i in range(5):
        assert await client.request("POST", "/echo", str(i).encode(), {"Content-Type": "application/json"}, 5) == (
            200,
            f'{{"echo":{i}}}'.encode(),
        )
    assert len(srv.connections) == 1
    assert recorder.bodies == [b"0", b"1", b"2", b"3", b"4"]
    client.close()


async def test_concurrent_requests_each_get_their_own_answer(server: tuple[JsonPostServer, Recorder]) -> None:
    srv, _ = server
    client = KeepAliveClient(f"http://127.0.0.1:{srv.port}", None, limit=4)
    answers = await asyncio.gather(*(client.request("POST", "/echo", str(i).encode(), {}, 5) for i in range(20)))
    assert [body for _, body in answers] == [f'{{"echo":{i}}}'.encode() for i in range(20)]
    assert len(srv.connections) <= 4
    client.close()


async def test_error_statuses_are_returned_not_raised(server: tuple[JsonPostServer, Recorder]) -> None:
    srv, _ = server
    client = KeepAliveClient(f"http://127.0.0.1:{srv.port}", None)
    assert await client.request("POST", "/conflict", b"{}", {}, 5) == (409, b'{"reason":"AlreadyExists"}')
    client.close()


async def test_a_pooled_connection_the_server_dropped_is_replaced_transparently(
    server: tuple[JsonPostServer, Recorder],
) -> None:
    srv, recorder = server
    client = KeepAliveClient(f"http://127.0.0.1:{srv.port}", None)
    await client.request("POST", "/echo", b"1", {}, 5)
    for connection in list(srv.connections):  # the server closes its idle keep-alive connection
        connection.abort()
    await asyncio.sleep(0.05)
    assert await client.request("POST", "/echo", b"2", {}, 5) == (200, b'{"echo":2}')
    assert recorder.bodies == [b"1", b"2"]
    client.close()


async def test_a_slow_server_times_out_with_timeout_error(server: tuple[JsonPostServer, Recorder]) -> None:
    srv, _ = server
    client = KeepAliveClient(f"http://127.0.0.1:{srv.port}", None)
    with pytest.raises(TimeoutError):
        await client.request("POST", "/slow", b"{}", {}, 0.2)
    assert await client.request("POST", "/echo", b"3", {}, 5) == (200, b'{"echo":3}')  # the pool is still usable
    client.close()


async def test_nothing_listening_raises_a_client_error_naming_the_address() -> None:
    srv = JsonPostServer({}, 10)
    await srv.start("127.0.0.1", 0)
    port = srv.port
    await srv.close()
    client = KeepAliveClient(f"http://127.0.0.1:{port}", None)
    with pytest.raises(aiohttp.ClientOSError, match=f"Cannot connect to host 127.0.0.1:{port}"):
        await client.request("GET", "/", None, {}, 5)


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        KeepAliveClient("ftp://example", None)
