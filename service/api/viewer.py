"""The web viewer: ``/`` serves the page, ``/static/...`` its script and style, all from the package.

The page is a plain client of the public API (markets, models, latest frame, stream);
nothing here reads the store. No build step and no CDN: it works offline.
"""

from __future__ import annotations

from pathlib import Path

from litestar import get
from litestar.datastructures import CacheControlHeader
from litestar.handlers import BaseRouteHandler
from litestar.response import File
from litestar.router import Router
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Revalidate every time (cheap, by ETag): a new release is seen on the next load.
REVALIDATE = CacheControlHeader(no_cache=True)


@get("/", include_in_schema=False, cache_control=REVALIDATE, sync_to_thread=False)
def viewer_page() -> File:
    """The heatmap viewer."""
    return File(STATIC_DIR / "index.html", content_disposition_type="inline", media_type="text/html; charset=utf-8")


def viewer_routes() -> list[BaseRouteHandler | Router]:
    """The page and its assets, for the app's route handlers."""
    return [viewer_page, create_static_files_router(path="/static", directories=[STATIC_DIR], cache_control=REVALIDATE, include_in_schema=False)]
