"""Heatmap PNGs: a frame drawn server-side, intensity on viridis, with axes, candles, clusters and a USD legend.

The picture, from top to bottom: a header (market, model, range, data_until and a
horizontal colour legend in absolute USD), the plot (time left to right, price
bottom to top; colour = long + short USD of each cell; the candles and the last
price over it), then the time axis. Right of the plot: a gutter marking the
frame's clusters (blue: longs, below price; orange: shorts, above) and the price axis.

Pixels map to cells the same way everywhere (and the viewer does the same):
plot column ``px`` (0 at the left) shows frame column ``floor(px * columns / width)``
and plot row ``py`` (0 at the top) shows price row ``floor((height - 1 - py) * rows / height)``;
where a pixel covers several cells it shows the largest, so peaks never vanish.
The plot's place and scales are written into the PNG as a ``liqmap`` text chunk (JSON).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from engine.types import Float64Array
from service.wire.schemas import ClusterOut, FrameOut

# viridis sampled at 0, 0.1, ..., 1.0 (the published 11-step palette, van der Walt & Smith);
# linear interpolation between these anchors stays within a few levels of the full table.
VIRIDIS_ANCHORS = (
    "#440154", "#482576", "#414487", "#35608D", "#2A788E", "#21908C",
    "#22A884", "#43BF71", "#7AD151", "#BBDF27", "#FDE725",
)  # fmt: skip
LUT_SIZE = 256
# Colour position of a cell: (usd / largest cell) ** GAMMA. Below 1 it lifts small levels out of
# the dark while the largest still stand apart; the legend's USD ticks follow the same curve.
GAMMA = 0.5

MIN_WIDTH, MAX_WIDTH = 320, 4000
MIN_HEIGHT, MAX_HEIGHT = 240, 3000
DEFAULT_WIDTH, DEFAULT_HEIGHT = 1200, 700

BACKGROUND = (14, 17, 23)
PANEL_TEXT = (222, 226, 233)
MUTED_TEXT = (139, 148, 160)
GRID_LINE = (255, 255, 255, 28)
CANDLE_UP = (14, 203, 129)
CANDLE_DOWN = (246, 70, 93)
PRICE_LINE = (255, 255, 255)
SIDE_COLOURS = {"long": (79, 195, 247), "short": (255, 152, 0)}

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
TIME_STEPS_MS = (
    5 * MINUTE_MS, 15 * MINUTE_MS, 30 * MINUTE_MS, HOUR_MS, 2 * HOUR_MS, 3 * HOUR_MS, 4 * HOUR_MS,
    6 * HOUR_MS, 12 * HOUR_MS, DAY_MS, 2 * DAY_MS, 7 * DAY_MS, 14 * DAY_MS, 30 * DAY_MS, 61 * DAY_MS,
)  # fmt: skip


def _hex_rgb(code: str) -> tuple[int, int, int]:
    return int(code[1:3], 16), int(code[3:5], 16), int(code[5:7], 16)


def viridis_lut(size: int = LUT_SIZE) -> np.ndarray:
    """``(size, 3)`` uint8 RGB: viridis from 0 (dark purple) to 1 (yellow), interpolated from the anchors."""
    anchors = np.array([_hex_rgb(code) for code in VIRIDIS_ANCHORS], dtype=np.float64)
    at = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, size)
    return np.rint(np.stack([np.interp(t, at, anchors[:, i]) for i in range(3)], axis=1)).astype(np.uint8)


VIRIDIS = viridis_lut()


def colour_position(usd: np.ndarray | float, scale_usd: float) -> np.ndarray:
    """Where on the colour scale (0..1) a USD amount sits, for a frame whose largest cell is ``scale_usd``."""
    if scale_usd <= 0:
        return np.zeros_like(np.asarray(usd, dtype=np.float64))
    return np.clip(np.asarray(usd, dtype=np.float64) / scale_usd, 0.0, 1.0) ** GAMMA


def pixel_cells(pixels: int, cells: int) -> np.ndarray:
    """First cell shown by each of ``pixels`` pixels along an axis of ``cells`` cells (shape ``(pixels,)``)."""
    return (np.arange(pixels, dtype=np.int64) * cells) // pixels


def _max_pool(values: np.ndarray, pixels: int, axis: int) -> np.ndarray:
    """Resample ``values`` along ``axis`` to ``pixels`` entries, each the largest of the cells it covers."""
    starts = pixel_cells(pixels, values.shape[axis])
    if pixels >= values.shape[axis]:
        return np.take(values, starts, axis=axis)  # every pixel covers one cell
    return np.maximum.reduceat(values, starts, axis=axis)


@dataclass(frozen=True, slots=True)
class HeatmapArrays:
    """A frame's numbers as arrays.

    Attributes
    ----------
    x_ms : shape (columns,), column start times, epoch ms.
    y : shape (rows,), evenly spaced price row centres, ascending, USD.
    total_usd : shape (columns, rows), long + short USD per cell.
    ohlc : shape (columns, 4), open/high/low/close per column, NaN where no bar.
    """

    x_ms: np.ndarray
    y: Float64Array
    total_usd: np.ndarray
    ohlc: np.ndarray


def frame_arrays(frame: FrameOut) -> HeatmapArrays:
    total = np.asarray(frame.long, dtype=np.float64) + np.asarray(frame.short, dtype=np.float64)
    columns = len(frame.x)
    total = total.reshape(columns, len(frame.y)) if total.size else np.zeros((columns, len(frame.y)))
    ohlc = np.full((columns, 4), np.nan)
    for i, candle in enumerate(frame.candles[:columns]):
        ohlc[i] = [np.nan if value is None else value for value in candle[1:5]]
    return HeatmapArrays(np.asarray(frame.x, dtype=np.int64), np.asarray(frame.y, dtype=np.float64), total, ohlc)


def colour_index(total_usd: np.ndarray, scale_usd: float) -> np.ndarray:
    """Each cell's entry in :data:`VIRIDIS` (uint8, same shape)."""
    return np.rint(colour_position(total_usd, scale_usd) * (LUT_SIZE - 1)).astype(np.uint8)


