"""``liqmap backtest``: CSV files in, model scores out (``liqmap calibrate`` is in :mod:`service.compute.calibration`).

Reads the CSV formats of the recorded real data (``../shared/data/real/``):

- candles: ``timestamp`` (bar open, epoch ms), ``price_open``, ``price_high``,
  ``price_low``, ``price_close``, ``oi_close`` (open interest at the bar's
  close, USD); optional ``volume_usd`` and ``taker_buy_usd``;
- liquidations: ``timestamp`` and either ``liquidation_long_usd`` /
  ``liquidation_short_usd`` or ``longUsd`` / ``shortUsd``, per bar.

The bar width of each file is its smallest gap between timestamps; gaps of
whole bars are allowed. A file that cannot be used is refused with a message
naming the file, the line (the header is line 1) and the column.

``--from`` splits warm-up from scoring: the model runs over every candle row
from an empty book, and only liquidation bars opening at or after ``--from``
are scored. model3's and model4's parameters were fitted on liquidation bars
before their calibration cutoffs (``engine/models/model{3,4}_fit.json``); a
backtest whose scored bars reach back before that cutoff says so.

Several pairs of files (``--candles A --liquidations B --candles C
--liquidations D``) or a folder (``--data DIR``) give one table per coin. The
coin of a file is read from its name (``binance_ETHUSDT_1h…`` and
``coinglass_ETH_…`` are ETH); models that place levels by the market's
margin tiers use the shipped Binance table of that coin's USDT perpetual
(``--symbol`` names another).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.backtest import BacktestResult, RealizedLiquidations, run_backtest
from engine.models import MODELS, ModelSpec, get_model
from engine.models.margin import QUOTES, MarginTable, shipped_binance_table
from engine.series import MarketSeries

CANDLE_COLUMNS = ("timestamp", "price_open", "price_high", "price_low", "price_close", "oi_close")
LIQUIDATION_COLUMNS = (("liquidation_long_usd", "liquidation_short_usd"), ("longUsd", "shortUsd"))
REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "real"


class CsvError(ValueError):
    """A CSV file that cannot be used; the message names the file, line and column."""


def _where(path: Path, line: int | None = None, column: str | None = None) -> str:
    out = str(path)
    if line is not None:
        out += f": line {line}"
    if column is not None:
        out += f", column {column}" if line is not None else f": column {column}"
    return out


def _structure_error(path: Path) -> CsvError:
    """Find the first line whose field count differs from the header's."""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            return CsvError(f"{path}: empty file (no header line)")
        for number, row in enumerate(reader, start=2):
            if row and len(row) != len(header):
                return CsvError(f"{_where(path, number)}: {len(row)} fields where the header has {len(header)}")
    return CsvError(f"{path}: not a readable CSV file")


def read_table(path: str | Path) -> pl.DataFrame:
    """All columns of a CSV file as text (types are checked per column by the readers)."""
    path = Path(path)
    if not path.is_file():
        raise CsvError(f"{path}: no such file")
    try:
        table = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, UnicodeDecodeError):
        raise _structure_error(path) from None
    if table.height == 0:
        raise CsvError(f"{path}: no data rows after the header")
    return table


def _require(table: pl.DataFrame, path: Path, columns: Sequence[str]) -> None:
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise CsvError(f"{_where(path, 1)}: missing column {', '.join(missing)} (the header has {', '.join(table.columns)})")


def _numbers(table: pl.DataFrame, path: Path, column: str, *, minimum: float | None = None, strictly: bool = False) -> np.ndarray:
    """A column as float64, refusing empty cells, non-numbers, non-finite values and values below ``minimum``."""
    text = table.get_column(column)
    values = text.str.strip_chars().cast(pl.Float64, strict=False)
    bad = values.is_null() | ~values.is_finite().fill_null(False)
    if minimum is not None:
        too_small = (values <= minimum) if strictly else (values < minimum)
        bad = bad | too_small.fill_null(False)
    if bad.any():
        row = int(bad.arg_max())
        raw = text[row]
        line = row + 2
        if raw is None or not str(raw).strip():
            raise CsvError(f"{_where(path, line, column)}: empty")
        number = values[row]
        if number is None or not np.isfinite(number):
            raise CsvError(f"{_where(path, line, column)}: {raw!r} is not a finite number")
        bound = "positive" if strictly else f"at least {minimum:g}"
        raise CsvError(f"{_where(path, line, column)}: {raw!r} must be {bound}")
    return values.to_numpy().astype(np.float64)


