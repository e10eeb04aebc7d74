"""The ``liqmap`` command as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.store.migrate import discover

pytestmark = pytest.mark.integration

LIQMAP = str(Path(sys.executable).parent / "liqmap")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("LIQMAP_")}
    return subprocess.run([LIQMAP, *args], capture_output=True, text=True, timeout=60, env={**base, **(env or {})})


def test_migrate_against_a_server_then_again_is_a_no_op(redis_url: str, redis) -> None:  # noqa: ANN001
    first = run("migrate", env={"REDIS_URL": redis_url})
    assert first.returncode == 0, first.stderr
    newest = discover()[-1].version
    assert "applied 0001" in first.stdout and f"applied {newest:04d}" in first.stdout and f"schema version {newest}" in first.stdout
    second = run("migrate", env={"REDIS_URL": redis_url})
    assert second.returncode == 0 and "applied" not in second.stdout


def test_migrate_on_the_embedded_store(tmp_path: Path) -> None:
    result = run("migrate", env={"LIQMAP_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert f"schema version {discover()[-1].version}" in result.stdout
    assert (tmp_path / "valkey" / "appendonlydir").is_dir()


def test_a_bad_setting_names_the_variable(tmp_path: Path) -> None:
    result = run("migrate", env={"LIQMAP_PORT": "eighty", "LIQMAP_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "LIQMAP_PORT" in result.stderr


def test_demo_venues_choose_the_synthetic_venues() -> None:
    from service.cli import demo_overrides
    from service.settings import Settings

    def settings(markets: int | None, venues: str | None) -> Settings:
        return Settings.from_env(environ={}, **demo_overrides(markets, venues))

    default = settings(None, None)
    assert default.synthetic_venues == ("binance", "bybit", "okx") and default.aggregate
    one = settings(200, "synthetic")
    assert (one.synthetic_markets, one.synthetic_venues, one.aggregate) == (200, (), False)
    two = settings(5, " Binance, OKX ")
    assert (two.synthetic_markets, two.synthetic_venues, two.aggregate) == (5, ("binance", "okx"), True)
