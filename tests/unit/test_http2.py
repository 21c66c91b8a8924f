"""The extender's HTTP/2 framing, frame by frame: what Go's transport may send beyond the plain
case (CONTINUATION, padding, PING, early SETTINGS) is understood, and what breaks the protocol
ends the connection with a GOAWAY naming the error."""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import hpack
import pytest
from spillover_lab import pki

from extender.server import http2_frames as wire
from extender.server.answers import Answer
from extender.server.http_server import JsonPostServer
from extender.server.tls import ReloadingTLS, TLSFiles


def echo(body: bytes) -> Answer:
    return 200, b'{"echo":' + body + b"}"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[JsonPostServer, ssl.SSLContext]]:
    ca = pki.make_ca(tmp_path, "ca", "ca")
    pki.make_leaf(tmp_path, "serving", ca, "extender", server=True, sans=("127.0.0.1",))
    pki.make_leaf(tmp_path, "client", ca, "scheduler")
    serving, key, client_ca = (str(tmp_path / name) for name in ("serving.crt", "serving.key", "ca.crt"))
    files = TLSFiles(serving, key, client_ca, alpn=("h2",))
    srv = JsonPostServer({"/echo": echo}, max_body=1024)
    await srv.start("127.0.0.1", 0, tls=ReloadingTLS(files, "extender"))
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    context.check_hostname = False
    context.load_cert_chain(str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
    context.set_alpn_protocols(["h2"])
    yield srv, context
    await srv.close()


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()

    @classmethod
    async def open(cls, server: tuple[JsonPostServer, ssl.SSLContext], preface: bytes = wire.PREFACE) -> Raw:
        srv, context = server
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, ssl=context, server_hostname="")
        writer.write(preface)
        return cls(reader, writer)

    def send(self, kind: int, flags: int, stream_id: int, payload: bytes = b"") -> None:
        self.writer.write(wire.frame(kind, flags, stream_id, payload))

    def headers(self, path: str) -> bytes:
        return self.encoder.encode([(":method", "POST"), (":scheme", "https"), (":path", path), (":authority", "x")])

    async def next_frame(self) -> tuple[int, int, int, bytes]:
        head = await asyncio.wait_for(self.reader.readexactly(9), 5)
        length = int.from_bytes(head[:3], "big")
        payload = await asyncio.wait_for(self.reader.readexactly(length), 5)
        return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, payload

    async def until(self, kind: int, stream_id: int | None = None) -> tuple[int, bytes]:
        """Flags and payload of the next frame of this kind (others are skipped)."""
        while True:
            got, flags, sid, payload = await self.next_frame()
            if got == kind and (stream_id is None or sid == stream_id):
                return flags, payload

    async def answer(self, stream_id: int) -> tuple[int, bytes]:
        _, block = await self.until(wire.HEADERS, stream_id)
        status = int(dict(self.decoder.decode(block, raw=True))[b":status"])
        body = b""
        while True:
            flags, payload = await self.until(wire.DATA, stream_id)
            body += payload
            if flags & wire.END_STREAM:
                return status, body


async def test_a_header_block_split_over_continuation_frames_and_padded_data_are_reassembled(
    server: tuple[JsonPostServer, ssl.SSLContext],
) -> None:
    raw = await Raw.open(server)
    raw.send(wire.SETTINGS, 0, 0)
    block = raw.headers("/echo")
    padded_headers = bytes([3]) + block[:5] + b"\0\0\0"
    raw.send(wire.HEADERS, wire.PADDED, 1, padded_headers)
    raw.send(wire.CONTINUATION, 0, 1, block[5:8])
    raw.send(wire.CONTINUATION, wire.END_HEADERS, 1, block[8:])
    raw.send(wire.DATA, 0, 1, b"4")
    raw.send(wire.DATA, wire.PADDED | wire.END_STREAM, 1, bytes([4]) + b"2" + b"\0" * 4)
    status, body = await raw.answer(1)
    assert (status, json.loads(body)) == (200, {"echo": 42})
    raw.writer.close()


