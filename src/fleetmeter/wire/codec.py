"""Batch bodies on the wire: JSON, zstd- (or gzip-) compressed, decompressed with a hard size cap.

Both ends use this module so that the compression format and the caps cannot drift apart.
"""

from __future__ import annotations

import gzip
import io
import zlib

import zstandard

from fleetmeter.wire.model import Batch

MAX_COMPRESSED_BYTES = 100 * 1024
"""DESIGN.md: batches are at most 100 KB compressed."""

MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024
"""A 100 KB zstd body that expands past this is a compression bomb, not a batch."""

ENCODINGS = ("zstd", "gzip", "identity")


class CodecError(ValueError):
    """The body cannot be decoded: bad compression, too large, or not a valid batch."""


def compress(data: bytes, encoding: str = "zstd") -> bytes:
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=10).compress(data)
    if encoding == "gzip":
        return gzip.compress(data, mtime=0)
    if encoding == "identity":
        return data
    raise CodecError(f"unsupported content encoding {encoding!r}")


def decompress(body: bytes, encoding: str, *, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompress ``body``, refusing to produce more than ``limit`` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        if len(body) > limit:
            raise CodecError(f"body larger than {limit} bytes")
        return body
    if encoding == "zstd":
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body))
            out = reader.read(limit + 1)
        except zstandard.ZstdError as exc:
            raise CodecError(f"invalid zstd data: {exc}") from exc
    elif encoding == "gzip":
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = d.decompress(body, limit + 1)
            if not d.eof and len(out) <= limit:
                raise CodecError("truncated gzip data")
        except zlib.error as exc:
            raise CodecError(f"invalid gzip data: {exc}") from exc
    else:
        raise CodecError(f"unsupported content encoding {encoding!r}; use one of {ENCODINGS}")
    if len(out) > limit:
        raise CodecError(f"decompressed body exceeds {limit} bytes")
    return out


def encode_batch(batch: Batch, encoding: str = "zstd") -> bytes:
    return compress(batch.model_dump_json(exclude_none=True).encode(), encoding)


def decode_batch(body: bytes, encoding: str, *, limit: int = MAX_DECOMPRESSED_BYTES) -> Batch:
    raw = decompress(body, encoding, limit=limit)
    try:
        return Batch.model_validate_json(raw)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise CodecError(f"invalid batch: {exc}") from exc
