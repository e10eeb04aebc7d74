"""The served OpenAPI document, finished where the generated one says less (or other) than the API does.

* A query parameter cannot be null: absent is how a client sends none. The generator writes an
  optional parameter as ``string | null``, which tells clients (and fuzzers) that ``?x=null``
  is accepted; the document says ``string`` and leaves it optional.
* Routes with ``format=msgpack`` answer ``application/msgpack`` too: the document says so.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin

MSGPACK = "application/msgpack"
MSGPACK_CONTENT = {"schema": {"type": "string", "format": "binary", "description": "The same object as the JSON answer, in msgpack"}}


def finish_document(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` finished in place (idempotent), as described above."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                _finish_operation(operation)
    return document


def _finish_operation(operation: dict[str, Any]) -> None:
    msgpack = False
    for parameter in operation.get("parameters", []):
        if parameter.get("in") != "query":
            continue
        schema = parameter.get("schema", {})
        alternatives = [alt for alt in schema.get("oneOf", ()) if alt.get("type") != "null"]
        if "oneOf" in schema and len(alternatives) == 1:
            del schema["oneOf"]
            schema.update(alternatives[0])
        if isinstance(schema.get("type"), list):
            types = [t for t in schema["type"] if t != "null"]
            schema["type"] = types[0] if len(types) == 1 else types
        if "enum" in schema:
            schema["enum"] = [value for value in schema["enum"] if value is not None]
        if parameter.get("name") == "format" and "msgpack" in schema.get("enum", ()):
            msgpack = True
    ok = operation["responses"].get("200")
    if msgpack and ok is not None:
        ok.setdefault("content", {}).setdefault(MSGPACK, MSGPACK_CONTENT)


class _Finished:
    """A render plugin that renders the finished document."""

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, finish_document(openapi_schema))  # type: ignore[misc]


class JsonDocument(_Finished, JsonRenderPlugin):
    pass


class SwaggerDocument(_Finished, SwaggerRenderPlugin):
    pass


class RedocDocument(_Finished, RedocRenderPlugin):
    pass
