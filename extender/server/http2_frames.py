"""HTTP/2's wire (RFC 9113): frame types, flags, error codes, settings, this side's limits, and
one stream's state, shared by the receiving (``http2``) and sending (``http2_output``) halves."""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x9
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS = 0x1, 0x3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6

MAX_CONCURRENT_STREAMS = 1000
"""Binds in flight at once (the scheduler binds in parallel goroutines, hundreds in a burst)."""
WINDOW = 1 << 24
"""Receive window per stream and for the connection: a 5,000-node filter call (~150 KiB) arrives
without waiting for a WINDOW_UPDATE round trip."""
MAX_FRAME = 16384
"""The protocol's default frame size limit, which this side keeps."""
MAX_HEADER_BLOCK = 64 * 1024
DEFAULT_WINDOW = 65535
MAX_WINDOW = (1 << 31) - 1

def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream_id) + payload


class H2ConnectionError(Exception):
    """Ends the connection with a GOAWAY carrying ``code`` (RFC 9113 5.4.1)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Stream:
    """One open stream: the request as it arrives, then the answer as the windows let it out."""

    __slots__ = ("body", "method", "outbox", "path", "size", "too_big", "window")

    def __init__(self, window: int) -> None:
        self.method = b""
        self.path = b""
        self.body: list[bytes] = []
        self.size = 0
        self.too_big = False
        self.window = window
        """What this side may still send on the stream (the client's flow-control window)."""
        self.outbox = b""
        """Answer bytes waiting for window."""
