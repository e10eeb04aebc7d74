"""Margin tables: the dated shipped Binance tables, refreshing them from a saved response, venue tiers as engine tables."""

from __future__ import annotations

import json
from datetime import date

import pytest

from engine.models.margin import MarginTable, binance_symbol, shipped_binance_document, shipped_binance_table
from service.cli import main
from service.store import tiers
from service.collect.venues.binance_brackets import default_tiers
from service.collect.venues.binance_refresh import format_document, parse_signed_brackets, refresh_document
from service.collect.venues.errors import BadPayload

# The signed GET /fapi/v1/leverageBracket format (reference/EXCHANGES.md).
SIGNED = json.dumps(
    [
        {
            "symbol": symbol,
            "notionalCoef": 1.0,
            "brackets": [
                {"bracket": 1, "initialLeverage": 75, "notionalCap": 10_000, "notionalFloor": 0, "maintMarginRatio": 0.0065, "cum": 0.0},
                {"bracket": 2, "initialLeverage": 50, "notionalCap": 50_000, "notionalFloor": 10_000, "maintMarginRatio": 0.01, "cum": 35.0},
                {"bracket": 3, "initialLeverage": 1, "notionalCap": 9_000_000, "notionalFloor": 50_000, "maintMarginRatio": 0.5, "cum": 24_535.0},
            ],
        }
        for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
    ]
).encode()


def test_shipped_tables_are_dated_and_every_one_is_usable():
    document = shipped_binance_document()
    date.fromisoformat(document["as_of"])
    assert "liqmap brackets" in document["refresh"]
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT"} <= set(document["symbols"])
    for symbol in document["symbols"]:
        table = shipped_binance_table(symbol)
        assert symbol in table.source and document["as_of"] in table.source
        assert len(table.brackets) >= 5
    fallback = shipped_binance_table("NOSUCHUSDT")
    assert "default" in fallback.source and "NOSUCHUSDT" in fallback.source
    assert fallback.brackets == MarginTable.from_rows(document["default"]["brackets"]).brackets


def test_a_coin_or_an_all_market_takes_its_usdt_perpetual_table():
    assert binance_symbol("eth") == "ETHUSDT" and binance_symbol("SOLUSDT") == "SOLUSDT" and binance_symbol("BTCUSDC") == "BTCUSDC"
    assert shipped_binance_table("ETH") == shipped_binance_table("ETHUSDT")


def test_the_collectors_default_is_the_shipped_table():
    assert [(t.cap_usd, t.mmr, t.max_leverage) for t in default_tiers("SOLUSDT")] == list(shipped_binance_table("SOLUSDT").brackets)


def test_a_signed_leverage_bracket_response_becomes_tiers():
    found = parse_signed_brackets(SIGNED)["XRPUSDT"]
    assert found[0] == tiers.Tier(0.0, 10_000.0, 0.0065, 0.0, 75.0)
    assert found[2] == tiers.Tier(50_000.0, 9_000_000.0, 0.5, 24_535.0, 1.0)
    with pytest.raises(BadPayload, match="leverageBracket"):
        parse_signed_brackets(b'[{"symbol": "BTCUSDT"}]')


def test_refreshing_rewrites_the_shipped_symbols_and_dates_them():
    document = refresh_document(SIGNED, today=date(2027, 1, 2), symbols=["XRPUSDT"])
    assert document["as_of"] == "2027-01-02" and "2027-01-02" in document["source"]
    assert set(document["symbols"]) == set(shipped_binance_document()["symbols"]) | {"XRPUSDT"}
    assert document["symbols"]["ETHUSDT"] == [[10_000.0, 0.0065, 75.0], [50_000.0, 0.01, 50.0], [9_000_000.0, 0.5, 1.0]]
    # Written and read back, the same tables; the shipped document itself is untouched.
    assert json.loads(format_document(document))["symbols"] == document["symbols"]
    assert shipped_binance_document()["as_of"] != "2027-01-02"
    with pytest.raises(ValueError, match="no brackets for DOGEUSDT"):
        refresh_document(SIGNED, today=date(2027, 1, 2), symbols=["DOGEUSDT"])


def test_liqmap_brackets_writes_the_file_or_says_what_is_wrong(tmp_path, capsys):
    saved = tmp_path / "leverageBracket.json"
    saved.write_bytes(SIGNED)
    out = tmp_path / "brackets.json"
    with pytest.raises(SystemExit) as caught:
        main(["brackets", "--from", str(saved), "--out", str(out)])
    assert caught.value.code == 0
    assert json.loads(out.read_text())["symbols"]["BTCUSDT"][0] == [10000, 0.0065, 75]
    saved.write_text("<html>blocked</html>")
    with pytest.raises(SystemExit) as caught:
        main(["brackets", "--from", str(saved), "--out", str(out)])
    assert caught.value.code == 2 and "leverageBracket.json" in capsys.readouterr().err


def test_venue_tiers_become_engine_tables_and_unusable_ones_are_refused():
    found = [tiers.Tier(0, 2_000_000, 0.005, 0, 100), tiers.Tier(2_000_000, 4_000_000, 0.01, 10_000, 50)]
    meta = {tiers.META_FIELD: tiers.encode(found), tiers.META_SOURCE_FIELD: "bybit risk-limit"}
    table = tiers.margin_table_of(meta, "bybit")
    assert table is not None and table.brackets == ((2_000_000.0, 0.005, 100.0), (4_000_000.0, 0.01, 50.0))
    assert table.source == "bybit risk-limit"
    assert tiers.margin_table_of({**meta, tiers.META_SOURCE_FIELD: "shipped default"}, "binance").source == "binance shipped default"
    assert tiers.margin_table_of({}, "bybit") is None
    broken = [tiers.Tier(0, 2_000_000, 0.02, 0, 100)]  # 2% maintenance at 100x: liquidated above its entry
    assert tiers.margin_table_of({tiers.META_FIELD: tiers.encode(broken)}, "okx") is None
    with pytest.raises(ValueError, match="mmr"):
        tiers.to_margin_table(broken, "okx")
