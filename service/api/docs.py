"""The API documentation pages (Swagger UI at ``/docs``, Redoc at ``/docs/redoc``) with their
scripts, styles and icon served from an installed package (``drf-spectacular-sidecar``, which
bundles the released dist files of both): no CDN, the pages work offline."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

from service.api.openapi import JsonDocument, RedocDocument, SwaggerDocument

ASSETS_PATH = "/docs/assets"
ASSETS_DIR = Path(str(resources.files("drf_spectacular_sidecar") / "static" / "drf_spectacular_sidecar"))
# The files change only with the package: a day in caches, then revalidated by ETag.
CACHE = CacheControlHeader(max_age=86_400)


# The pages may load nothing from elsewhere: Redoc's bundle still reaches for its maker's logo on
# a CDN (hidden when it fails), which this keeps the browser from even asking for. Inline script
# and styles are the pages' own (the schema, styled components); Redoc searches in a blob worker.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def docs_render_plugins() -> list[OpenAPIRenderPlugin]:
    """Swagger UI at ``/docs`` (and ``/docs/swagger``), Redoc at ``/docs/redoc``, loading only local assets;
    the document itself at ``/docs/openapi.json``, all three finished by :func:`service.api.openapi.finish_document`."""
    swagger = f"{ASSETS_PATH}/swagger-ui-dist"
    # The plugins' one slot for tags in the page's head: the icon, and the policy above.
    favicon = (
        f"<link rel='icon' type='image/png' href='{swagger}/favicon-32x32.png'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
    )
    return [
        SwaggerDocument(
            path=["/", "/swagger"],
            js_url=f"{swagger}/swagger-ui-bundle.js",
            css_url=f"{swagger}/swagger-ui.css",
            standalone_preset_js_url=f"{swagger}/swagger-ui-standalone-preset.js",
            favicon=favicon,
        ),
        RedocDocument(path="/redoc", js_url=f"{ASSETS_PATH}/redoc/bundles/redoc.standalone.js", google_fonts=False, favicon=favicon),
        JsonDocument(),
    ]


def docs_assets_router() -> Router:
    return create_static_files_router(path=ASSETS_PATH, directories=[ASSETS_DIR], cache_control=CACHE, include_in_schema=False, name="docs-assets")
