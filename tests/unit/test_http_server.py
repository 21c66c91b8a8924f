"""The lean HTTP/1.1 server under the extender verbs, spoken to byte by byte."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from extender.server.http_server import Answer, JsonPostServer


async def slow_echo(body: bytes) -> Answer:
    await asyncio.sleep(0.05)
    return 200, b'{"slow":' + body + b"}"


def fast_echo(body: bytes) -> Answer:
    return 200, b'{"fast":' + body + b"}"


def broken(body: bytes) -> Answer:
    raise RuntimeError("bug")


@pytest.fixture
async def server() -> AsyncIterator[JsonPostServer]:
    srv = JsonPostServer({"/slow": slow_echo, "/fast": fast_echo, "/broken": broken}, max_body=64)
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.close()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def connect(server: JsonPostServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def test_keep_alive_serves_many_requests_on_one_connection(server: JsonPostServer) -> None:
    reader, writer = await connect(server)
    for i in range(3):
        writer.write(post("/fast", str(i).encode()))
        status, headers, body = await read_response(reader)
        assert (status, json.loads(body)) == (200, {"fast": i})
        assert headers["content-type"] == "application/json"
    writer.close()


async def test_pipelined_requests_are_answered_in_order_even_when_the_first_is_slower(server: JsonPostServer) -> None:
    reader, writer = await connect(server)
    writer.write(post("/slow", b"1") + post("/fast", b"2") + post("/slow", b"3"))
    answers = [json.loads((await read_response(reader))[2]) for _ in range(3)]
    assert answers == [{"slow": 1}, {"fast": 2}, {"slow": 3}]
    writer.close()


async def test_chunked_bodies_are_reassembled(server: JsonPostServer) -> None:
    reader, writer = await connect(server)
    head = b"POST /fast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    writer.write(head + b"2\r\n[1\r\n2\r\n,2\r\n1\r\n]\r\n0\r\n\r\n")
    status, _, body = await read_response(reader)
    assert (status, json.loads(body)) == (200, {"fast": [1, 2]})
    writer.close()


async def test_expect_100_continue_is_honoured(server: JsonPostServer) -> None:
    reader, writer = await connect(server)
    writer.write(b"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"7")
    status, _, body = await read_response(reader)
    assert (status, json.loads(body)) == (200, {"fast": 7})
    writer.close()


@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        (post("/nowhere", b"{}"), 404, "no such endpoint '/nowhere'"),
        (b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n", 405, "GET is not allowed here; use POST"),
        (post("/fast", b"x" * 65), 413, "larger than 64 bytes"),
        (post("/broken", b"{}"), 500, "internal error"),
    ],
)
async def test_what_cannot_be_served_gets_a_status_and_a_message_naming_why(
    server: JsonPostServer, request_bytes: bytes, status: int, message: str
) -> None:
    reader, writer = await connect(server)
    writer.write(request_bytes)
    got, headers, body = await read_response(reader)
    assert got == status
    assert message in json.loads(body)["error"]
    if status == 405:
        assert headers["allow"] == "POST"
    writer.close()


async def test_bytes_that_are_not_http_get_a_400_and_the_connection_is_closed(server: JsonPostServer) -> None:
    reader, writer = await connect(server)
    writer.write(b"\x16\x03\x01 this is a TLS hello, not HTTP\r\n\r\n")
    status, headers, body = await read_response(reader)
    assert status == 400 and "malformed HTTP request" in json.loads(body)["error"]
    assert headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 5) == b""


async def test_connection_close_is_honoured_after_the_answer(server: JsonPostServer) -> None:
    reader, writer = await connect(server)
    writer.write(post("/fast", b"1", extra="Connection: close\r\n"))
    status, headers, _ = await read_response(reader)
    assert status == 200 and headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 5) == b""


async def test_close_answers_requests_in_flight_and_drops_connections(server: JsonPostServer) -> None:
    reader, writer = await connect(server)
    writer.write(post("/slow", b"1"))
    await asyncio.sleep(0.01)
    await server.close()
    data = await asyncio.wait_for(reader.read(), 5)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b'{"slow":1}'), "finished, not cut off"
    assert not server.connections


async def test_a_draining_server_closes_each_connection_after_its_answer(server: JsonPostServer) -> None:
    reader, writer = await connect(server)
    server.draining = True
    writer.write(post("/fast", b"1"))
    data = await asyncio.wait_for(reader.read(), 5)  # read to EOF: the server closed it
    assert b"Connection: close" in data and data.endswith(b'{"fast":1}')


def test_the_server_runs_on_uvloop_as_in_production() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def exchange() -> tuple[int, bytes]:
        srv = JsonPostServer({"/fast": fast_echo}, max_body=64)
        await srv.start("127.0.0.1", 0)
        try:
            reader, writer = await connect(srv)
            writer.write(post("/fast", b"1") + post("/fast", b"2"))
            first, second = await read_response(reader), await read_response(reader)
            writer.close()
            return first[0], first[2] + second[2]
        finally:
            await srv.close()

    assert uvloop.run(exchange()) == (200, b'{"fast":1}{"fast":2}')