def _timestamps(table: pl.DataFrame, path: Path) -> tuple[np.ndarray, int]:
    """Bar open times (epoch ms) and the bar width: the smallest gap, of which every gap must be a multiple."""
    text = table.get_column("timestamp")
    values = text.str.strip_chars().cast(pl.Int64, strict=False)
    if values.is_null().any():
        row = int(values.is_null().arg_max())
        raise CsvError(f"{_where(path, row + 2, 'timestamp')}: {text[row]!r} is not an epoch time in milliseconds")
    ts = values.to_numpy().astype(np.int64)
    if ts.shape[0] < 2:
        raise CsvError(f"{path}: need at least 2 data rows to tell the bar width, got {ts.shape[0]}")
    gaps = np.diff(ts)
    if np.any(gaps <= 0):
        row = int(np.argmax(gaps <= 0)) + 1
        raise CsvError(f"{_where(path, row + 2, 'timestamp')}: {ts[row]} does not come after {ts[row - 1]} (rows must be in time order, once each)")
    step = int(gaps.min())
    if np.any(gaps % step != 0):
        row = int(np.argmax(gaps % step != 0)) + 1
        raise CsvError(f"{_where(path, row + 2, 'timestamp')}: {ts[row]} is not a whole number of {step} ms bars after the previous row")
    return ts, step


def read_candles(path: str | Path) -> MarketSeries:
    """Candles with open interest from a CSV file (see the module docstring).

    Raises
    ------
    CsvError
    """
    path = Path(path)
    table = read_table(path)
    _require(table, path, CANDLE_COLUMNS)
    ts, step = _timestamps(table, path)
    open_, high, low, close = (_numbers(table, path, name, minimum=0.0, strictly=True) for name in CANDLE_COLUMNS[1:5])
    for name, values in (("price_low", low), ("price_open", open_), ("price_close", close)):
        outside = (values > high) | (values < low)
        if outside.any():
            row = int(np.argmax(outside))
            raise CsvError(f"{_where(path, row + 2, name)}: {values[row]:g} lies outside the bar's low {low[row]:g} .. high {high[row]:g}")
    open_interest = _numbers(table, path, "oi_close", minimum=0.0)
    n = ts.shape[0]
    volume = _numbers(table, path, "volume_usd", minimum=0.0) if "volume_usd" in table.columns else np.full(n, np.nan)
    taker_buy = _numbers(table, path, "taker_buy_usd", minimum=0.0) if "taker_buy_usd" in table.columns else np.full(n, np.nan)
    return MarketSeries(step, ts, open_, high, low, close, volume, taker_buy, open_interest)


def read_liquidations(path: str | Path) -> RealizedLiquidations:
    """Realized liquidations per bar and side from a CSV file (see the module docstring).

    Raises
    ------
    CsvError
    """
    path = Path(path)
    table = read_table(path)
    for long_name, short_name in LIQUIDATION_COLUMNS:
        if long_name in table.columns and short_name in table.columns:
            break
    else:
        choices = " or ".join("/".join(pair) for pair in LIQUIDATION_COLUMNS)
        raise CsvError(f"{_where(path, 1)}: missing liquidation columns: need {choices} (the header has {', '.join(table.columns)})")
    _require(table, path, ("timestamp",))
    ts, step = _timestamps(table, path)
    return RealizedLiquidations(
        step_ms=step,
        ts_ms=ts,
        long_usd=_numbers(table, path, long_name, minimum=0.0),
        short_usd=_numbers(table, path, short_name, minimum=0.0),
    )


