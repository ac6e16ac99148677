"""Bounded streaming Content-Encoding decoding: a compression bomb is cut at the size cap, never inflated."""
from __future__ import annotations

import zlib
from collections.abc import Iterator

PIECE = 64 * 1024  # most bytes any decoder stage produces per step
MAX_CODINGS = 2  # "gzip, gzip" is legal but rare; deeper stacks only serve bombs
ACCEPT_ENCODING = "gzip, deflate"  # what we can decode with a bound; never br/zstd


class EncodingError(ValueError):
    """The body's Content-Encoding cannot be decoded safely."""


class _Stage:
    """One zlib decoder producing its output in PIECE-sized steps (input kept in unconsumed_tail)."""

    def __init__(self, coding: str):
        self.coding = coding
        gz = coding in ("gzip", "x-gzip")
        self.d = zlib.decompressobj(zlib.MAX_WBITS | 16 if gz else zlib.MAX_WBITS)
        self.raw_fallback = not gz  # servers often send raw deflate under "deflate"
        self.started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decode data (b"" at the end), yielding bounded pieces."""
        while True:
            if self.d.eof:
                return  # trailing garbage after the stream is ignored, as browsers do
            try:
                out = self.d.decompress(data, PIECE)
            except zlib.error as exc:
                if self.raw_fallback and not self.started:
                    self.raw_fallback, self.d = False, zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise EncodingError(f"cannot decode the response body: corrupt {self.coding} data ({exc})") from None
            self.started = True
            data = self.d.unconsumed_tail
            if out:
                yield out
            elif not data:
                return


class Inflater:
    """Decode a response body chunk by chunk through its Content-Encoding stack."""

    def __init__(self, content_encoding: str | None):
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > MAX_CODINGS:
            raise EncodingError(f"refused: {len(codings)} stacked content encodings ({content_encoding})")
        for c in codings:
            if c not in ("gzip", "x-gzip", "deflate"):
                raise EncodingError(f"unsupported Content-Encoding {c!r}")
        # Encodings are listed in the order they were applied: decode in reverse.
        self.stages = [_Stage(c) for c in reversed(codings)]

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Decoded pieces of one raw chunk (b"" flushes at the end of the body)."""
        return self._through(0, chunk)

    def _through(self, i: int, data: bytes) -> Iterator[bytes]:
        if i == len(self.stages):
            if data:
                yield data
            return
        for piece in self.stages[i].feed(data):
            yield from self._through(i + 1, piece)
        if not data:  # end of body: let the next stages finish too
            yield from self._through(i + 1, b"")
