"""HTTP/2 (RFC 9113) for the extender's JSON POST endpoints, over TLS (chosen by ALPN).

Why HTTP/2: kube-scheduler's extender client keeps only two idle HTTP/1.1 connections per
extender, so its binds, which overlap by the hundred, opened a new TCP connection almost every
time (0.93 per pod in the throughput bench); over TLS each would also be a full handshake (about
0.4 ms of this server's CPU per call, measured). Its transport negotiates HTTP/2 whenever TLS is
on (``utilnet.SetTransportDefaults`` in k8s.io/apimachinery/pkg/util/net, unless DISABLE_HTTP2 is
set), and then every call is a stream on one connection.

Why not the ``h2`` package: its state machine cost about 220-250 us of CPU per call here, five
times the HTTP/1.1 path on httptools (measured with a Go client built on the scheduler's
transport). This framing implements what a server of POST endpoints needs and nothing more: the
preface, SETTINGS, PING, WINDOW_UPDATE and flow control both ways, HEADERS with CONTINUATION,
padding and priority fields, DATA, RST_STREAM and GOAWAY; no server push, no priorities (both
optional). Streams are answered independently (a slow bind holds up no filter). A body over the
limit gets a 413 and the stream is reset with NO_ERROR (RFC 9113 8.1); a response larger than
the client's windows waits for its WINDOW_UPDATEs. A protocol error ends the connection with a
GOAWAY naming it; nothing a client sends raises out of here. ``tests/unit/test_extender_tls.py``
drives it with ``h2``'s client state machine, and the e2e tests with the real kube-scheduler.
"""

from __future__ import annotations

import asyncio
import functools
import struct
import time
from collections.abc import Awaitable
from typing import Any, Protocol, cast

from extender.server.answers import Answer, error_body
from extender.server.header_compression import CompressionError, Decoder
from extender.server.http2_frames import (
    ACK,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    DEFAULT_WINDOW,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME,
    MAX_HEADER_BLOCK,
    MAX_WINDOW,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    SETTINGS_MAX_FRAME_SIZE,
    SETTINGS_MAX_HEADER_LIST_SIZE,
    STREAM_CLOSED,
    WINDOW,
    WINDOW_UPDATE,
    H2ConnectionError,
    Stream,
    frame,
)
from extender.server.http2_output import H2Output

_setting = struct.Struct(">HI")


class Server(Protocol):
    """What a connection needs of its server (``http_server.JsonPostServer``): the routes, the
    body limit, and the sets it registers connections and running handlers in."""

    max_body: int
    connections: set[Any]
    tasks: set[asyncio.Future[Answer]]

    def dispatch(self, method: bytes, path: bytes, body: bytes) -> Answer | Awaitable[Answer]: ...
    def settle(self, path: bytes, task: asyncio.Future[Answer]) -> Answer: ...


