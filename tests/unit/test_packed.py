"""The stored form of a frame gives back every encoding byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from engine.build import build_frames
from engine.ranges import DAY_MS
from service.wire.codec import encode_event, encode_frame
from service.wire.packed import pack_frame, unpack_frame
from tests.unit.test_rollup import random_walk

END = 1_780_012_800_000 - 1_780_012_800_000 % DAY_MS + 17 * 60_000


@pytest.fixture(scope="module")
def frames():
    series = random_walk(8.0, END, seed=5)
    built = build_frames(series, models=("model1", "model2", "model3"), ranges=("12h", "24h", "7d", "30d"), exchange="all", symbol="BTC", generated_at_ms=END + 3, rows=150,
                         sources={"binance": {"bars": 5, "volume_usd": 1.5}, "okx": {"bars": 4, "volume_usd": 2.5}})
    built += build_frames(series, models=("model2",), ranges=("24h",), exchange="okx", symbol="BTCUSDT", generated_at_ms=END, rows=150, leverage="high")
    return built


def test_every_encoding_of_an_unpacked_frame_is_the_original_bytes(frames) -> None:
    assert len(frames) == 13
    for frame in frames:
        back = unpack_frame(pack_frame(frame))
        assert encode_frame(back) == encode_frame(frame)
        assert encode_event(back) == encode_event(frame)
        assert back.frame_id == frame.frame_id
        np.testing.assert_array_equal(back.long_usd, frame.long_usd)


def test_the_stored_form_is_a_fraction_of_the_encodings_it_replaces(frames) -> None:
    for frame in frames:
        packed = len(pack_frame(frame))
        stored_before = sum(len(body) for body in encode_frame(frame).values())  # every form, each compressed
        assert packed < 0.3 * stored_before, (frame.range, packed, stored_before)


def test_coinglass_json_equals_the_envelope_of_the_cell_lists(frames) -> None:
    import msgspec

    from service.wire.codec import coinglass_json, to_coinglass
    from service.wire.schemas import Envelope

    for frame in frames:
        slow = msgspec.json.encode(Envelope(code="0", msg="success", data=to_coinglass(frame)))
        assert len(to_coinglass(frame).liquidation_leverage_data) > 100
        assert coinglass_json(frame) == slow