def heatmap_indices(total_usd: np.ndarray, width: int, height: int, scale_usd: float) -> np.ndarray:
    """The plot raster as :data:`VIRIDIS` indices: ``(height, width)`` uint8, time left to right, price bottom to top.

    ``total_usd`` is ``(columns, rows)`` USD; each pixel shows the largest cell it covers.
    """
    columns, rows = total_usd.shape
    if columns == 0 or rows == 0:
        return np.zeros((height, width), dtype=np.uint8)
    # Colour indices rise with USD, so pooling them keeps the largest cell: pool the small ones.
    index = colour_index(total_usd, scale_usd)
    bottom_up = _max_pool(np.ascontiguousarray(index.T), height, axis=0)  # (height, columns), lowest price first
    return np.ascontiguousarray(_max_pool(bottom_up, width, axis=1)[::-1])


def heatmap_image(total_usd: np.ndarray, width: int, height: int, scale_usd: float) -> Image.Image:
    """The plot raster as an RGB image (see :func:`heatmap_indices`)."""
    image = Image.fromarray(heatmap_indices(total_usd, width, height, scale_usd), "P")
    image.putpalette(VIRIDIS.tobytes())
    return image.convert("RGB")


def format_usd(usd: float) -> str:
    """$950, $12.3K, $4.56M, $1.2B: three significant figures at most."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(usd) >= limit:
            return f"${usd / limit:.3g}{suffix}"
    return f"${usd:.0f}"


def format_price(price: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 2
    return f"{price:,.{decimals}f}"


def nice_step(span: float, max_ticks: int) -> float:
    """A 1-2-5 × 10^k step giving at most ``max_ticks`` ticks over ``span``."""
    if span <= 0 or max_ticks < 1:
        return 1.0
    raw = span / max_ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def time_step(span_ms: int, max_ticks: int) -> int:
    return next((step for step in TIME_STEPS_MS if span_ms / step <= max_ticks), TIME_STEPS_MS[-1])


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def legend_ticks(scale_usd: float) -> list[float]:
    """Round USD amounts to label on the legend: 0, a few 1-2-5 steps, and the frame's largest cell."""
    if scale_usd <= 0:
        return [0.0]
    step = nice_step(scale_usd, 4)
    ticks = [0.0, *(float(v) for v in np.arange(step, scale_usd, step) if v < scale_usd * 0.88)]
    return [*ticks, scale_usd]


