"""The extender's HPACK decoder agrees with the ``hpack`` package's encoder on any header list,
keeps the dynamic table in step across blocks, and refuses blocks that do not decode."""

from __future__ import annotations

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.server.header_compression import CompressionError, Decoder, response_headers

names = st.one_of(
    st.sampled_from([b":method", b":path", b":authority", b"content-type", b"content-length", b"user-agent"]),
    st.binary(min_size=1, max_size=20).map(lambda b: bytes(c % 26 + 97 for c in b)),
)
values = st.binary(max_size=60)
header_lists = st.lists(st.tuples(names, values), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    blocks=st.lists(st.tuples(header_lists, st.booleans(), st.sampled_from([4096, 4096, 256, 0, 1024])), max_size=8)
)
def test_any_sequence_of_blocks_decodes_as_the_reference_decoder_does(
    blocks: list[tuple[list[tuple[bytes, bytes]], bool, int]],
) -> None:
    encoder, reference, ours = hpack.Encoder(), hpack.Decoder(), Decoder()
    for headers, huffman, table_size in blocks:
        encoder.header_table_size = table_size  # emits a dynamic table size update
        block = encoder.encode(headers, huffman=huffman)
        assert ours.decode(block) == [tuple(h) for h in reference.decode(block, raw=True)] == headers


def test_sensitive_fields_are_decoded_and_never_enter_the_table() -> None:
    encoder, ours = hpack.Encoder(), Decoder()
    block = encoder.encode([hpack.NeverIndexedHeaderTuple(b"authorization", b"secret")])
    assert ours.decode(block) == [(b"authorization", b"secret")]
    assert not ours.dynamic


@pytest.mark.parametrize(
    "block, message",
    [
        (b"\x80", "index 0"),
        (b"\xbf\x20", "not in the table"),  # index 62 + 32: beyond an empty dynamic table
        (b"\x40\x05abc", "past the header block"),
        (b"\x82\x3f\xe1\x1f", "size update after a header field"),
        (b"\x3f\xe1\xff\x03", "exceeds the advertised"),  # size update to 65,536
        (b"\x00\x81\xff\x00", "Huffman"),
    ],
)
def test_blocks_that_do_not_decode_are_refused_with_the_reason(block: bytes, message: str) -> None:
    with pytest.raises(CompressionError, match=message):
        Decoder().decode(block)


@pytest.mark.parametrize("status", [200, 400, 404, 405, 413, 500])
def test_answers_encode_status_type_and_length_for_any_decoder(status: int) -> None:
    decoded = hpack.Decoder().decode(response_headers(status, 1234), raw=True)
    expected = [(b":status", b"%d" % status), (b"content-type", b"application/json"), (b"content-length", b"1234")]
    if status == 405:
        expected.append((b"allow", b"POST"))
    assert [tuple(h) for h in decoded] == expected
