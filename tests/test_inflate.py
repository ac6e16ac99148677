"""Bounded Content-Encoding decoding (bot.ingest.inflate): right bytes out, bombs never inflated whole."""
from __future__ import annotations

import gzip
import zlib

import pytest

from bot.ingest.inflate import PIECE, EncodingError, Inflater

BODY = ("<rss><channel><title>Flash</title>" + "<item><title>é</title></item>" * 2000 + "</channel></rss>").encode()


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def decode(header: str | None, wire: bytes, chunk: int = 997) -> bytes:
    inf = Inflater(header)
    out = [p for i in range(0, len(wire), chunk) for p in inf.feed(wire[i:i + chunk])]
    out += list(inf.feed(b""))
    assert all(len(p) <= PIECE for p in out)
    return b"".join(out)


@pytest.mark.parametrize("header,wire", [
    (None, BODY),
    ("identity", BODY),
    ("gzip", gzip.compress(BODY)),
    ("x-gzip", gzip.compress(BODY)),
    ("GZIP", gzip.compress(BODY)),
    ("deflate", zlib.compress(BODY)),
    ("deflate", raw_deflate(BODY)),  # what many servers really send under "deflate"
    ("gzip, gzip", gzip.compress(gzip.compress(BODY))),
    ("deflate, gzip", gzip.compress(zlib.compress(BODY))),
])
def test_decodes_every_supported_encoding(header, wire):
    assert decode(header, wire) == BODY


@pytest.mark.parametrize("header,message", [
    ("br", "unsupported Content-Encoding 'br'"),
    ("zstd", "unsupported Content-Encoding 'zstd'"),
    ("gzip, gzip, gzip", "refused: 3 stacked content encodings"),
])
def test_refuses_what_it_cannot_bound(header, message):
    with pytest.raises(EncodingError, match=message):
        Inflater(header)


def test_corrupt_body_is_a_clear_error():
    with pytest.raises(EncodingError, match="cannot decode the response body: corrupt gzip"):
        decode("gzip", b"this is not gzip at all" * 10)


def test_stacked_bomb_yields_bounded_pieces_lazily():
    inner = gzip.compress(b"\0" * (256 * 1024 * 1024), 9)  # 256 MB of zeros
    wire = gzip.compress(inner, 9)
    inf = Inflater("gzip, gzip")
    seen = 0
    for piece in inf.feed(wire):  # a consumer that stops at a 1 MB cap never sees more than that
        assert len(piece) <= PIECE
        seen += len(piece)
        if seen > 1024 * 1024:
            break
    assert 1024 * 1024 < seen <= 1024 * 1024 + PIECE
