"""zstd compression for the stored forms (row chunks, packed frames), safe from any thread.

zstd contexts must not be shared between threads, and encodings run in several: each
thread gets its own pair, made on first use.
"""

from __future__ import annotations

import threading

import zstandard

LEVEL = 3

_contexts = threading.local()


def compress(data: bytes) -> bytes:
    if not hasattr(_contexts, "compressor"):
        _contexts.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return _contexts.compressor.compress(data)  # type: ignore[no-any-return]


def decompress(data: bytes) -> bytes:
    if not hasattr(_contexts, "decompressor"):
        _contexts.decompressor = zstandard.ZstdDecompressor()
    return _contexts.decompressor.decompress(data)  # type: ignore[no-any-return]
