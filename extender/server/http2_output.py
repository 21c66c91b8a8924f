"""The sending half of an HTTP/2 connection: answers sent under the client's flow-control windows.

An answer goes out as HEADERS and as many DATA frames as the connection's and the stream's
windows allow; the rest waits in the stream's outbox for the client's WINDOW_UPDATEs. Also here:
resets, GOAWAY (on a protocol error, or to drain the connection) and closing an idle connection.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time

from extender.server.answers import Answer
from extender.server.header_compression import response_headers
from extender.server.http2_frames import (
    DATA,
    DEFAULT_WINDOW,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    MAX_FRAME,
    NO_ERROR,
    RST_STREAM,
    Stream,
    frame,
)

log = logging.getLogger("spillover.http2")


class H2Output:
    """What one connection sends. ``H2Connection`` (the receiving half) extends it: both halves
    work on the same open streams, and a method call is all the hot path pays to cross over."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        """Open streams: receiving, waiting for their handler, or sending."""
        self.last_stream = 0
        self.send_window = DEFAULT_WINDOW
        self.peer_max_frame = MAX_FRAME
        self.blocked: dict[int, Stream] = {}
        self.in_flight = 0
        self.draining = False
        self.last_active = time.monotonic()

    def _answer(self, stream_id: int, answer: Answer) -> None:
        stream = self.streams.get(stream_id)
        transport = self.transport
        if stream is None or transport is None:
            return  # reset by the client meanwhile
        status, body = answer
        block = response_headers(status, len(body))
        if not body:
            transport.write(frame(HEADERS, END_HEADERS | END_STREAM, stream_id, block))
            self.streams.pop(stream_id, None)
            return
        stream.outbox = body
        self._send(stream_id, stream, frame(HEADERS, END_HEADERS, stream_id, block))
        self.last_active = time.monotonic()

    def _send(self, stream_id: int, stream: Stream, head: bytes = b"") -> None:
        """As much of the stream's answer as the windows allow, after ``head`` (its HEADERS)."""
        transport = self.transport
        if transport is None:
            return
        body = stream.outbox
        frames = [head]
        while body:
            room = min(self.send_window, stream.window, self.peer_max_frame)
            if room <= 0:
                break
            chunk, body = body[:room], body[room:]
            self.send_window -= len(chunk)
            stream.window -= len(chunk)
            frames.append(frame(DATA, 0 if body else END_STREAM, stream_id, chunk))
        transport.write(b"".join(frames))
        stream.outbox = body
        if body:
            self.blocked[stream_id] = stream
        else:
            self.blocked.pop(stream_id, None)
            self.streams.pop(stream_id, None)

    def _send_blocked(self) -> None:
        for stream_id, stream in list(self.blocked.items()):
            self._send(stream_id, stream)
        self._close_when_done()

    def _reset(self, stream_id: int, code: int) -> None:
        self.streams.pop(stream_id, None)
        self.blocked.pop(stream_id, None)
        if self.transport is not None:
            self.transport.write(frame(RST_STREAM, 0, stream_id, struct.pack(">I", code)))

    def _goaway(self, code: int, message: str) -> None:
        if code != NO_ERROR:
            log.warning("closing an HTTP/2 connection to the extender: %s", message)
        if self.transport is not None:
            payload = struct.pack(">II", self.last_stream, code) + message.encode()[:200]
            self.transport.write(frame(GOAWAY, 0, 0, payload))
            self.transport.close()

    def _close_when_done(self) -> None:
        if self.draining and not self.in_flight and not self.blocked and self.transport is not None:
            self.transport.close()

    # --- the server's housekeeping ----------------------------------------------------------

    def drain(self) -> None:
        """GOAWAY: the client opens a new connection for new calls; in-flight ones are answered."""
        if self.transport is None or self.draining:
            return
        self.draining = True
        self.transport.write(frame(GOAWAY, 0, 0, struct.pack(">II", self.last_stream, NO_ERROR)))
        self._close_when_done()

    def close_if_idle(self, now: float, idle_timeout: float) -> None:
        if not self.in_flight and not self.streams and now - self.last_active > idle_timeout:
            self.drain()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()
