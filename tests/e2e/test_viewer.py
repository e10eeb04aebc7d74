"""The web viewer in a real browser (Debian's headless chromium) against a running ``liqmap demo``.

Opens the page, switches symbol and range, checks the canvas is drawn and the tooltip
tells the hovered cell's USD as the frame says, and waits for a new frame to arrive
over the server-sent event stream. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.conftest import CHROMIUM_FLAGS
from tests.e2e.test_demo import _wait_for_frame

pytestmark = pytest.mark.e2e

# A new 1m bar closes every minute; with a 5 s collect interval its frame follows within seconds.
NEW_FRAME_TIMEOUT_S = 80


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``liqmap demo`` collecting every 5 s, on a free port; yields its base URL."""
    workdir = tmp_path_factory.mktemp("viewer-demo")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("LIQMAP_")}
    env["LIQMAP_COLLECT_INTERVAL_S"] = "5"
    port = free_port()
    log_path = workdir / "demo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "liqmap"), "demo", "--port", str(port), "--data-dir", str(workdir / "store")],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_frame(base, process)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def page(chromium_path: str, artifacts_dir: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        # Playwright starts the browser with a fresh profile directory of its own.
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 860})
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
        finally:
            browser.close()
    assert errors == [], f"the page raised: {errors}"


def _wait_ready(page, **expected: str) -> str:
    """Wait until the page shows a frame matching ``expected`` (body data attributes); its id."""
    selector = "body[data-state=ready]" + "".join(f'[data-{name}="{value}"]' for name, value in expected.items())
    page.wait_for_selector(selector, state="attached", timeout=30_000)
    return page.evaluate("document.body.dataset.frameId")


CANVAS_SUMMARY = """() => {
  const canvas = document.getElementById("heatmap");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  let yellow = 0, hash = 0;
  for (let i = 0; i < data.length; i += 4 * 7) {
    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
    colours.add((r << 16) | (g << 8) | b);
    if (r > 225 && g > 205 && b < 80) yellow++;
    hash = (hash * 31 + r + 7 * g + 13 * b) | 0;
  }
  return {colours: colours.size, yellow, hash, width: canvas.width, height: canvas.height};
}"""


def _usd(value: float) -> str:
    return f"${round(value):,}"


def test_viewer_draws_switches_hovers_and_updates_live(demo: str, page, artifacts_dir: Path) -> None:
    page.goto(f"{demo}/")
    _wait_ready(page, symbol="BTCUSDT", range="24h")
    first = page.evaluate(CANVAS_SUMMARY)
    assert first["colours"] > 50, f"the canvas should show a heatmap, not {first['colours']} colours"
    assert first["yellow"] > 0, "the largest cells should be drawn yellow"
    assert page.locator("#clusters tbody tr").count() > 0
    assert "model1 1.0.0" in page.locator("#frame-info").inner_text()
    assert page.locator("#synthetic-note").is_visible(), "the demo's simulated data should be said to be synthetic"
    page.screenshot(path=str(artifacts_dir / "viewer-btc-24h.png"))

    page.select_option("#symbol", "ETHUSDT")
    _wait_ready(page, symbol="ETHUSDT", range="24h")
    assert page.evaluate(CANVAS_SUMMARY)["hash"] != first["hash"], "another symbol should draw another picture"
    page.select_option("#range", "12h")
    frame_id = _wait_ready(page, symbol="ETHUSDT", range="12h")
    assert "#exchange=binance&symbol=ETHUSDT&model=model1&range=12h" in page.url

    frame = httpx.get(f"{demo}/v1/heatmaps/binance/ETHUSDT/frames/{frame_id}", timeout=10).json()
    assert frame["range"] == "12h"
    box = page.locator("#heatmap").bounding_box()
    assert box is not None
    seen: list[tuple[int, int]] = []
    nonzero = 0
    tooltip = page.locator("#tooltip")
    for fx in (0.25, 0.5, 0.75, 0.85):
        for fy in (0.2, 0.35, 0.5, 0.65, 0.8):
            page.mouse.move(box["x"] + box["width"] * fx * 0.85, box["y"] + box["height"] * fy)
            tooltip.wait_for(state="visible", timeout=5_000)
            column, row = int(tooltip.get_attribute("data-column")), int(tooltip.get_attribute("data-row"))
            long, short = frame["long"][column][row], frame["short"][column][row]
            shown = tooltip.inner_text()
            assert _usd(long) in shown and _usd(short) in shown, f"cell ({column}, {row}): {shown!r}"
            seen.append((column, row))
            nonzero += long + short > 0
    assert nonzero > 0, "some hovered cell should hold liquidation levels"
    columns = [column for column, _ in seen]
    assert columns == sorted(columns) and columns[0] < columns[-1], "moving right should go forward in time"
    assert seen[0][1] > seen[4][1], "moving down should go down in price"
    page.screenshot(path=str(artifacts_dir / "viewer-eth-12h-hover.png"))

    # A new frame arrives over the stream and is drawn.
    page.wait_for_function(
        "id => Number(document.body.dataset.streamEvents) > 0 && document.body.dataset.frameId !== id && document.body.dataset.state === 'ready'",
        arg=frame_id,
        timeout=NEW_FRAME_TIMEOUT_S * 1000,
    )
    assert page.locator("#live").get_attribute("data-status") == "live"
    shown_id = page.evaluate("document.body.dataset.frameId")
    shown = httpx.get(f"{demo}/v1/heatmaps/binance/ETHUSDT/frames/{shown_id}", timeout=10).json()
    assert shown["data_until"] > frame["data_until"]
    page.screenshot(path=str(artifacts_dir / "viewer.png"))


def test_viewer_assets_are_served_from_the_package(demo: str, artifacts_dir: Path) -> None:
    page = httpx.get(f"{demo}/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text, "no asset from elsewhere"
    for asset in ("/static/viewer.js", "/static/viewer.css"):
        response = httpx.get(f"{demo}{asset}", timeout=10)
        assert response.status_code == 200 and asset.rsplit("/", 1)[1] in page.text
        assert "https://" not in response.text
    png = httpx.get(f"{demo}/v1/heatmaps/binance/BTCUSDT/latest.png", params={"range": "24h"}, timeout=30)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    (artifacts_dir / "heatmap-btc-24h.png").write_bytes(png.content)