@dataclass(frozen=True, slots=True)
class Layout:
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    gutter: int  # cluster markers and their labels, right of the plot

    @property
    def right(self) -> int:
        return self.left + self.plot_width

    @property
    def bottom(self) -> int:
        return self.top + self.plot_height


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow ships this font: no system fonts are needed.
    return ImageFont.load_default(size=size)


def _layout(width: int, height: int, font_size: int) -> Layout:
    header = 2 * font_size + 22
    axis = font_size + 12
    price_axis = 7 * font_size
    gutter = 6 * font_size if width >= 640 else 10
    left = 10
    return Layout(width, height, left, header, width - left - gutter - price_axis, height - header - axis, gutter)


class _Painter:
    def __init__(self, image: Image.Image, layout: Layout, font_size: int) -> None:
        self.image = image
        self.layout = layout
        self.draw = ImageDraw.Draw(image, "RGBA")
        self.font = _font(font_size)
        self.small = _font(max(9, font_size - 2))
        self.font_size = font_size

    def text(self, xy: tuple[float, float], text: str, fill: tuple[int, ...] = PANEL_TEXT, anchor: str = "la", small: bool = False) -> None:
        self.draw.text(xy, text, fill=fill, font=self.small if small else self.font, anchor=anchor)

    def text_width(self, text: str, small: bool = False) -> float:
        return self.draw.textlength(text, font=self.small if small else self.font)


class _Scales:
    """Time and price to pixel coordinates of the whole image."""

    def __init__(self, layout: Layout, arrays: HeatmapArrays, column_ms: int) -> None:
        self.layout = layout
        self.t0 = int(arrays.x_ms[0]) if len(arrays.x_ms) else 0
        self.t1 = (int(arrays.x_ms[-1]) + column_ms) if len(arrays.x_ms) else 1
        y = arrays.y
        half_row = (y[1] - y[0]) / 2 if len(y) > 1 else max(abs(float(y[0])) * 0.01, 1.0) if len(y) else 0.5
        self.price_low = float(y[0] - half_row) if len(y) else 0.0
        self.price_high = float(y[-1] + half_row) if len(y) else 1.0
        self.columns = len(arrays.x_ms)

    def x_of_time(self, ms: float) -> float:
        return self.layout.left + (ms - self.t0) / (self.t1 - self.t0) * self.layout.plot_width

    def x_of_column(self, column: int) -> int:
        """First pixel (image x) showing ``column``."""
        return self.layout.left + -(-column * self.layout.plot_width // self.columns)

    def y_of_price(self, price: float) -> float:
        span = self.price_high - self.price_low
        return self.layout.top + (self.price_high - price) / span * self.layout.plot_height


def render_png(frame: FrameOut, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT) -> bytes:
    """The frame as a ``width`` × ``height`` PNG (see the module docstring for what it shows)."""
    arrays = frame_arrays(frame)
    font_size = 12 if min(width, height * 1.6) < 1400 else 14
    layout = _layout(width, height, font_size)
    scale_usd = float(arrays.total_usd.max()) if arrays.total_usd.size else 0.0
    image = Image.new("RGB", (width, height), BACKGROUND)
    image.paste(heatmap_image(arrays.total_usd, layout.plot_width, layout.plot_height, scale_usd), (layout.left, layout.top))
    painter = _Painter(image, layout, font_size)
    scales = _Scales(layout, arrays, frame.column_ms)
    _draw_price_axis(painter, scales)
    _draw_time_axis(painter, scales)
    _draw_coverage(painter, scales, frame.coverage_start)
    _draw_candles(painter, scales, arrays.ohlc)
    _draw_clusters(painter, scales, frame.clusters)
    _draw_header(painter, frame, scale_usd)
    meta = PngInfo()
    meta.add_text("liqmap", json.dumps(_plot_meta(frame, layout, scales, scale_usd)))
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=meta, compress_level=1)
    return out.getvalue()


def _plot_meta(frame: FrameOut, layout: Layout, scales: _Scales, scale_usd: float) -> dict[str, Any]:
    return {
        "frame_id": frame.id,
        "plot": {"left": layout.left, "top": layout.top, "width": layout.plot_width, "height": layout.plot_height},
        "columns": len(frame.x),
        "rows": len(frame.y),
        "time_start_ms": scales.t0,
        "time_end_ms": scales.t1,
        "price_low": scales.price_low,
        "price_high": scales.price_high,
        "scale_usd": scale_usd,
        "gamma": GAMMA,
    }


