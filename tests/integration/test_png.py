"""PNG heatmaps: size, content, colour where the frame's largest cell is, caching, validation."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from litestar.testing import AsyncTestClient
from PIL import Image

from engine.frame import Frame, FrameCandles, FrameStats
from service.wire.codec import to_native
from service.collect.round import Collection
from service.wire.png import VIRIDIS_ANCHORS, render_png
from service.wire.schemas import FrameOut
from tests.integration.conftest import NOW_MS

pytestmark = pytest.mark.integration

MINUTE = 60_000
COLUMN = 5 * MINUTE
MARKET = "/v1/heatmaps/synthetic/BTCUSDT"
YELLOW = np.array([int(VIRIDIS_ANCHORS[-1][i : i + 2], 16) for i in (1, 3, 5)])


def _image(body: bytes) -> tuple[np.ndarray, dict]:
    image = Image.open(io.BytesIO(body))
    return np.asarray(image.convert("RGB")).astype(int), json.loads(image.text["liqmap"])


def _is_yellow(pixels: np.ndarray) -> np.ndarray:
    """The top of viridis (the largest cells): red and green high, blue low."""
    return (pixels[..., 0] > 225) & (pixels[..., 1] > 205) & (pixels[..., 2] < 80)


def _cell_block(meta: dict, column: int, row: int) -> tuple[slice, slice]:
    """Image rows and columns showing one cell (plot column px shows frame column floor(px * columns / width))."""
    plot = meta["plot"]
    width, height, columns, rows = plot["width"], plot["height"], meta["columns"], meta["rows"]
    x0, x1 = -(-column * width // columns), -(-(column + 1) * width // columns)
    bottom0, bottom1 = -(-row * height // rows), -(-(row + 1) * height // rows)  # counted from the plot's bottom
    top = plot["top"] + height
    return slice(top - bottom1, top - bottom0), slice(plot["left"] + x0, plot["left"] + x1)


def _check_heatmap(body: bytes, frame: dict, size: tuple[int, int]) -> None:
    pixels, meta = _image(body)
    assert pixels.shape == (size[1], size[0], 3)
    total = np.array(frame["long"], dtype=float) + np.array(frame["short"], dtype=float)
    assert (meta["columns"], meta["rows"]) == total.shape
    assert meta["scale_usd"] == pytest.approx(total.max())  # the legend's top is the largest cell, in USD
    plot = meta["plot"]
    area = pixels[plot["top"] : plot["top"] + plot["height"], plot["left"] : plot["left"] + plot["width"]]
    assert len(np.unique(area.reshape(-1, 3), axis=0)) > 20, "the heatmap should not be uniform"

    column, row = np.unravel_index(np.argmax(total), total.shape)
    block = pixels[_cell_block(meta, int(column), int(row))]
    assert block.size and _is_yellow(block).mean() > 0.5, f"the largest cell ({column}, {row}) should be yellow: {block.reshape(-1, 3)[:4]}"

    # And every yellow pixel of the plot shows a cell near the largest (its cell or a neighbour's).
    ys, xs = np.nonzero(_is_yellow(area))
    assert len(ys) > 0
    columns = xs * total.shape[0] // plot["width"]
    rows = (plot["height"] - 1 - ys) * total.shape[1] // plot["height"]
    padded = np.pad(total, 1)
    neighbourhood = np.max([padded[columns + 1 + dc, rows + 1 + dr] for dc in (-1, 0, 1) for dr in (-1, 0, 1)], axis=0)
    assert (neighbourhood >= 0.8 * total.max()).all()


async def test_latest_png_draws_the_frame_with_yellow_at_its_largest_cell(client: AsyncTestClient) -> None:
    frame = (await client.get(f"{MARKET}/latest", params={"range": "24h"})).json()
    response = await client.get(f"{MARKET}/latest.png", params={"range": "24h", "width": 900, "height": 560})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-frame-id"] == frame["id"]
    _check_heatmap(response.content, frame, (900, 560))

    default = await client.get(f"{MARKET}/latest.png", params={"range": "24h"})
    assert Image.open(io.BytesIO(default.content)).size == (1200, 700)


async def test_png_is_cached_per_frame_and_size_and_follows_newer_frames(client: AsyncTestClient, pipeline: Collection) -> None:
    params = {"range": "12h", "width": 640, "height": 400}
    first = await client.get(f"{MARKET}/latest.png", params=params)
    again = await client.get(f"{MARKET}/latest.png", params=params)
    assert (first.headers["x-render-cache"], again.headers["x-render-cache"]) == ("miss", "hit")
    assert again.content == first.content
    other_size = await client.get(f"{MARKET}/latest.png", params={**params, "width": 641})
    assert other_size.headers["x-render-cache"] == "miss"
    assert Image.open(io.BytesIO(other_size.content)).size == (641, 400)

    etag = first.headers["etag"]
    unchanged = await client.get(f"{MARKET}/latest.png", params=params, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    await pipeline.collect_once(NOW_MS + COLUMN)
    newer = await client.get(f"{MARKET}/latest.png", params=params, headers={"If-None-Match": etag})
    assert newer.status_code == 200 and newer.headers["etag"] != etag
    assert newer.headers["x-frame-id"] != first.headers["x-frame-id"]
    assert newer.headers["x-frame-id"] == (await client.get(f"{MARKET}/latest", params={"range": "12h"})).json()["id"]


async def test_png_of_a_frame_by_id(client: AsyncTestClient, pipeline: Collection) -> None:
    await pipeline.collect_once(NOW_MS + COLUMN)
    items = (await client.get(f"{MARKET}/frames", params={"range": "24h"})).json()["items"]
    older = items[-1]["id"]
    frame = (await client.get(f"{MARKET}/frames/{older}")).json()
    response = await client.get(f"{MARKET}/frames/{older}/heatmap.png", params={"width": 800, "height": 500})
    assert response.status_code == 200, response.text
    assert response.headers["x-frame-id"] == older
    assert "immutable" in response.headers["cache-control"]
    _check_heatmap(response.content, frame, (800, 500))
    cached = await client.get(f"{MARKET}/frames/{older}/heatmap.png", params={"width": 800, "height": 500})
    assert cached.headers["x-render-cache"] == "hit" and cached.content == response.content

    missing = await client.get(f"{MARKET}/frames/model1-nothing-24h-1/heatmap.png")
    assert missing.status_code == 404 and "no frame" in missing.json()["error"]["message"]
    unknown_market = await client.get(f"/v1/heatmaps/synthetic/DOGEUSDT/frames/{older}/heatmap.png")
    assert unknown_market.status_code == 404 and "DOGEUSDT" in unknown_market.json()["error"]["message"]


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"width": 100}, 400, "width must be 320..4000; got 100"),
        ({"height": 99999}, 400, "height must be 240..3000; got 99999"),
        ({"width": "wide"}, 400, "width"),
        ({"leverage": "huge"}, 400, "allowed: all, low, mid, high"),
        ({"leverage": "7"}, 400, "allowed: all, low, mid, high"),
        ({"range": "2h"}, 400, "range must be one of"),
        ({"model": "model9"}, 400, "model must be one of"),
        ({"range": "7d"}, 404, "not computed by this deployment"),
    ],
)
async def test_png_parameters_are_checked(client: AsyncTestClient, params: dict, status: int, message: str) -> None:
    response = await client.get(f"{MARKET}/latest.png", params=params)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


async def test_png_unknown_market_and_leverage_filters(client: AsyncTestClient) -> None:
    unknown = await client.get("/v1/heatmaps/synthetic/DOGEUSDT/latest.png")
    assert unknown.status_code == 404 and "DOGEUSDT" in unknown.json()["error"]["message"]
    everything = await client.get(f"{MARKET}/latest.png", params={"leverage": "all", "width": 320, "height": 240})
    assert everything.status_code == 200 and Image.open(io.BytesIO(everything.content)).size == (320, 240)
    high = await client.get(f"{MARKET}/latest.png", params={"leverage": "high", "width": 320, "height": 240})
    assert high.status_code == 200
    assert high.headers["x-frame-id"] == everything.headers["x-frame-id"] + "-high"
    assert high.content != everything.content


def _frame_with_one_hot_cell(columns: int, rows: int, hot: tuple[int, int]) -> FrameOut:
    """A frame as the API sends it (through the codec), $1,000 short in every cell and one $5M long."""
    long = np.zeros((columns, rows), dtype=np.float32)
    long[hot] = 5_000_000
    x = NOW_MS + np.arange(columns, dtype=np.int64) * COLUMN
    no_bars = np.full(columns, np.nan)
    frame = Frame(
        exchange="synthetic",
        symbol="BTCUSDT",
        model="model1",
        model_version="1.0.0",
        params_hash="0" * 64,
        range="24h",
        generated_at_ms=NOW_MS,
        data_until_ms=int(x[-1]) + COLUMN,
        coverage_start_ms=int(x[0]),
        x_ms=x,
        y=50_000.0 + 10.0 * np.arange(rows),
        long_usd=long,
        short_usd=np.full((columns, rows), 1_000, dtype=np.float32),
        candles=FrameCandles(x, no_bars, no_bars, no_bars, no_bars, no_bars),
        stats=FrameStats(total_long_usd=0.0, total_short_usd=0.0, max_long_usd=0.0, max_short_usd=0.0, max_cell_usd=0.0, percentiles={}),
    )
    return to_native(frame)


def test_a_single_hot_cell_survives_a_picture_smaller_than_the_grid() -> None:
    """Where a pixel covers several cells it shows the largest: a one-cell peak never vanishes."""
    frame = _frame_with_one_hot_cell(columns=800, rows=600, hot=(517, 233))
    pixels, meta = _image(render_png(frame, 400, 300))
    assert meta["plot"]["width"] < 800 and meta["plot"]["height"] < 600
    plot = meta["plot"]
    area = pixels[plot["top"] : plot["top"] + plot["height"], plot["left"] : plot["left"] + plot["width"]]
    ys, xs = np.nonzero(_is_yellow(area))
    assert len(ys) == 1, "one pixel shows the hot cell"
    # The pixel showing a cell is the last one whose first cell (floor(px * cells / pixels)) is not past it.
    assert xs[0] == np.flatnonzero(np.arange(plot["width"]) * 800 // plot["width"] <= 517)[-1]
    assert plot["height"] - 1 - ys[0] == np.flatnonzero(np.arange(plot["height"]) * 600 // plot["height"] <= 233)[-1]
    # Everything else is the bottom of the scale: 1,000 USD next to 5,001,000.
    dark = np.array([int(VIRIDIS_ANCHORS[0][i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(area - dark).sum(axis=2) < 60).mean() > 0.95
