"""What the store keeps of a frame it does not keep whole: enough to list it and to build it again.

Frames are deterministic functions of their inputs and model version, so history keeps a
record per frame, not the frame: its summary, what it was built with (price rows, the
venues an ``all`` market summed) and a digest of its stored form, which a rebuild must match.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from service.wire.schemas import FrameSummary


class FrameRecord(FrameSummary, kw_only=True, frozen=True):
    """A frame's summary (its identity and times, as listed) and what a rebuild needs."""

    rows: int  # price rows it was built with
    leverage: str = "all"
    sources: dict[str, dict[str, Any]] | None = None  # "all" markets: what each venue covered
    margin_table: dict[str, Any] | None = None  # the tiers it placed levels by, where its model takes the market's
    digest: str  # of the stored form (service.wire.packed), hex

    def summary(self) -> FrameSummary:
        """The summary alone (encoded, a record would carry its other fields)."""
        return FrameSummary(**{name: getattr(self, name) for name in FrameSummary.__struct_fields__})


def digest(packed: bytes) -> str:
    return hashlib.blake2b(packed, digest_size=12).hexdigest()


encode_record = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(FrameRecord).decode
