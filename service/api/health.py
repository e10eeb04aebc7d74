"""Liveness."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from service.migrate import current_version
from service.schemas import Health
from service.store import Store


@get("/health", operation_id="health", tags=["operations"])
async def health(store: NamedDependency[Store]) -> Health:
    """The process is up and can reach its store."""
    await store.ping()
    return Health(status="ok", store="reachable", schema_version=await current_version(store.redis))
