"""The one scheduler of a collecting process (``demo``/``serve``), never one per API worker."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from service.collect.round import Collection

log = logging.getLogger(__name__)


def create_scheduler(collection: Collection, interval_s: float, job_timeout_s: float) -> AsyncIOScheduler:
    """A scheduler running one collect round every ``interval_s``, the first one at once.

    Call ``start()`` from inside the running event loop.
    """
    scheduler = AsyncIOScheduler(
        timezone=timezone.utc,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": max(1, int(interval_s))},
    )

    async def collect() -> None:
        try:
            async with asyncio.timeout(job_timeout_s):
                await collection.collect_once()
        except TimeoutError:
            log.error("collect round exceeded %.0f s and was cancelled", job_timeout_s)
        except asyncio.CancelledError:
            log.info("collect round cancelled: stopping")  # the scheduler shuts down; nothing to report
        except Exception:
            log.exception("collect round failed")

    scheduler.add_job(
        collect,
        "interval",
        seconds=interval_s,
        id="collect",
        next_run_time=datetime.now(timezone.utc),
    )
    return scheduler
