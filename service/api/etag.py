"""Answers that are a snapshot of the store (lists of coins, current values): sent with an ETag,
and 304 when the client's ``If-None-Match`` still matches."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from litestar import Request, Response

from service.api.semantics import etag_matches

_encoder = msgspec.json.Encoder()


def snapshot_response(request: Request, value: Any) -> Response[bytes]:
    """``value`` as JSON with an ETag of its bytes (``Cache-Control: no-cache``: revalidate each time)."""
    body = _encoder.encode(value)
    etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(request.headers.get("if-none-match", ""), etag):
        return Response(content=b"", status_code=304, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)
