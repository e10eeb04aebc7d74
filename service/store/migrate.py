"""The migration runner: brings the keyspace to the newest schema version."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import uuid
from dataclasses import dataclass
from types import ModuleType

from redis.asyncio import Redis

import migrations
from service.store import keys

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_\w+$")
LOCK_TTL_MS = 60_000


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    description: str
    module: ModuleType


class MigrationError(RuntimeError):
    pass


def discover() -> list[Migration]:
    """All migrations in ``migrations/``, in version order."""
    found: list[Migration] = []
    for info in pkgutil.iter_modules(migrations.__path__):
        match = _NAME.match(info.name)
        if not match:
            continue
        module = importlib.import_module(f"migrations.{info.name}")
        version = int(match.group(1))
        if getattr(module, "VERSION", None) != version:
            raise MigrationError(f"migrations/{info.name}.py: VERSION must be {version}")
        found.append(Migration(version, info.name, getattr(module, "DESCRIPTION", ""), module))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must run 1..N without gaps, found {versions}")
    return found


async def current_version(redis: Redis) -> int:
    raw = await redis.get(keys.SCHEMA_VERSION)
    return int(raw) if raw is not None else 0


async def migrate(redis: Redis) -> list[Migration]:
    """Apply every pending migration in order; returns those applied.

    A lease guards the run so that two processes starting together do not
    migrate at once; the loser waits for nothing and applies nothing.
    """
    pending_all = discover()
    token = uuid.uuid4().hex
    if not await redis.set(keys.MIGRATION_LOCK, token, nx=True, px=LOCK_TTL_MS):
        log.info("another process is migrating; skipping")
        return []
    applied: list[Migration] = []
    try:
        version = await current_version(redis)
        newest = pending_all[-1].version if pending_all else 0
        if version > newest:
            raise MigrationError(f"store schema version {version} is newer than this code ({newest}); upgrade liqmap")
        for migration in pending_all:
            if migration.version <= version:
                continue
            log.info("applying migration %04d %s", migration.version, migration.name)
            await migration.module.up(redis)
            await redis.set(keys.SCHEMA_VERSION, migration.version)
            applied.append(migration)
    finally:
        if await redis.get(keys.MIGRATION_LOCK) == token.encode():
            await redis.delete(keys.MIGRATION_LOCK)
    return applied
