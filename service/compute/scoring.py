"""``liqmap backtest`` and ``liqmap calibrate``: CSV files in, model scores out.

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
are scored. model3's parameters were fitted on liquidation bars before its
calibration cutoff (``engine/models/model3_fit.json``); a backtest whose
scored bars reach back before that cutoff says so.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.backtest import BacktestResult, RealizedLiquidations, run_backtest
from engine.models import MODELS, ModelSpec, get_model, model3_spec
from engine.models import model3 as model3_module
from engine.series import MarketSeries

CANDLE_COLUMNS = ("timestamp", "price_open", "price_high", "price_low", "price_close", "oi_close")
LIQUIDATION_COLUMNS = (("liquidation_long_usd", "liquidation_short_usd"), ("longUsd", "shortUsd"))
REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "real" / "btc-binance5m-coinglass-liq"
MODELS_DIR = REPO_ROOT / "engine" / "models"


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


def result_json(spec: ModelSpec, result: BacktestResult) -> dict[str, Any]:
    out = result.to_json()
    out["from"] = iso(result.from_ms)
    out["first_bar"] = iso(result.first_bar_ms)
    out["last_bar"] = iso(result.last_bar_ms)
    out["overlaps_calibration"] = calibration_overlap(spec, result)
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


def backtest(candles: str | Path, liquidations: str | Path, model: str, from_text: str | None = None) -> dict[str, Any]:
    """One model's backtest as the JSON object ``liqmap backtest --json`` prints.

    Raises
    ------
    CsvError, ValueError
    """
    spec = get_model(model)
    series = read_candles(candles)
    realized = read_liquidations(liquidations)
    from_ms = parse_time(from_text) if from_text is not None else None
    result = run_backtest(series, realized, spec, from_ms=from_ms)
    return result_json(spec, result)


def run_backtest_command(args: Any) -> int:
    """``liqmap backtest``: exit 0 with the score, 2 with a message on unusable input."""
    try:
        row = backtest(args.candles, args.liquidations, args.model, args.from_)
    except (ValueError, KeyError) as exc:
        print(f"liqmap backtest: {exc}", file=sys.stderr)
        return 2
    if row["overlaps_calibration"]:
        print(
            f"liqmap backtest: warning: scored bars overlap {row['model']}'s calibration span; this is not an out-of-sample score",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(row))
    else:
        print(f"{args.model}: {row['bars']} bars from {row['first_bar']} to {row['last_bar']}")
        print(format_table([row]))
    return 0


# The held-out cases every model version is scored on (and stored with its metadata).
@dataclass(frozen=True, slots=True)
class Case:
    name: str
    candles: str
    liquidations: str
    from_iso: str
    note: str


CALIBRATION_FILE = "coinglass_BTC_aggliq_binanceOI_spotprice_1h_20251204-20260531.csv"
# Calibration bars: the 1h file from a week after its start (warm-up) to this cutoff.
CALIBRATION_FROM = "2025-12-11T00:00:00Z"
CALIBRATION_UNTIL = "2026-04-01T00:00:00Z"
CASES = (
    Case(
        "5m_30m",
        "binance_um_BTCUSDT_5m_klines_oi_20260525-20260531.csv",
        "coinglass_BTC_aggliq_binanceOI_spotprice_30m_20260521-20260531.csv",
        "2026-05-26T00:00:00Z",
        "Binance BTCUSDT 5m candles and open interest; realized liquidations per 30m bar (Binance+Bybit+OKX); "
        "warm-up 2026-05-25 15:55 to 05-26 00:00, scored 2026-05-26 00:00 to 05-31 23:30",
    ),
    Case(
        "1h",
        CALIBRATION_FILE,
        CALIBRATION_FILE,
        CALIBRATION_UNTIL,
        "1h spot candles with Binance open interest and realized liquidations; run from 2025-12-04, "
        "scored from the calibration cutoff 2026-04-01 to 2026-05-31",
    ),
)


def score_cases(spec: ModelSpec, data_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for case in CASES:
        row = result_json(spec, run_backtest(read_candles(data_dir / case.candles), read_liquidations(data_dir / case.liquidations), spec, from_ms=parse_time(case.from_iso)))
        row.update(case=case.name, candles=case.candles, liquidations=case.liquidations, note=case.note)
        out[case.name] = row
    return out


def _bumped(version: str) -> str:
    major, minor, _ = (int(part) for part in version.split("."))
    return f"{major}.{minor + 1}.0"


def run_calibrate_command(args: Any) -> int:
    """``liqmap calibrate``: fit model3 on the calibration span, score every model on the held-out cases, store both."""
    from engine.calibrate import calibrate_model3

    data_dir = Path(args.data_dir) if args.data_dir else REAL_DATA
    if not data_dir.is_dir():
        print(f"liqmap calibrate: no real data at {data_dir}", file=sys.stderr)
        return 2
    try:
        until_ms = parse_time(args.until or CALIBRATION_UNTIL)
        from_ms = parse_time(CALIBRATION_FROM)
        series = read_candles(data_dir / CALIBRATION_FILE)
        realized = read_liquidations(data_dir / CALIBRATION_FILE)
    except ValueError as exc:
        print(f"liqmap calibrate: {exc}", file=sys.stderr)
        return 2
    # Only rows before the cutoff are handed to the fit: nothing later can leak in.
    keep = int(np.searchsorted(series.ts_ms, until_ms, side="left"))
    fit = calibrate_model3(series.slice(0, keep), realized, from_ms=from_ms, until_ms=until_ms)
    fit_path = MODELS_DIR / model3_module.FIT_FILE
    stored = json.loads(fit_path.read_text(encoding="utf-8"))
    params = fit.fitted_params()
    version, created = stored["version"], stored["created"]
    if stored["params"] != params:
        version, created = _bumped(version), date.today().isoformat()
    calibration = {
        "file": CALIBRATION_FILE,
        "from": iso(fit.from_ms),
        "until": iso(fit.until_ms),
        "from_ms": fit.from_ms,
        "until_ms": fit.until_ms,
        "bars": fit.bars,
        "objective": "mean of long and short Spearman on the calibration bars",
        "objective_value": round(fit.objective, 4),
        "spearman_long": round(fit.spearman_long, 4),
        "spearman_short": round(fit.spearman_short, 4),
        "predicted_to_realized_long": round(fit.predicted_to_realized_long, 4),
        "predicted_to_realized_short": round(fit.predicted_to_realized_short, 4),
        "half_life_search": [{key: round(value, 4) for key, value in c.items()} for c in fit.candidates],
    }
    document = {"version": version, "created": created, "params": params, "calibration": calibration}
    print(f"model3 {version}: fitted on {fit.bars} 1h bars {iso(fit.from_ms)} .. {iso(fit.until_ms)}, objective {fit.objective:.4f}")
    print(json.dumps(params))
    specs = [MODELS["model1"], MODELS["model2"]]
    # The fresh fit, whatever the module loaded at import.
    specs.append(replace(model3_spec(fit.params), version=version, created=created, calibration=calibration))
    scores: dict[str, Any] = {}
    for spec in specs:
        cases = score_cases(spec, data_dir)
        scores[spec.name] = {"version": spec.version, "params_hash": spec.params_hash, "score": {"scored_on": date.today().isoformat(), "cases": cases}}
    for case in CASES:
        print(f"\n{case.name}: {case.note}")
        print(format_table([scores[spec.name]["score"]["cases"][case.name] for spec in specs]))
    if args.dry_run:
        return 0
    fit_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (MODELS_DIR / "scores.json").write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"\nwrote {fit_path} and {MODELS_DIR / 'scores.json'}")
    return 0
