"""Where the recorded real data lives (../shared/data/real beside the repository) and how tests that need it behave.

Without the data a test that needs it is skipped on a developer's machine, but
fails under ``CI=true``: a CI run must not pass by skipping what it was meant to check.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
BTC_SET = REAL / "btc-binance5m-coinglass-liq"
MULTICOIN_SET = REAL / "multicoin-binance1h-coinglass4h"


def needs_real_data(path: Path) -> pytest.MarkDecorator:
    """Skip when ``path`` is missing, unless ``CI=true`` (then the test runs and fails on the missing file)."""
    return pytest.mark.skipif(
        not path.exists() and os.environ.get("CI", "").lower() != "true",
        reason=f"real data not found at {path} (../shared/data/real beside the repository)",
    )
