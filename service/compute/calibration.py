"""``liqmap calibrate``: fit model3 and model4 before their cutoffs, score every model on every data set, store both.

The data sets are the recorded real data under ``../shared/data/real``:

- ``btc-binance5m-coinglass-liq``: BTC only; realized liquidations of Binance,
  Bybit and OKX (all BTC contracts) against Binance BTCUSDT open interest.
  model3 is fitted on its 1h file before 2026-04-01.
- ``multicoin-binance1h-coinglass4h``: BTC, ETH and SOL, Binance 1h candles and
  open interest, Binance-only liquidations per 4h bar, up to 2025-08-14.
  model4 is fitted on all three coins' bars from 2025-05-22 (the first week
  warms the book up) to 2025-07-01.

Every model is scored on every case (``CASES``); each row says whether its
scored bars overlap the model's fit and whether they all come after it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from engine.backtest import run_backtest
from engine.models import MODELS, ModelSpec, model3_spec, model4_spec
from engine.models import model3 as model3_module
from engine.models import model4 as model4_module
from engine.models.margin import shipped_binance_table
from service.compute.scoring import REAL_DATA, REPO_ROOT, format_table, iso, parse_time, read_candles, read_liquidations, result_json

MODELS_DIR = REPO_ROOT / "engine" / "models"
BTC_SET = "btc-binance5m-coinglass-liq"
MULTICOIN_SET = "multicoin-binance1h-coinglass4h"

# model3: the BTC 1h file from a week after its start (warm-up) to this cutoff.
CALIBRATION_FILE = "coinglass_BTC_aggliq_binanceOI_spotprice_1h_20251204-20260531.csv"
CALIBRATION_FROM = "2025-12-11T00:00:00Z"
CALIBRATION_UNTIL = "2026-04-01T00:00:00Z"
# model4: the multicoin set, every coin at once.
MODEL4_COINS = ("BTC", "ETH", "SOL")
MODEL4_FROM = "2025-05-22T00:00:00Z"
MODEL4_UNTIL = "2025-07-01T00:00:00Z"


def multicoin_candles(coin: str) -> str:
    return f"binance_{coin}USDT_1h_candles_oi.csv"


def multicoin_liquidations(coin: str) -> str:
    return f"coinglass_{coin}_binance_liq_4h.csv"


@dataclass(frozen=True, slots=True)
class Case:
    """One scored case: a data set's files for one coin, scored from ``from_iso``."""

    name: str
    data_set: str
    coin: str
    candles: str
    liquidations: str
    from_iso: str
    note: str

    @property
    def symbol(self) -> str:
        """The market whose shipped Binance margin table models that use one take."""
        return f"{self.coin}USDT"


CASES = (
    Case(
        "5m_30m",
        BTC_SET,
        "BTC",
        "binance_um_BTCUSDT_5m_klines_oi_20260525-20260531.csv",
        "coinglass_BTC_aggliq_binanceOI_spotprice_30m_20260521-20260531.csv",
        "2026-05-26T00:00:00Z",
        "Binance BTCUSDT 5m candles and open interest; realized liquidations per 30m bar (Binance+Bybit+OKX); "
        "warm-up 2026-05-25 15:55 to 05-26 00:00, scored 2026-05-26 00:00 to 05-31 23:30",
    ),
    Case(
        "1h",
        BTC_SET,
        "BTC",
        CALIBRATION_FILE,
        CALIBRATION_FILE,
        CALIBRATION_UNTIL,
        "1h spot candles with Binance open interest and realized liquidations; run from 2025-12-04, "
        "scored from model3's calibration cutoff 2026-04-01 to 2026-05-31",
    ),
    *(
        Case(
            f"multicoin_{coin}_dev",
            MULTICOIN_SET,
            coin,
            multicoin_candles(coin),
            multicoin_liquidations(coin),
            MODEL4_FROM,
            f"Binance {coin}USDT 1h candles and open interest (read every 4h), Binance-only realized liquidations per 4h bar; "
            "warm-up from 2025-05-15 20:00, scored 2025-05-22 to 2025-08-14 20:00 (the set's dev period; model4 was fitted on its bars before 2025-07-01)",
        )
        for coin in MODEL4_COINS
    ),
    *(
        Case(
            f"multicoin_{coin}_after_cutoff",
            MULTICOIN_SET,
            coin,
            multicoin_candles(coin),
            multicoin_liquidations(coin),
            MODEL4_UNTIL,
            f"the same {coin} files, scored from model4's calibration cutoff 2025-07-01 to 2025-08-14 20:00",
        )
        for coin in MODEL4_COINS
    ),
)


def score_case(spec: ModelSpec, case: Case, data_dir: Path) -> dict[str, Any]:
    """One model's row for one case (``data_dir``: the folder holding the data sets)."""
    folder = data_dir / case.data_set
    result = run_backtest(
        read_candles(folder / case.candles),
        read_liquidations(folder / case.liquidations),
        spec,
        from_ms=parse_time(case.from_iso),
        margin_table=shipped_binance_table(case.symbol),
    )
    row = result_json(spec, result)
    row.update(case=case.name, data_set=case.data_set, coin=case.coin, candles=case.candles, liquidations=case.liquidations, note=case.note)
    return row


def score_cases(spec: ModelSpec, data_dir: Path) -> dict[str, Any]:
    return {case.name: score_case(spec, case, data_dir) for case in CASES}


def _bumped(version: str) -> str:
    major, minor, _ = (int(part) for part in version.split("."))
    return f"{major}.{minor + 1}.0"