class H2Connection(H2Output, asyncio.Protocol):
    """One HTTP/2 connection, already through its TLS handshake (ALPN chose h2): frames read and
    requests dispatched here, answers sent by ``H2Output``."""

    def __init__(self, server: Server) -> None:
        super().__init__()
        self.server = server
        self.buffer = bytearray()
        self.preface_seen = False
        self.decoder = Decoder()
        self.headers_for = 0
        """The stream a header block is being continued for (CONTINUATION), 0 if none."""
        self.header_block = bytearray()
        self.header_end_stream = False
        self.initial_stream_window = DEFAULT_WINDOW
        self.received = 0
        """Bytes received since this side last replenished the connection's receive window."""

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        settings = b"".join(
            _setting.pack(key, value)
            for key, value in (
                (SETTINGS_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS),
                (SETTINGS_INITIAL_WINDOW_SIZE, WINDOW),
                (SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_BLOCK),
            )
        )
        increment = struct.pack(">I", WINDOW - DEFAULT_WINDOW)
        self.transport.write(frame(SETTINGS, 0, 0, settings) + frame(WINDOW_UPDATE, 0, 0, increment))

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        buffer = self.buffer
        buffer += data
        try:
            if not self.preface_seen:
                if len(buffer) < len(PREFACE):
                    if not PREFACE.startswith(bytes(buffer)):
                        raise H2ConnectionError(PROTOCOL_ERROR, "not the HTTP/2 connection preface")
                    return
                if not buffer.startswith(PREFACE):
                    raise H2ConnectionError(PROTOCOL_ERROR, "not the HTTP/2 connection preface")
                del buffer[: len(PREFACE)]
                self.preface_seen = True
            at = 0
            end = len(buffer)
            while end - at >= 9 and self.transport is not None:
                length = int.from_bytes(buffer[at : at + 3], "big")
                if length > MAX_FRAME:
                    raise H2ConnectionError(FRAME_SIZE_ERROR, f"a frame of {length} bytes exceeds {MAX_FRAME}")
                if end - at - 9 < length:
                    break
                kind = buffer[at + 3]
                flags = buffer[at + 4]
                stream_id = int.from_bytes(buffer[at + 5 : at + 9], "big") & 0x7FFFFFFF
                payload = bytes(buffer[at + 9 : at + 9 + length])
                at += 9 + length
                self._frame(kind, flags, stream_id, payload)
            del buffer[:at]
        except H2ConnectionError as exc:
            self._goaway(exc.code, str(exc))

    # --- frames -----------------------------------------------------------------------------

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self.headers_for and kind != CONTINUATION:
            raise H2ConnectionError(PROTOCOL_ERROR, "a header block was interrupted by another frame")
        if kind == DATA:
            self._data(flags, stream_id, payload)
        elif kind == HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == CONTINUATION:
            if stream_id != self.headers_for or not stream_id:
                raise H2ConnectionError(PROTOCOL_ERROR, "CONTINUATION without a header block to continue")
            self._header_fragment(stream_id, flags, payload)
        elif kind == SETTINGS:
            self._settings(flags, stream_id, payload)
        elif kind == PING:
            if stream_id or len(payload) != 8:
                raise H2ConnectionError(PROTOCOL_ERROR if stream_id else FRAME_SIZE_ERROR, "malformed PING")
            if not flags & ACK and self.transport is not None:
                self.transport.write(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == RST_STREAM:
            if not stream_id or len(payload) != 4:
                raise H2ConnectionError(PROTOCOL_ERROR, "malformed RST_STREAM")
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                self.blocked.pop(stream_id, None)
        elif kind == GOAWAY:
            self.draining = True
            self._close_when_done()
        elif kind == PRIORITY:
            if not stream_id or len(payload) != 5:
                raise H2ConnectionError(PROTOCOL_ERROR, "malformed PRIORITY")
        elif kind == PUSH_PROMISE:
            raise H2ConnectionError(PROTOCOL_ERROR, "a client may not push")
        # Unknown frame types are ignored (RFC 9113 4.1).

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise H2ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")
            return
        if len(payload) % 6:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "SETTINGS payload is not a whole number of settings")
        for offset in range(0, len(payload), 6):
            key, value = _setting.unpack_from(payload, offset)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise H2ConnectionError(FLOW_CONTROL_ERROR, "initial window size too large")
                delta = value - self.initial_stream_window
                self.initial_stream_window = value
                for stream in self.streams.values():
                    stream.window += delta
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not MAX_FRAME <= value <= (1 << 24) - 1:
                    raise H2ConnectionError(PROTOCOL_ERROR, f"max frame size {value} is out of range")
                self.peer_max_frame = value
            # The client's HEADER_TABLE_SIZE bounds an encoder table this side does not use.
        if self.transport is not None:
            self.transport.write(frame(SETTINGS, ACK, 0))
        self._send_blocked()

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "malformed WINDOW_UPDATE")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if not stream_id:
            if not increment:
                raise H2ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise H2ConnectionError(FLOW_CONTROL_ERROR, "connection window over 2^31-1")
            self._send_blocked()
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            return  # a stream already answered and closed: allowed to arrive late
        if not increment:
            self._reset(stream_id, PROTOCOL_ERROR)
            return
        stream.window += increment
        if stream.window > MAX_WINDOW:
            self._reset(stream_id, FLOW_CONTROL_ERROR)
            return
        if stream.outbox:
            self._send(stream_id, stream)

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id or not stream_id & 1:
            raise H2ConnectionError(PROTOCOL_ERROR, f"HEADERS on stream {stream_id}, which a client may not open")
        start, stop = 0, len(payload)
        if flags & PADDED:
            if not payload:
                raise H2ConnectionError(PROTOCOL_ERROR, "padded HEADERS without a pad length")
            start, stop = 1, len(payload) - payload[0]
        if flags & PRIORITY_FLAG:
            start += 5
        if stop < start:
            raise H2ConnectionError(PROTOCOL_ERROR, "HEADERS padding longer than the frame")
        if stream_id <= self.last_stream and stream_id not in self.streams:
            raise H2ConnectionError(STREAM_CLOSED, f"HEADERS on closed stream {stream_id}")
        self.header_block = bytearray()
        self.header_end_stream = bool(flags & END_STREAM)
        self._header_fragment(stream_id, flags, payload[start:stop])

    def _header_fragment(self, stream_id: int, flags: int, fragment: bytes) -> None:
        self.header_block += fragment
        if len(self.header_block) > MAX_HEADER_BLOCK:
            raise H2ConnectionError(PROTOCOL_ERROR, f"header block over {MAX_HEADER_BLOCK} bytes")
        if not flags & END_HEADERS:
            self.headers_for = stream_id
            return
        self.headers_for = 0
        try:
            fields = self.decoder.decode(bytes(self.header_block))
        except CompressionError as exc:
            raise H2ConnectionError(COMPRESSION_ERROR, str(exc)) from None
        end_stream = self.header_end_stream
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers: only the end of the request matters
            if not end_stream:
                self._reset(stream_id, PROTOCOL_ERROR)
            elif not stream.too_big:
                self._complete(stream_id, stream)
            return
        self.last_stream = stream_id
        if self.draining:
            return  # after GOAWAY: neither answered nor counted (the client retries elsewhere)
        if len(self.streams) >= MAX_CONCURRENT_STREAMS:
            self._reset(stream_id, REFUSED_STREAM)
            return
        stream = Stream(self.initial_stream_window)
        for name, value in fields:
            if name == b":method":
                stream.method = value
            elif name == b":path":
                stream.path = value.split(b"?", 1)[0]
        if not stream.method or not stream.path:
            self._reset(stream_id, PROTOCOL_ERROR)
            return
        self.streams[stream_id] = stream
        if end_stream:
            self._complete(stream_id, stream)

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            raise H2ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        self.received += len(payload)
        if self.received > WINDOW:
            raise H2ConnectionError(FLOW_CONTROL_ERROR, "the client sent more than the connection window")
        if self.received >= WINDOW // 2 and self.transport is not None:
            self.transport.write(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.received)))
            self.received = 0
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.last_stream:
                raise H2ConnectionError(PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            return  # reset or refused meanwhile: counted against the window above, then dropped
        start, stop = 0, len(payload)
        if flags & PADDED:
            if not payload or payload[0] >= len(payload):
                raise H2ConnectionError(PROTOCOL_ERROR, "DATA padding longer than the frame")
            start, stop = 1, len(payload) - payload[0]
        if not stream.too_big:
            stream.size += stop - start
            if stream.size > self.server.max_body:
                stream.too_big = True
                stream.body = []
                limit = self.server.max_body
                self._answer(stream_id, (413, error_body(f"request body is larger than {limit} bytes")))
                if stream_id not in self.streams and self.transport is not None:
                    # Answered in full: stop the upload (a complete early response, 8.1).
                    self.transport.write(frame(RST_STREAM, 0, stream_id, struct.pack(">I", NO_ERROR)))
                return
            stream.body.append(payload[start:stop])
            # The stream's receive window is replenished as it is used, so a body up to max_body
            # (above WINDOW for preempt calls) never stalls.
            if stream.size >= WINDOW // 2 and self.transport is not None:
                self.transport.write(frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", len(payload))))
        if flags & END_STREAM and not stream.too_big:
            self._complete(stream_id, stream)

    # --- requests and answers ---------------------------------------------------------------

    def _complete(self, stream_id: int, stream: Stream) -> None:
        body = b"".join(stream.body)
        stream.body = []
        answer = self.server.dispatch(stream.method, stream.path, body)
        if isinstance(answer, tuple):
            self._answer(stream_id, answer)
            return
        self.in_flight += 1
        task: asyncio.Future[Answer] = asyncio.ensure_future(answer)
        task.add_done_callback(functools.partial(self._finished, stream_id, stream.path))
        self.server.tasks.add(task)

    def _finished(self, stream_id: int, path: bytes, task: asyncio.Future[Answer]) -> None:
        self.server.tasks.discard(task)
        self.in_flight -= 1
        self._answer(stream_id, self.server.settle(path, task))
        self._close_when_done()
