"""What an extender route returns, shared by the HTTP/1.1 and HTTP/2 framings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

Answer = tuple[int, bytes]
"""HTTP status and a JSON body."""
Handler = Callable[[bytes], Answer | Awaitable[Answer]]
"""A route: the request body in, an answer out (directly, or awaited when it does I/O)."""

_encode = msgspec.json.encode


def error_body(message: str) -> bytes:
    return _encode({"error": message})