def _versioned(fit_file: str, params: dict[str, Any]) -> tuple[str, str]:
    """The version and date a fit is stored with: kept while the fitted values are the stored ones.

    A stored file without a calibration is a placeholder: its version is the
    first fit's.
    """
    stored = json.loads((MODELS_DIR / fit_file).read_text(encoding="utf-8"))
    version, created = stored["version"], stored["created"]
    if stored.get("calibration") is None:
        return version, date.today().isoformat() if stored["params"] != params else created
    if stored["params"] != params:
        return _bumped(version), date.today().isoformat()
    return version, created


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 4) for key, value in values.items()}


def fit_model3(data_dir: Path, until_text: str | None) -> tuple[ModelSpec, dict[str, Any]]:
    """model3 fitted on the BTC 1h file before its cutoff: its spec and the document of ``model3_fit.json``."""
    from engine.calibrate import calibrate_model3

    until_ms = parse_time(until_text or CALIBRATION_UNTIL)
    series = read_candles(data_dir / BTC_SET / CALIBRATION_FILE)
    realized = read_liquidations(data_dir / BTC_SET / CALIBRATION_FILE)
    # The fit cuts the rows from the cutoff on before it runs anything: nothing later can leak in.
    fit = calibrate_model3(series, realized, from_ms=parse_time(CALIBRATION_FROM), until_ms=until_ms)
    params = fit.fitted_params()
    version, created = _versioned(model3_module.FIT_FILE, params)
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
        "half_life_search": [_rounded(c) for c in fit.candidates],
    }
    print(f"model3 {version}: fitted on {fit.bars} 1h bars {iso(fit.from_ms)} .. {iso(fit.until_ms)}, objective {fit.objective:.4f}")
    print(json.dumps(params))
    spec = replace(model3_spec(fit.params), version=version, created=created, calibration=calibration)
    return spec, {"version": version, "created": created, "params": params, "calibration": calibration}


def fit_model4(data_dir: Path) -> tuple[ModelSpec, dict[str, Any]]:
    """model4 fitted on the multicoin set's bars before its cutoff: its spec and the document of ``model4_fit.json``."""
    from engine.calibrate import CalibrationMarket, calibrate_model4

    from_ms, until_ms = parse_time(MODEL4_FROM), parse_time(MODEL4_UNTIL)
    folder = data_dir / MULTICOIN_SET
    markets = []
    for coin in MODEL4_COINS:
        series = read_candles(folder / multicoin_candles(coin))
        markets.append(CalibrationMarket(coin, series, read_liquidations(folder / multicoin_liquidations(coin)), shipped_binance_table(f"{coin}USDT")))
    fit = calibrate_model4(markets, from_ms=from_ms, until_ms=until_ms)
    params = fit.fitted_params()
    version, created = _versioned(model4_module.FIT_FILE, params)
    calibration = {
        "data_set": MULTICOIN_SET,
        "files": [name for coin in MODEL4_COINS for name in (multicoin_candles(coin), multicoin_liquidations(coin))],
        "margin_tables": {coin: shipped_binance_table(f"{coin}USDT").source for coin in MODEL4_COINS},
        "from": iso(fit.from_ms),
        "until": iso(fit.until_ms),
        "from_ms": fit.from_ms,
        "until_ms": fit.until_ms,
        "objective": "mean over BTC, ETH and SOL of the mean of long and short Spearman on the calibration bars",
        "objective_value": round(fit.objective, 4),
        "markets": {name: _rounded(values) for name, values in fit.markets.items()},
        "grid": [_rounded(c) for c in fit.candidates],
    }
    print(f"model4 {version}: fitted on {', '.join(MODEL4_COINS)} 4h bars {iso(fit.from_ms)} .. {iso(fit.until_ms)}, objective {fit.objective:.4f}")
    print(json.dumps(params))
    spec = replace(model4_spec(fit.params), version=version, created=created, calibration=calibration)
    return spec, {"version": version, "created": created, "params": params, "calibration": calibration}


def run_calibrate_command(args: Any) -> int:
    """``liqmap calibrate``: fit model3 and model4, score every model on every case, store the fits and the scores."""
    data_dir = Path(args.data_dir) if args.data_dir else REAL_DATA
    missing = [str(data_dir / name) for name in (BTC_SET, MULTICOIN_SET) if not (data_dir / name).is_dir()]
    if missing:
        print(f"liqmap calibrate: no real data at {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        model3, model3_document = fit_model3(data_dir, args.until)
        model4, model4_document = fit_model4(data_dir)
        specs = [MODELS["model1"], MODELS["model2"], model3, model4]
        scores: dict[str, Any] = {}
        for spec in specs:
            cases = score_cases(spec, data_dir)
            scores[spec.name] = {"version": spec.version, "params_hash": spec.params_hash, "score": {"scored_on": date.today().isoformat(), "cases": cases}}
    except ValueError as exc:
        print(f"liqmap calibrate: {exc}", file=sys.stderr)
        return 2
    for case in CASES:
        print(f"\n{case.name}: {case.note}")
        print(format_table([scores[spec.name]["score"]["cases"][case.name] for spec in specs]))
    if args.dry_run:
        return 0
    for module, document in ((model3_module, model3_document), (model4_module, model4_document)):
        (MODELS_DIR / module.FIT_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (MODELS_DIR / "scores.json").write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"\nwrote {MODELS_DIR / model3_module.FIT_FILE}, {MODELS_DIR / model4_module.FIT_FILE} and {MODELS_DIR / 'scores.json'}")
    return 0
