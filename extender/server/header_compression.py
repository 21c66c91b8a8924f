"""HPACK (RFC 7541) header block decoding for the extender's HTTP/2, and the few encodings it sends.

Why not the ``hpack`` package's Decoder: it spent about 65 us per request header block (a debug
log call per field, a tuple object per field), more than the whole HTTP/1.1 request costs on
httptools. The decoding rules are few; only Huffman-coded strings need a table, and that comes
from ``hpack`` (``decode_huffman``, RFC 7541 Appendix B). Every block must be decoded, even one
whose request is refused, or the dynamic table would drift from the client's encoder.

Answers are encoded without the dynamic table (indexed static fields and literals "without
indexing"), so the client's decoder state never depends on what this side remembers.
"""

from __future__ import annotations

from collections import deque

from hpack.exceptions import HPACKDecodingError
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

STATIC: tuple[tuple[bytes, bytes], ...] = HeaderTable.STATIC_TABLE
"""RFC 7541 Appendix A: 61 entries, index 1 first."""
DEFAULT_TABLE_SIZE = 4096
MAX_STRING = 64 * 1024


class CompressionError(ValueError):
    """A header block that does not decode: the connection must end with COMPRESSION_ERROR."""


def _integer(block: bytes, at: int, prefix_bits: int) -> tuple[int, int]:
    """RFC 7541 5.1: an integer with an N-bit prefix; returns (value, next offset)."""
    limit = (1 << prefix_bits) - 1
    value = block[at] & limit
    at += 1
    if value < limit:
        return value, at
    shift = 0
    while True:
        if at >= len(block) or shift > 28:
            raise CompressionError("integer runs past the header block or is too large")
        byte = block[at]
        at += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


class Decoder:
    """One connection's decoder: its dynamic table lives as long as the connection."""

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self.max_allowed = max_table_size
        """What this side advertised (SETTINGS_HEADER_TABLE_SIZE): the encoder may not exceed it."""
        self.max_size = max_table_size
        self.size = 0
        self.dynamic: deque[tuple[bytes, bytes]] = deque()

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= len(STATIC):
            return STATIC[index - 1]
        dynamic_index = index - len(STATIC) - 1
        if 0 <= dynamic_index < len(self.dynamic):
            return self.dynamic[dynamic_index]
        raise CompressionError(f"header index {index} is not in the table")

    def _add(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 32
        if size > self.max_size:
            self.dynamic.clear()
            self.size = 0
            return
        self.size += size
        self.dynamic.appendleft((name, value))
        self._evict()

    def _evict(self) -> None:
        while self.size > self.max_size and self.dynamic:
            name, value = self.dynamic.pop()
            self.size -= len(name) + len(value) + 32

    def _string(self, block: bytes, at: int) -> tuple[bytes, int]:
        if at >= len(block):
            raise CompressionError("string runs past the header block")
        huffman = block[at] & 0x80
        length, at = _integer(block, at, 7)
        end = at + length
        if end > len(block) or length > MAX_STRING:
            raise CompressionError("string runs past the header block or is too long")
        raw = block[at:end]
        if huffman:
            try:
                raw = decode_huffman(raw)
            except HPACKDecodingError as exc:
                raise CompressionError(f"invalid Huffman-coded string: {exc}") from exc
        return raw, end

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The header list of one complete block, in order (names and values as bytes)."""
        fields: list[tuple[bytes, bytes]] = []
        at = 0
        end = len(block)
        seen_field = False
        while at < end:
            byte = block[at]
            if byte & 0x80:  # indexed field (6.1)
                index, at = _integer(block, at, 7)
                if index == 0:
                    raise CompressionError("indexed header field with index 0")
                fields.append(self._entry(index))
                seen_field = True
            elif byte & 0x40:  # literal with incremental indexing (6.2.1)
                name, value, at = self._literal(block, at, 6)
                fields.append((name, value))
                self._add(name, value)
                seen_field = True
            elif byte & 0x20:  # dynamic table size update (6.3): only before the first field
                if seen_field:
                    raise CompressionError("dynamic table size update after a header field")
                size, at = _integer(block, at, 5)
                if size > self.max_allowed:
                    raise CompressionError(f"table size {size} exceeds the advertised {self.max_allowed}")
                self.max_size = size
                self._evict()
            else:  # literal without indexing (0000) or never indexed (0001) (6.2.2, 6.2.3)
                name, value, at = self._literal(block, at, 4)
                fields.append((name, value))
                seen_field = True
        return fields

    def _literal(self, block: bytes, at: int, prefix_bits: int) -> tuple[bytes, bytes, int]:
        """A literal field: its name by index (or spelled out when the index is 0), then its value."""
        index, at = _integer(block, at, prefix_bits)
        if index:
            name = self._entry(index)[0]
        else:
            name, at = self._string(block, at)
        value, at = self._string(block, at)
        return name, value, at


def _literal(name_index: int, value: bytes) -> bytes:
    """Literal header field without indexing, indexed name (6.2.2); short values only."""
    assert name_index < 15 + 128 and len(value) < 127
    head = bytes([name_index]) if name_index < 15 else bytes([0x0F, name_index - 15])
    return head + bytes([len(value)]) + value


_STATUS_INDEX = {b"200": 8, b"204": 9, b"206": 10, b"304": 11, b"400": 12, b"404": 13, b"500": 14}
_CONTENT_TYPE_JSON = _literal(31, b"application/json")
_ALLOW_POST = _literal(22, b"POST")


def response_headers(status: int, length: int) -> bytes:
    """The header block of a JSON answer: :status, content-type, content-length (and allow on 405)."""
    code = b"%d" % status
    index = _STATUS_INDEX.get(code)
    block = bytes([0x80 | index]) if index else _literal(8, code)
    block += _CONTENT_TYPE_JSON + _literal(28, b"%d" % length)
    if status == 405:
        block += _ALLOW_POST
    return block