def _draw_price_axis(painter: _Painter, scales: _Scales) -> None:
    layout = painter.layout
    span = scales.price_high - scales.price_low
    step = nice_step(span, max(2, layout.plot_height // (painter.font_size * 4)))
    first = math.ceil(scales.price_low / step) * step
    x_label = layout.right + layout.gutter + 6
    for price in np.arange(first, scales.price_high, step):
        y = scales.y_of_price(float(price))
        painter.draw.line([(layout.left, y), (layout.right - 1, y)], fill=GRID_LINE)
        painter.text((x_label, y), format_price(float(price), step), fill=MUTED_TEXT, anchor="lm")


def _draw_time_axis(painter: _Painter, scales: _Scales) -> None:
    layout = painter.layout
    span = scales.t1 - scales.t0
    label_width = painter.text_width("00-00 00:00") + 16
    step = time_step(span, max(1, int(layout.plot_width // label_width)))
    first = -(-scales.t0 // step) * step
    y = layout.bottom + 4
    for ms in range(first, scales.t1, step):
        x = scales.x_of_time(ms)
        if x + label_width / 2 > layout.right + layout.gutter:
            continue
        when = _utc(ms)
        if step >= DAY_MS:
            label = when.strftime("%b %d")
        elif when.hour == 0 and when.minute == 0:
            label = when.strftime("%b %d")
        else:
            label = when.strftime("%H:%M")
        painter.draw.line([(x, layout.top), (x, layout.bottom - 1)], fill=GRID_LINE)
        painter.draw.line([(x, layout.bottom), (x, layout.bottom + 3)], fill=MUTED_TEXT)
        painter.text((x, y), label, fill=MUTED_TEXT, anchor="ma")
    painter.text((layout.width - 8, y), "UTC", fill=MUTED_TEXT, anchor="ra")


def _draw_coverage(painter: _Painter, scales: _Scales, coverage_start_ms: int) -> None:
    """Columns before the first input bar hold no data (not "no levels"): dimmed and said so."""
    layout = painter.layout
    x = min(scales.x_of_time(coverage_start_ms), layout.right)
    if x - layout.left < 2 * painter.font_size:
        return
    painter.draw.rectangle([layout.left, layout.top, x - 1, layout.bottom - 1], fill=(*BACKGROUND, 150))
    painter.draw.line([(x, layout.top), (x, layout.bottom - 1)], fill=(*MUTED_TEXT, 200))
    if x - layout.left > 6 * painter.font_size:
        painter.text(((layout.left + x) / 2, layout.top + layout.plot_height / 2), "no data before coverage", fill=MUTED_TEXT, anchor="mm")


def _draw_candles(painter: _Painter, scales: _Scales, ohlc: np.ndarray) -> None:
    layout = painter.layout
    columns = len(ohlc)
    if columns == 0:
        return
    has_bar = ~np.isnan(ohlc[:, 3])
    column_px = layout.plot_width / columns
    draw = painter.draw
    if column_px >= 3:
        for i in np.flatnonzero(has_bar).tolist():
            o, h, lo, c = ohlc[i]
            x0, x1 = scales.x_of_column(i), scales.x_of_column(i + 1) - 1
            pad = max(0, round((x1 - x0) * 0.15))
            mid = (x0 + x1) // 2
            colour = CANDLE_UP if c >= o else CANDLE_DOWN
            draw.line([(mid, scales.y_of_price(h)), (mid, scales.y_of_price(lo))], fill=colour)
            top, bottom = scales.y_of_price(max(o, c)), scales.y_of_price(min(o, c))
            draw.rectangle([x0 + pad, top, max(x0 + pad, x1 - pad), max(top, bottom)], fill=colour)
    else:
        points = [((scales.x_of_column(i) + scales.x_of_column(i + 1)) / 2, scales.y_of_price(ohlc[i, 3])) for i in np.flatnonzero(has_bar).tolist()]
        if len(points) > 1:
            draw.line(points, fill=PRICE_LINE, width=1)
    if has_bar.any():
        last = float(ohlc[np.flatnonzero(has_bar)[-1], 3])
        y = scales.y_of_price(last)
        for x in range(layout.left, layout.right, 8):
            draw.line([(x, y), (min(x + 3, layout.right - 1), y)], fill=(*PRICE_LINE, 190))
        step = nice_step(scales.price_high - scales.price_low, 40)
        label = format_price(last, step / 10)
        x_label = layout.right + layout.gutter + 2
        box_width = painter.text_width(label) + 8
        half = painter.font_size // 2 + 3
        draw.rectangle([x_label, y - half, x_label + box_width, y + half], fill=(240, 240, 240))
        painter.text((x_label + 4, y), label, fill=BACKGROUND, anchor="lm")


def _draw_clusters(painter: _Painter, scales: _Scales, clusters: list[ClusterOut]) -> None:
    """Each cluster as a bar over its price band in the gutter; labelled with its USD where there is room."""
    layout = painter.layout
    draw = painter.draw
    labelled: list[tuple[float, float]] = []
    bar_x = layout.right + 3
    for cluster in sorted(clusters, key=lambda c: -c.usd):
        low, high, usd = cluster.price_low, cluster.price_high, cluster.usd
        colour = SIDE_COLOURS.get(cluster.side, PANEL_TEXT)
        y_top, y_bottom = scales.y_of_price(high), scales.y_of_price(low)
        y_top, y_bottom = max(y_top, layout.top), min(y_bottom, layout.bottom)
        if y_bottom < layout.top or y_top > layout.bottom:
            continue
        y_bottom = max(y_bottom, y_top + 3)
        draw.rectangle([bar_x, y_top, bar_x + 3, y_bottom], fill=colour)
        mid = (y_top + y_bottom) / 2
        half = painter.font_size * 0.6
        if layout.gutter > 20 and all(abs(mid - other) > 2 * half for other, _ in labelled):
            painter.text((bar_x + 7, mid), format_usd(usd), fill=colour, anchor="lm", small=True)
            labelled.append((mid, usd))


def _draw_header(painter: _Painter, frame: FrameOut, scale_usd: float) -> None:
    layout = painter.layout
    title = f"{frame.exchange} {frame.symbol} · {frame.model} {frame.model_version} · {frame.range}"
    if frame.leverage != "all":
        title += f" · leverage {frame.leverage} ({', '.join(f'{t:g}x' for t in frame.tiers)})"
    painter.text((layout.left, 6), title, fill=PANEL_TEXT)
    until = _utc(frame.data_until).strftime("%Y-%m-%d %H:%M UTC")
    since = _utc(frame.coverage_start).strftime("%Y-%m-%d %H:%M")
    painter.text((layout.left, 10 + painter.font_size), f"data until {until} · coverage from {since}", fill=MUTED_TEXT, small=True)
    _draw_legend(painter, scale_usd)


def _draw_legend(painter: _Painter, scale_usd: float) -> None:
    """A horizontal colour bar with absolute USD ticks, at the header's right."""
    layout = painter.layout
    bar_width = min(280, layout.width // 3)
    bar_height = 10
    right = layout.width - 12
    left = right - bar_width
    top = 6
    gradient = VIRIDIS[(np.arange(bar_width) * (LUT_SIZE - 1)) // max(1, bar_width - 1)]
    painter.image.paste(Image.fromarray(np.repeat(gradient[None, :, :], bar_height, axis=0), "RGB"), (left, top))
    caption = "long + short USD per cell"
    painter.text((left - 8, top + bar_height / 2), caption, fill=MUTED_TEXT, anchor="rm", small=True)
    if scale_usd <= 0:
        painter.text((left, top + bar_height + 3), "no liquidation levels in this frame", fill=MUTED_TEXT, small=True)
        return
    # The largest cell and zero first, then round amounts where they fit between.
    ticks = legend_ticks(scale_usd)
    taken: list[tuple[float, float]] = []
    for usd in [ticks[-1], *ticks[:-1]]:
        x = left + float(colour_position(usd, scale_usd)) * (bar_width - 1)
        label = format_usd(usd)
        text_width = painter.text_width(label, small=True)
        start = min(max(x - text_width / 2, left), right - text_width)
        if any(start < end + 6 and start + text_width > begin - 6 for begin, end in taken):
            continue
        taken.append((start, start + text_width))
        painter.draw.line([(x, top + bar_height), (x, top + bar_height + 3)], fill=PANEL_TEXT)
        painter.text((start, top + bar_height + 4), label, fill=PANEL_TEXT, small=True)