async def test_ping_is_acknowledged_with_its_payload_and_settings_are_acknowledged(
    server: tuple[JsonPostServer, ssl.SSLContext],
) -> None:
    raw = await Raw.open(server)
    raw.send(wire.SETTINGS, 0, 0, struct.pack(">HI", wire.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20))
    flags, _ = await raw.until(wire.SETTINGS)
    assert not flags & wire.ACK, "the server speaks first with its own settings"
    flags, _ = await raw.until(wire.SETTINGS)
    assert flags & wire.ACK
    raw.send(wire.PING, 0, 0, b"12345678")
    flags, payload = await raw.until(wire.PING)
    assert flags & wire.ACK and payload == b"12345678"
    raw.writer.close()


async def test_a_zero_window_holds_the_answer_until_the_client_opens_it(
    server: tuple[JsonPostServer, ssl.SSLContext],
) -> None:
    raw = await Raw.open(server)
    raw.send(wire.SETTINGS, 0, 0, struct.pack(">HI", wire.SETTINGS_INITIAL_WINDOW_SIZE, 0))
    raw.send(wire.HEADERS, wire.END_HEADERS, 1, raw.headers("/echo"))
    raw.send(wire.DATA, wire.END_STREAM, 1, b"7")
    await raw.until(wire.HEADERS, 1)
    raw.send(wire.PING, 0, 0, b"barrier!")
    while True:  # nothing of the body may come before the window opens
        kind, flags, _, payload = await raw.next_frame()
        assert kind != wire.DATA
        if kind == wire.PING and flags & wire.ACK:
            break
    raw.send(wire.WINDOW_UPDATE, 0, 1, struct.pack(">I", 100))
    flags, payload = await raw.until(wire.DATA, 1)
    assert flags & wire.END_STREAM and json.loads(payload) == {"echo": 7}
    raw.writer.close()


async def test_an_oversized_body_gets_413_and_the_stream_is_reset_without_error(
    server: tuple[JsonPostServer, ssl.SSLContext],
) -> None:
    raw = await Raw.open(server)
    raw.send(wire.HEADERS, wire.END_HEADERS, 1, raw.headers("/echo"))
    raw.send(wire.DATA, 0, 1, b"x" * 2000)
    status, body = await raw.answer(1)
    assert status == 413 and "larger than 1024" in json.loads(body)["error"]
    _, payload = await raw.until(wire.RST_STREAM, 1)
    assert struct.unpack(">I", payload)[0] == wire.NO_ERROR
    raw.send(wire.HEADERS, wire.END_HEADERS, 3, raw.headers("/echo"))
    raw.send(wire.DATA, wire.END_STREAM, 3, b"1")
    assert (await raw.answer(3))[0] == 200, "the connection is still good"
    raw.writer.close()


@pytest.mark.parametrize(
    "frames, code, words",
    [
        ([(wire.HEADERS, wire.END_HEADERS, 2, b"\x83")], wire.PROTOCOL_ERROR, "stream 2"),
        ([(wire.HEADERS, wire.END_HEADERS, 1, b"\x80")], wire.COMPRESSION_ERROR, "index 0"),
        ([(wire.HEADERS, 0, 1, b"\x83"), (wire.PING, 0, 0, b"12345678")], wire.PROTOCOL_ERROR, "interrupted"),
        ([(wire.DATA, 0, 0, b"x")], wire.PROTOCOL_ERROR, "stream 0"),
        ([(wire.PUSH_PROMISE, wire.END_HEADERS, 1, b"\0\0\0\2")], wire.PROTOCOL_ERROR, "push"),
    ],
)
async def test_protocol_errors_end_the_connection_with_a_goaway_naming_them(
    server: tuple[JsonPostServer, ssl.SSLContext], frames: list[tuple[int, int, int, bytes]], code: int, words: str
) -> None:
    raw = await Raw.open(server)
    for kind, flags, sid, payload in frames:
        raw.send(kind, flags, sid, payload)
    _, payload = await raw.until(wire.GOAWAY)
    assert struct.unpack(">I", payload[4:8])[0] == code and words in payload[8:].decode()
    assert await asyncio.wait_for(raw.reader.read(), 5) == b""


async def test_a_connection_that_does_not_start_with_the_preface_is_closed(
    server: tuple[JsonPostServer, ssl.SSLContext],
) -> None:
    raw = await Raw.open(server, preface=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    _, payload = await raw.until(wire.GOAWAY)
    assert b"preface" in payload
