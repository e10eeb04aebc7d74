"""The browser the e2e tests drive: Debian's headless chromium, installed when missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ENSURE_CHROMIUM = Path(__file__).resolve().parent / "ensure_chromium.sh"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium, installed by tests/e2e/ensure_chromium.sh when missing."""
    try:
        done = subprocess.run(["bash", str(ENSURE_CHROMIUM)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.skip("installing chromium took longer than 15 minutes")
    if done.returncode != 0:
        pytest.skip(f"chromium cannot be installed here: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1]
