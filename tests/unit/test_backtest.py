"""Backtest: rank correlation, baseline, joining bars, CSV reading and its errors, the CLI, a real slice."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import RealizedLiquidations, consumption, join_bars, run_backtest
from engine.models import get_model
from engine.score import average_ranks, excursion_baseline, spearman
from engine.series import MarketSeries
from real_data import BTC_SET, MULTICOIN_SET, needs_real_data
from service.compute.scoring import CsvError, coin_of_file, pairs_in_folder, parse_time, read_candles, read_liquidations
from service.cli import main

CANDLES_5M = BTC_SET / "binance_um_BTCUSDT_5m_klines_oi_20260525-20260531.csv"
LIQUIDATIONS_30M = BTC_SET / "coinglass_BTC_aggliq_binanceOI_spotprice_30m_20260521-20260531.csv"
LIQUIDATIONS_30M_SHORT_NAMES = BTC_SET / "coinglass_BTC_aggliq_30m_20260227-20260528.csv"

CANDLE_HEADER = "timestamp,price_open,price_high,price_low,price_close,oi_close"


def plain_spearman(a, b):
    """Pearson correlation of ranks computed by counting, ties averaged."""

    def ranks(values):
        out = []
        for v in values:
            below = sum(1 for w in values if w < v)
            equal = sum(1 for w in values if w == v)
            out.append(below + (equal + 1) / 2)
        return out

    ra, rb = ranks(list(a)), ranks(list(b))
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return None if var == 0 else cov / var


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.tuples(st.sampled_from([0.0, 1.0, 2.5, 7.0]) | st.floats(0, 1e6), st.floats(0, 1e6)), min_size=2, max_size=40))
def test_spearman_matches_counting_ranks(values):
    a = np.array([v[0] for v in values])
    b = np.array([v[1] for v in values])
    expected = plain_spearman(a, b)
    got = spearman(a, b)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-9)
    assert sorted(average_ranks(a)) == pytest.approx(sorted(range(1, len(a) + 1)), abs=len(a))
    assert average_ranks(a).sum() == pytest.approx(len(a) * (len(a) + 1) / 2)


def test_spearman_edge_cases():
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert spearman(np.zeros(5), np.arange(5.0)) is None
    assert spearman(np.array([1.0]), np.array([1.0])) is None
    with pytest.raises(ValueError):
        spearman(np.zeros(3), np.zeros(4))


def test_excursion_baseline():
    long_usd, short_usd = excursion_baseline(np.array([100.0, 100.0]), np.array([110.0, 100.0]), np.array([95.0, 90.0]), np.array([1e6, 2e6]))
    np.testing.assert_allclose(long_usd, [5e4, 2e5])
    np.testing.assert_allclose(short_usd, [1e5, 0.0])


def series_of(ts, open_, high, low, close, oi, step_ms=300_000) -> MarketSeries:
    n = len(ts)
    f = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    return MarketSeries(step_ms, np.asarray(ts, dtype=np.int64), f(open_), f(high), f(low), f(close), np.full(n, np.nan), np.full(n, np.nan), f(oi))


def test_join_covers_only_complete_liquidation_bars():
    step = 300_000
    # Candle bars 0..11 with bar 8 missing; liquidation bars of 30 min at 0 and 1800000.
    ts = [i * step for i in range(12) if i != 8]
    n = len(ts)
    series = series_of(ts, [100.0] * n, [101.0] * n, [99.0] * n, [100.0] * n, [1e6] * n)
    liquidations = RealizedLiquidations(1_800_000, np.array([0, 1_800_000, 3_600_000]), np.ones(3), np.ones(3))
    join = join_bars(series, liquidations)
    assert join.covered.tolist() == [True, False, False]
    assert join.bucket.tolist() == [0] * 6 + [1] * 5
    assert join.first_candle.tolist() == [0, 6, -1]
    with pytest.raises(ValueError, match="multiple"):
        join_bars(series, RealizedLiquidations(450_000, np.array([0]), np.ones(1), np.ones(1)))


def test_backtest_sums_consumption_per_liquidation_bar_and_scores_from_the_start():
    rng = np.random.default_rng(5)
    step, n = 300_000, 6 * 48
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    oi = 1e8 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    series = series_of(np.arange(n) * step, open_, high, low, close, oi)
    m = n // 6
    liquidations = RealizedLiquidations(1_800_000, np.arange(m) * 1_800_000, rng.uniform(0, 1e5, m), rng.uniform(0, 1e5, m))
    spec = get_model("model2")
    from_ms = 10 * 1_800_000
    result = run_backtest(series, liquidations, spec, from_ms=from_ms)
    run = consumption(series, spec)
    predicted_long = [run.consumed_long_usd[6 * i : 6 * i + 6].sum() for i in range(10, m)]
    assert result.bars == m - 10 and result.first_bar_ms == from_ms
    assert result.long.predicted_usd == pytest.approx(sum(predicted_long))
    assert result.long.spearman == pytest.approx(plain_spearman(predicted_long, liquidations.long_usd[10:]), abs=1e-9)
    # Baseline: excursion of each 30m bar from its own candles, open interest at its open.
    expected = []
    for i in range(10, m):
        bar = slice(6 * i, 6 * i + 6)
        expected.append(max(open_[6 * i] - low[bar].min(), 0) / open_[6 * i] * oi[6 * i - 1])
    assert result.long.baseline_spearman == pytest.approx(plain_spearman(expected, liquidations.long_usd[10:]), abs=1e-9)
    # Path baseline: every 5m candle's own excursion, open interest at its open, summed per 30m bar.
    path = []
    for i in range(10, m):
        path.append(sum(max(high[t] - open_[t], 0) / open_[t] * oi[t - 1] for t in range(6 * i, 6 * i + 6)))
    assert result.short.path_baseline_spearman == pytest.approx(plain_spearman(path, liquidations.short_usd[10:]), abs=1e-9)
    row = result.to_json()
    for side in ("long", "short"):
        stronger = max(row[f"baseline_spearman_{side}"], row[f"path_baseline_spearman_{side}"])
        assert row[f"stronger_baseline_spearman_{side}"] == stronger
        assert row[f"margin_{side}"] == pytest.approx(row[f"spearman_{side}"] - stronger)
    with pytest.raises(ValueError, match="no liquidation bar"):
        run_backtest(series, liquidations, spec, from_ms=10**15)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD_ROWS = "0,100,101,99,100,1000\n300000,100,102,99,101,1100\n600000,101,103,100,102,1200\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("timestamp,price_open,price_high,price_low,price_close\n0,1,1,1,1\n", r"line 1: missing column oi_close"),
        (CANDLE_HEADER + "\n0,100,101,99,100,1000\n300000,abc,101,99,100,1000\n", r"line 3, column price_open: 'abc' is not a finite number"),
        (CANDLE_HEADER + "\n0,100,101,99,100,1000\n300000,100,101,99,100,\n", r"line 3, column oi_close: empty"),
        (CANDLE_HEADER + "\n0,100,101,99,100,1000\n300000,100,101,99,100,-5\n", r"line 3, column oi_close: '-5' must be at least 0"),
        (CANDLE_HEADER + "\n0,100,101,99,100,1000\n300000,100,101,99,100,1\n300000,100,101,99,100,1\n", r"line 4, column timestamp: 300000 does not come after 300000"),
        (CANDLE_HEADER + "\n0,100,101,99,100,1000\n300000,100,101,99,100,1\n750000,100,101,99,100,1\n", r"line 4, column timestamp: 750000 is not a whole number of 300000 ms bars"),
        (CANDLE_HEADER + "\n0,100,101,99,100,1000\n2026-05-26,100,101,99,100,1\n", r"line 3, column timestamp: '2026-05-26' is not an epoch time"),
        (CANDLE_HEADER + "\n0,100,101,102,100,1000\n300000,100,101,99,100,1\n", r"line 2, column price_low: 102 lies outside"),
        (CANDLE_HEADER + "\n0,100,101,99,105,1000\n300000,100,101,99,100,1\n", r"line 2, column price_close: 105 lies outside"),
        (CANDLE_HEADER + "\n0,0,101,99,100,1000\n300000,100,101,99,100,1\n", r"line 2, column price_open: '0' must be positive"),
        (CANDLE_HEADER + "\n0,100,101,99,100,1000\n300000,100,101,99,100,1,7\n", r"line 3: 7 fields where the header has 6"),
        (CANDLE_HEADER + "\n", r"no data rows"),
        ("", r"empty file|no data rows|not a readable"),
        (CANDLE_HEADER + "\n0,100,101,99,100,1000\n", r"at least 2 data rows"),
    ],
)
def test_unusable_candle_files_are_refused_naming_file_line_and_column(tmp_path, body, message):
    path = write(tmp_path, "candles.csv", body)
    with pytest.raises(CsvError, match=message) as caught:
        read_candles(path)
    assert str(path) in str(caught.value)


def test_unusable_liquidation_files_are_refused(tmp_path):
    path = write(tmp_path, "liq.csv", "timestamp,long,short\n0,1,2\n1800000,1,2\n")
    with pytest.raises(CsvError, match=r"liq.csv: line 1: missing liquidation columns: need liquidation_long_usd/liquidation_short_usd or longUsd/shortUsd"):
        read_liquidations(path)
    path = write(tmp_path, "liq2.csv", "timestamp,longUsd,shortUsd\n0,1,2\n1800000,1,nan\n")
    with pytest.raises(CsvError, match=r"liq2.csv: line 3, column shortUsd: 'nan' is not a finite number"):
        read_liquidations(path)
    with pytest.raises(CsvError, match="no such file"):
        read_liquidations(tmp_path / "missing.csv")


def test_csv_readers_take_both_liquidation_formats_and_optional_flow(tmp_path):
    candles = read_candles(write(tmp_path, "c.csv", "timestamp,price_open,price_high,price_low,price_close,oi_close,volume_usd,taker_buy_usd\n" + "".join(line.rstrip() + ",10,4\n" for line in GOOD_ROWS.splitlines())))
    assert candles.step_ms == 300_000 and len(candles) == 3
    assert candles.volume_usd.tolist() == [10.0] * 3 and candles.taker_buy_usd.tolist() == [4.0] * 3
    first = read_liquidations(write(tmp_path, "a.csv", "timestamp,liquidation_long_usd,liquidation_short_usd\n0,1,2\n3600000,3,4\n"))
    second = read_liquidations(write(tmp_path, "b.csv", "timestamp,datetime_utc,longUsd,shortUsd,totalUsd\n0,x,1,2,3\n3600000,y,3,4,7\n"))
    for liquidations in (first, second):
        assert liquidations.step_ms == 3_600_000
        assert liquidations.long_usd.tolist() == [1.0, 3.0] and liquidations.short_usd.tolist() == [2.0, 4.0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-05-26", 1779753600000), ("2026-05-26T00:00:00Z", 1779753600000), ("2026-05-26T02:00:00+02:00", 1779753600000), ("1779753600000", 1779753600000)],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected


def test_cli_reports_unusable_input_and_exits_2(tmp_path, capsys):
    bad = write(tmp_path, "bad.csv", CANDLE_HEADER + "\n0,100,101,99,100,1000\n300000,100,101,99,x,1\n")
    liquidations = write(tmp_path, "liq.csv", "timestamp,longUsd,shortUsd\n0,1,2\n1800000,1,2\n")
    with pytest.raises(SystemExit) as caught:
        main(["backtest", "--candles", str(bad), "--liquidations", str(liquidations), "--model", "model1"])
    assert caught.value.code == 2
    assert "bad.csv: line 3, column price_close" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["backtest", "--candles", str(bad), "--liquidations", str(liquidations), "--model", "model9"])
    assert caught.value.code == 2 and "allowed: model1, model2, model3" in capsys.readouterr().err


@needs_real_data(BTC_SET)
@pytest.mark.parametrize("model", ["model1", "model2", "model3", "model4"])
def test_backtest_on_a_real_slice(model, capsys):
    # The last two days of the 5m file against the 30m realized liquidations.
    with pytest.raises(SystemExit) as caught:
        main(["backtest", "--candles", str(CANDLES_5M), "--liquidations", str(LIQUIDATIONS_30M), "--model", model, "--from", "2026-05-30T00:00:00Z", "--json"])
    assert caught.value.code == 0
    row = json.loads(capsys.readouterr().out)
    for key in ("model", "version", "bars", "spearman_long", "spearman_short", "baseline_spearman_long", "baseline_spearman_short", "path_baseline_spearman_long", "path_baseline_spearman_short", "predicted_to_realized_long", "predicted_to_realized_short"):
        assert key in row
    assert row["model"] == model and row["version"] == get_model(model).version
    assert row["bars"] == 96 and row["first_bar"] == "2026-05-30T00:00:00Z" and row["last_bar"] == "2026-05-31T23:30:00Z"
    for key in ("spearman_long", "spearman_short", "baseline_spearman_long", "baseline_spearman_short", "path_baseline_spearman_long", "path_baseline_spearman_short"):
        assert -1 <= row[key] <= 1
    assert row["predicted_to_realized_long"] > 0 and row["overlaps_calibration"] is False


@needs_real_data(BTC_SET)
def test_the_two_liquidation_formats_agree_where_they_overlap():
    candles = read_candles(CANDLES_5M)
    from_ms = parse_time("2026-05-26T00:00:00Z")
    first = run_backtest(candles, read_liquidations(LIQUIDATIONS_30M), get_model("model1"), from_ms=from_ms)
    second = run_backtest(candles, read_liquidations(LIQUIDATIONS_30M_SHORT_NAMES), get_model("model1"), from_ms=from_ms)
    # The longUsd file ends on 2026-05-28 04:00: fewer bars, same kind of numbers.
    assert second.bars < first.bars and second.last_bar_ms <= parse_time("2026-05-28T04:00:00Z")
    assert second.long.spearman is not None and abs(second.long.spearman - first.long.spearman) < 0.3


def synthetic_files(folder: Path, coin: str, seed: int) -> tuple[Path, Path]:
    """A coin's 1h candles and 4h liquidations, named the way the recorded data names them."""
    rng = np.random.default_rng(seed)
    n = 24 * 6
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high, low = np.maximum(open_, close) * 1.003, np.minimum(open_, close) * 0.997
    oi = 1e8 * np.exp(np.cumsum(rng.normal(0, 0.005, n)))
    rows = "".join(f"{i * 3_600_000},{o},{h},{lo},{c},{v},{v * 0.1}\n" for i, (o, h, lo, c, v) in enumerate(zip(open_, high, low, close, oi)))
    candles = write(folder, f"binance_{coin}USDT_1h_candles_oi.csv", "timestamp,price_open,price_high,price_low,price_close,oi_close,volume_usd\n" + rows)
    liq = "".join(f"{i * 14_400_000},{rng.uniform(0, 1e6)},{rng.uniform(0, 1e6)}\n" for i in range(n // 4))
    liquidations = write(folder, f"coinglass_{coin}_binance_liq_4h.csv", "timestamp,liquidation_long_usd,liquidation_short_usd\n" + liq)
    return candles, liquidations


def test_coins_are_read_from_file_names():
    assert coin_of_file("binance_ETHUSDT_1h_candles_oi.csv") == "ETH"
    assert coin_of_file("coinglass_SOL_binance_liq_4h.csv") == "SOL"
    assert coin_of_file("binance_um_BTCUSDT_5m_klines_oi_20260525-20260531.csv") == "BTC"
    assert coin_of_file("coinglass_BTC_aggliq_binanceOI_spotprice_1h_20251204-20260531.csv") == "BTC"
    assert coin_of_file("candles.csv") is None


def test_several_pairs_give_one_table_per_coin_and_a_folder_pairs_by_coin(tmp_path, capsys):
    (eth_c, eth_l), (sol_c, sol_l) = synthetic_files(tmp_path, "ETH", 1), synthetic_files(tmp_path, "SOL", 2)
    with pytest.raises(SystemExit) as caught:
        main(["backtest", "--candles", str(eth_c), "--liquidations", str(eth_l), "--candles", str(sol_c), "--liquidations", str(sol_l), "--model", "model1,model4"])
    out = capsys.readouterr().out
    assert caught.value.code == 0
    assert out.index("ETH (") < out.index("SOL (") and out.count("baseline (path)") == 2 and out.count("model4 4.") == 2
    assert "margin table: binance SOLUSDT shipped table" in out
    assert [pair.coin for pair in pairs_in_folder(tmp_path)] == ["ETH", "SOL"]
    with pytest.raises(SystemExit) as caught:
        main(["backtest", "--data", str(tmp_path), "--model", "model4", "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert caught.value.code == 0 and [row["coin"] for row in lines] == ["ETH", "SOL"]
    for row in lines:
        assert row["bars"] > 0 and row["margin_table"].startswith(f"binance {row['coin']}USDT")
        assert row["stronger_baseline_spearman_long"] == max(row["baseline_spearman_long"], row["path_baseline_spearman_long"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--candles", "a.csv"], "need as many --liquidations as --candles"),
        (["--data", "{tmp}", "--candles", "a.csv"], "either --data DIR or --candles"),
        (["--data", "{tmp}/nowhere"], "no such folder"),
        (["--data", "{tmp}", "--symbol", "ETHUSDT"], "--symbol names the market of one pair"),
        (["--data", "{tmp}", "--model", "model3,model9"], "allowed: model1, model2, model3, model4"),
    ],
)
def test_backtest_arguments_that_cannot_work_are_refused(tmp_path, capsys, arguments, message):
    synthetic_files(tmp_path, "ETH", 1)
    synthetic_files(tmp_path, "SOL", 2)
    argv = ["backtest", *(a.replace("{tmp}", str(tmp_path)) for a in arguments)]
    if "--model" not in argv:
        argv += ["--model", "model1"]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_a_folder_with_two_candle_files_of_one_coin_is_refused_naming_them(tmp_path):
    synthetic_files(tmp_path, "ETH", 1)
    write(tmp_path, "other_ETHUSDT_candles.csv", CANDLE_HEADER + "\n" + GOOD_ROWS)
    with pytest.raises(ValueError, match="ETH needs one candle file and one liquidation file, found .*other_ETHUSDT_candles.csv"):
        pairs_in_folder(tmp_path)


@needs_real_data(MULTICOIN_SET)
def test_the_multicoin_folder_scores_every_coin_and_the_path_baseline_sees_more_than_one_excursion(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["backtest", "--data", str(MULTICOIN_SET), "--model", "model4", "--from", "2025-07-01T00:00:00Z", "--json"])
    rows = {row["coin"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert caught.value.code == 0 and set(rows) == {"BTC", "ETH", "SOL"}
    for row in rows.values():
        assert row["bars"] == 270 and row["first_bar"] == "2025-07-01T00:00:00Z" and row["walk_forward"]
    # On 4h bars over 1h candles the path baseline ranks better than one excursion per bar.
    assert rows["ETH"]["path_baseline_spearman_short"] > rows["ETH"]["baseline_spearman_short"] + 0.01