def parse_time(text: str) -> int:
    """``2026-05-26``, ``2026-05-26T00:00:00Z`` (UTC unless an offset is given) or epoch ms → epoch ms."""
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(f"--from: {text!r} is not an ISO date/time (e.g. 2026-05-26T00:00:00Z) or epoch milliseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def calibration_overlap(spec: ModelSpec, result: BacktestResult) -> bool:
    """Whether scored bars reach into the span a calibrated model was fitted on."""
    calibration = spec.calibration
    if not calibration or result.first_bar_ms is None:
        return False
    return int(calibration["from_ms"]) <= result.last_bar_ms and result.first_bar_ms < int(calibration["until_ms"])  # type: ignore[operator]


def walk_forward(spec: ModelSpec, result: BacktestResult) -> bool:
    """Whether every scored bar comes after every bar the model was fitted on (always, for a model fitted on nothing)."""
    calibration = spec.calibration
    if not calibration or result.first_bar_ms is None:
        return True
    return int(calibration["until_ms"]) <= result.first_bar_ms


def result_json(spec: ModelSpec, result: BacktestResult) -> dict[str, Any]:
    out = result.to_json()
    out["from"] = iso(result.from_ms)
    out["first_bar"] = iso(result.first_bar_ms)
    out["last_bar"] = iso(result.last_bar_ms)
    out["overlaps_calibration"] = calibration_overlap(spec, result)
    out["walk_forward"] = walk_forward(spec, result)
    return out


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Spearman per side for each model and both baselines, the margin over the stronger, and the ratio of totals."""
    lines = [
        f"{'model':<20}{'bars':>6}{'spearman long':>15}{'spearman short':>16}{'margin long':>13}{'margin short':>14}"
        f"{'pred/real long':>16}{'pred/real short':>17}"
    ]
    for row in rows:
        name = f"{row['model']} {row['version']}"
        lines.append(
            f"{name:<20}{row['bars']:>6}{_number(row['spearman_long']):>15}{_number(row['spearman_short']):>16}"
            f"{_signed(row['margin_long']):>13}{_signed(row['margin_short']):>14}"
            f"{_number(row['predicted_to_realized_long'], 2):>16}{_number(row['predicted_to_realized_short'], 2):>17}"
        )
    if rows:
        first = rows[0]
        for label, prefix in (("baseline (bar)", "baseline_spearman"), ("baseline (path)", "path_baseline_spearman")):
            lines.append(f"{label:<20}{first['bars']:>6}{_number(first[prefix + '_long']):>15}{_number(first[prefix + '_short']):>16}")
    return "\n".join(lines)


_PAIR_TOKEN = re.compile(r"[A-Z0-9]*[A-Z][A-Z0-9]*")


def coin_of_file(path: str | Path) -> str | None:
    """The coin a data file is about, from its name: the first all-capitals token, its quote stripped.

    ``binance_ETHUSDT_1h_candles_oi.csv`` and ``coinglass_ETH_binance_liq_4h.csv`` are ``ETH``;
    None where no token fits.
    """
    for token in re.split(r"[_\-. ]", Path(path).stem):
        if 2 <= len(token) <= 16 and _PAIR_TOKEN.fullmatch(token):
            for quote in QUOTES:
                if token.endswith(quote) and len(token) > len(quote):
                    return token[: -len(quote)]
            return token
    return None


@dataclass(frozen=True, slots=True)
class Pair:
    """Candles and the realized liquidations they are scored against, for one coin."""

    coin: str
    candles: Path
    liquidations: Path


def _columns(path: Path) -> set[str]:
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        return set(next(csv.reader(handle), []))


def pairs_in_folder(folder: str | Path) -> list[Pair]:
    """Every coin's candle file paired with its liquidation file, from a folder of CSV files.

    A candle file has the candle columns and no liquidation columns, a
    liquidation file the reverse; each coin needs exactly one of each.

    Raises
    ------
    ValueError
        No such folder, no pair, or a coin with several candidates (the message lists them).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder")
    candles: dict[str, list[Path]] = {}
    liquidations: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.csv")):
        coin = coin_of_file(path)
        columns = _columns(path)
        has_candles = set(CANDLE_COLUMNS) <= columns
        has_liquidations = any(set(pair) <= columns for pair in LIQUIDATION_COLUMNS)
        if coin is None or has_candles == has_liquidations:
            continue
        (candles if has_candles else liquidations).setdefault(coin, []).append(path)
    pairs = []
    for coin in sorted(set(candles) | set(liquidations)):
        found_candles, found_liquidations = candles.get(coin, []), liquidations.get(coin, [])
        if len(found_candles) != 1 or len(found_liquidations) != 1:
            listed = ", ".join(p.name for p in found_candles + found_liquidations)
            raise ValueError(
                f"{folder}: {coin} needs one candle file and one liquidation file, found {listed}; name the pairs with --candles/--liquidations"
            )
        pairs.append(Pair(coin, found_candles[0], found_liquidations[0]))
    if not pairs:
        raise ValueError(f"{folder}: no candle file with a liquidation file of the same coin (names like binance_ETHUSDT_1h.csv, coinglass_ETH_liq.csv)")
    return pairs


def pairs_from_args(candles: Sequence[str] | None, liquidations: Sequence[str] | None, folder: str | None) -> list[Pair]:
    """The pairs the command line names: ``--data DIR``, or ``--candles``/``--liquidations`` matched in order.

    Raises
    ------
    ValueError
        Both or neither given, or unequal numbers of candle and liquidation files.
    """
    candles, liquidations = list(candles or []), list(liquidations or [])
    if folder is not None:
        if candles or liquidations:
            raise ValueError("give either --data DIR or --candles/--liquidations pairs, not both")
        return pairs_in_folder(folder)
    if not candles or len(candles) != len(liquidations):
        raise ValueError(f"need as many --liquidations as --candles (one each per coin), got {len(candles)} and {len(liquidations)}")
    return [Pair(coin_of_file(c) or coin_of_file(lq) or "?", Path(c), Path(lq)) for c, lq in zip(candles, liquidations, strict=True)]


def model_names(text: str) -> list[str]:
    """``model3``, ``model3,model4`` or ``all`` → registered names (unknown ones refused, naming the allowed)."""
    names = list(MODELS) if text.strip() == "all" else [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        get_model(name)
    if not names:
        raise ValueError(f"--model: name one or more of {', '.join(MODELS)} (comma-separated) or all")
    return names


def margin_table_for(coin: str, symbol: str | None) -> MarginTable:
    """The shipped Binance table of ``symbol``, else of the coin's USDT perpetual (the shipped default for an unknown coin)."""
    if symbol is not None:
        return shipped_binance_table(symbol)
    return shipped_binance_table(None if coin == "?" else coin)


def backtest(
    candles: str | Path,
    liquidations: str | Path,
    model: str,
    from_text: str | None = None,
    *,
    margin_table: MarginTable | None = None,
) -> dict[str, Any]:
    """One model's backtest as the JSON object ``liqmap backtest --json`` prints.

    Raises
    ------
    CsvError, ValueError
    """
    spec = get_model(model)
    series = read_candles(candles)
    realized = read_liquidations(liquidations)
    from_ms = parse_time(from_text) if from_text is not None else None
    result = run_backtest(series, realized, spec, from_ms=from_ms, margin_table=margin_table)
    return result_json(spec, result)


def run_backtest_command(args: Any) -> int:
    """``liqmap backtest``: exit 0 with one table (or JSON line per model) per coin, 2 with a message on unusable input."""
    try:
        pairs = pairs_from_args(args.candles, args.liquidations, args.data)
        if args.symbol is not None and len(pairs) != 1:
            raise ValueError("--symbol names the market of one pair of files; with several, each coin's table is read from its file names")
        names = model_names(args.model)
        results = []
        for pair in pairs:
            table = margin_table_for(pair.coin, args.symbol)
            rows = [backtest(pair.candles, pair.liquidations, name, args.from_, margin_table=table) for name in names]
            results.append((pair, table, rows))
    except (ValueError, KeyError) as exc:
        print(f"liqmap backtest: {exc}", file=sys.stderr)
        return 2
    for pair, table, rows in results:
        for row in rows:
            if row["overlaps_calibration"]:
                print(
                    f"liqmap backtest: warning: {pair.coin}: scored bars overlap {row['model']}'s calibration span; this is not an out-of-sample score",
                    file=sys.stderr,
                )
        if args.json:
            for row in rows:
                print(json.dumps({"coin": pair.coin, "candles": pair.candles.name, "liquidations": pair.liquidations.name, **row}))
            continue
        first = rows[0]
        print(f"{pair.coin} ({pair.candles.name} against {pair.liquidations.name}): {first['bars']} bars from {first['first_bar']} to {first['last_bar']}")
        if any(row["margin_table"] for row in rows):
            print(f"margin table: {table.source}")
        print(format_table(rows))
        print()
    return 0
