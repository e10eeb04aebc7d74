"""``liqmap brackets``: refresh the shipped Binance bracket tables from a saved endpoint response.

Save a response of the signed ``GET /fapi/v1/leverageBracket`` or of the keyless web
endpoint to a file; :func:`refresh_document` takes the listed symbols' tables from it
and dates them, :func:`format_document` writes them one bracket per line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import msgspec

from engine.models.margin import SHIPPED_BINANCE_FILE, MarginTable, shipped_binance_document
from service.collect.venues.binance import VENUE, parse_brackets
from service.collect.venues.errors import BadPayload
from service.collect.venues.parse import decode
from service.store.tiers import Tier

SHIPPED_PATH = Path(__file__).resolve().parents[3] / "engine" / "models" / SHIPPED_BINANCE_FILE


class SignedBracket(msgspec.Struct):
    notionalCap: float
    notionalFloor: float
    maintMarginRatio: float
    initialLeverage: float
    cum: float = 0.0


class SignedSymbolBrackets(msgspec.Struct):
    symbol: str
    brackets: list[SignedBracket]


_signed = msgspec.json.Decoder(list[SignedSymbolBrackets], strict=False)


def parse_signed_brackets(body: bytes) -> dict[str, list[Tier]]:
    """Tiers per symbol from the signed ``GET /fapi/v1/leverageBracket`` response."""
    out: dict[str, list[Tier]] = {}
    for entry in decode(_signed, body, VENUE, "leverageBracket"):
        ordered = sorted(entry.brackets, key=lambda b: b.notionalFloor)
        out[entry.symbol] = [Tier(b.notionalFloor, b.notionalCap, b.maintMarginRatio, b.cum, b.initialLeverage) for b in ordered]
    return out


def parse_any_brackets(body: bytes) -> dict[str, list[Tier]]:
    """Tiers per symbol from a saved response of the signed endpoint or of the keyless web endpoint."""
    stripped = body.lstrip()
    return parse_signed_brackets(body) if stripped.startswith(b"[") else parse_brackets(body)


def _rows(found: list[Tier], symbol: str) -> list[list[float]]:
    rows = [[tier.cap_usd, tier.mmr, tier.max_leverage] for tier in found]
    MarginTable.from_rows(rows)  # refuses a table the engine could not use, before anything is written
    if not rows:
        raise ValueError(f"{symbol}: no brackets in the response")
    return rows


def refresh_document(body: bytes, *, today: date, symbols: Iterable[str] = ()) -> dict[str, Any]:
    """The shipped document with the listed symbols' tables (and ``symbols``) taken from a saved response.

    Raises
    ------
    BadPayload
        The file is neither endpoint's format.
    ValueError
        A wanted symbol is missing from the response or its brackets are unusable.
    """
    found = parse_any_brackets(body)
    document = dict(shipped_binance_document())
    wanted = sorted(set(document["symbols"]) | set(symbols))
    missing = [symbol for symbol in wanted if symbol not in found]
    if missing:
        raise ValueError(f"the response has no brackets for {', '.join(missing)} (it has {len(found)} symbols)")
    document["symbols"] = {symbol: _rows(found[symbol], symbol) for symbol in wanted}
    document["as_of"] = today.isoformat()
    document["source"] = f"Binance's leverage brackets as one of its endpoints returned them, refreshed with `liqmap brackets` on {today.isoformat()}"
    return document


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def format_document(document: dict[str, Any]) -> str:
    """The document as stored: one bracket per line, whole numbers without a decimal point."""
    tables = {**document["symbols"], "default": document["default"]["brackets"]}
    compact = {name: [json.dumps([_number(v) for v in row]) for row in rows] for name, rows in tables.items()}
    head = {key: value for key, value in document.items() if key not in ("symbols", "default")}
    lines = ["{"]
    lines += [f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}," for key, value in head.items()]
    lines.append('  "symbols": {')
    symbols = list(document["symbols"])
    for index, symbol in enumerate(symbols):
        lines.append(f"    {json.dumps(symbol)}: [")
        lines.append(",\n".join(f"      {row}" for row in compact[symbol]))
        lines.append("    ]" + ("," if index < len(symbols) - 1 else ""))
    lines.append("  },")
    lines.append('  "default": {')
    lines.append(f'    "note": {json.dumps(document["default"]["note"], ensure_ascii=False)},')
    lines.append('    "brackets": [')
    lines.append(",\n".join(f"      {row}" for row in compact["default"]))
    lines.append("    ]")
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def run_brackets_command(args: Any) -> int:
    """``liqmap brackets --from FILE [--symbols A,B] [--out PATH]``: rewrite the shipped tables."""
    source = Path(args.from_)
    try:
        body = source.read_bytes()
        extra = [symbol.strip().upper() for symbol in (args.symbols or "").split(",") if symbol.strip()]
        document = refresh_document(body, today=date.today(), symbols=extra)
    except (OSError, ValueError, BadPayload) as exc:
        print(f"liqmap brackets: {source}: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else SHIPPED_PATH
    out.write_text(format_document(document), encoding="utf-8")
    print(f"wrote {out}: {', '.join(document['symbols'])} as of {document['as_of']}")
    return 0
