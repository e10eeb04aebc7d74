"""The /levels answer: the engine's liquidation map by tier, its largest rows and its clusters, as wire Structs."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.book import LargestRow, LiquidationMap, largest_row_per_side
from engine.frame import identity_fields
from engine.types import Float64Array
from service.wire.schemas import ClusterOut, LargestLevelOut, LevelsClustersOut, LevelsOut, LiquidationMapOut, MaxPainOut, TierBookOut


def _whole_usd(values: Float64Array) -> list[int]:
    return np.rint(values).astype(np.int64).tolist()  # type: ignore[no-any-return]


def _largest(row: LargestRow | None) -> LargestLevelOut | None:
    return None if row is None else LargestLevelOut(price=row.price, usd=row.usd, distance=row.distance)


def liquidation_map_out(book: LiquidationMap) -> LiquidationMapOut:
    """A map with numbers rounded to whole USD and 8 decimals of price."""
    longs, shorts = largest_row_per_side(book)
    return LiquidationMapOut(
        **identity_fields(book),
        leverage=book.leverage,
        data_until=book.data_until_ms,
        price=book.price,
        y=np.round(book.y, 8).tolist(),
        tiers=[
            TierBookOut(
                leverage=leverage,
                long=_whole_usd(long_row),
                short=_whole_usd(short_row),
                cumulative_long=_whole_usd(cumulative_long),
                cumulative_short=_whole_usd(cumulative_short),
            )
            for leverage, long_row, short_row, cumulative_long, cumulative_short in zip(
                book.tiers, book.long_usd, book.short_usd, book.cumulative_long_by_tier_usd, book.cumulative_short_by_tier_usd, strict=True
            )
        ],
        cumulative_long=_whole_usd(book.cumulative_long_usd),
        cumulative_short=_whole_usd(book.cumulative_short_usd),
        beyond_long_usd=book.beyond_long_usd,
        beyond_short_usd=book.beyond_short_usd,
        max_pain=MaxPainOut(long=_largest(longs), short=_largest(shorts)),
    )


# What the levels say of themselves, as their map says it.
_LEVELS_FIELDS_OF_MAP = ("exchange", "symbol", "model", "model_version", "range", "leverage", "data_until", "price", "max_pain")


def levels_out(frame_id: str, book: LiquidationMap, bands: list[dict[str, Any]]) -> LevelsOut:
    """The levels of the data of frame ``frame_id``: ``book`` and its clusters (:func:`engine.clusters.find_clusters`)."""
    the_map = liquidation_map_out(book)
    return LevelsOut(
        frame_id=frame_id,
        **{name: getattr(the_map, name) for name in _LEVELS_FIELDS_OF_MAP},
        clusters=LevelsClustersOut(
            above=[ClusterOut(**band) for band in bands if band["side"] == "short"],
            below=[ClusterOut(**band) for band in bands if band["side"] == "long"],
        ),
        map=the_map,
    )
