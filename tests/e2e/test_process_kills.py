"""SIGKILL of ``serve`` and of the roles it runs, at random moments, 20 times over.

``serve`` runs the API in its own process and the ``collect`` and ``worker`` roles as child
processes, over the fake exchange and a valkey-server this test runs. Each turn kills one of
them with SIGKILL a random time after the previous kill (during start-up, backfill, frame
writes, serving): serve is then started again, a killed child is restarted by serve, the
children of a killed serve stop by themselves. After every kill the store holds no half-written
row chunk, no frame history entry without its record, no newest frame that is cut or whose
record is missing; at the end one more serve fills every bar the kills made it miss.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis

from service.fakeexchange.server import FakeExchange, fake_exchange_in_thread
from service.store import chunks, keys
from service.store.chunks import KINDS
from service.store.records import decode_record, digest
from service.wire.packed import unpack_frame
from tests.conftest import free_port
from tests.processes import Roles, StoreProcess, children_of, fake_deployment_settings, stored_rows, wait_until

pytestmark = pytest.mark.e2e

SEED = 7
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
VENUE_MARKETS = [(venue, symbol) for venue in ("binance", "bybit", "okx") for symbol in SYMBOLS]
MINUTE = 60_000
KILLS = 20


def proc(pid: int, name: str) -> bytes:
    """``/proc/<pid>/<name>``; empty once the process is gone (a child may end while we look)."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":  # a zombie has exited; its parent (init or serve) reaps it
            return False
    return True


def newest_frames(client: redis.Redis) -> dict[str, bytes]:
    """The summary of every market's newest 12h frame (its id and when it was built)."""
    out = {}
    for exchange, symbol in VENUE_MARKETS:
        summary = client.hget(keys.frame_latest(exchange, symbol, "model1", "12h"), "meta")
        if summary is None:
            return {}
        out[f"{exchange}:{symbol}"] = summary
    return out


def check_store_whole(client: redis.Redis) -> int:
    """Fail on anything half-written; returns how many newest frames were checked."""
    frames = 0
    for market in client.smembers(keys.MARKETS):
        exchange, symbol = keys.split_market_id(market.decode())
        for kind in KINDS.values():
            for start, value in client.hgetall(keys.chunk_index(kind.name, exchange, symbol)).items():
                info = chunks.parse_index_value(value)
                rows = chunks.decode(client.get(keys.chunk(kind.name, exchange, symbol, int(start))), kind.dtype)
                assert len(rows) == info.rows and info.rows > 0, (exchange, symbol, kind.name, int(start))
                assert (int(rows["ts_ms"][0]), int(rows["ts_ms"][-1])) == (info.first_ms, info.last_ms)
                assert bool(np.all(np.diff(rows["ts_ms"]) >= 0))
        prefix = f"{keys.PREFIX}:{{{exchange}:{symbol}}}"
        for history_key in client.scan_iter(match=f"{prefix}:frames:*"):
            model, range_name = history_key.decode().rsplit(":", 2)[-2:]
            records = client.hgetall(keys.frame_records(exchange, symbol, model, range_name))
            listed = {member for member in client.zrange(history_key, 0, -1)}
            assert listed == set(records), (exchange, symbol, model, range_name)
            latest = client.hgetall(keys.frame_latest(exchange, symbol, model, range_name))
            if not latest:
                continue
            assert set(latest) == {b"id", b"packed", b"meta"}, (exchange, symbol, set(latest))
            record = decode_record(records[latest[b"id"]])  # its record is there
            assert digest(latest[b"packed"]) == record.digest
            frame = unpack_frame(latest[b"packed"])
            assert frame.data_until_ms == record.data_until and record.id == latest[b"id"].decode()
            frames += 1
    return frames


def test_serve_and_its_roles_killed_at_random_moments_leave_the_store_whole_and_resume(tmp_path: Path) -> None:
    rng = random.Random(15)
    store = StoreProcess(tmp_path / "store")
    store.start()
    port = free_port()
    client = store.client()
    with fake_exchange_in_thread(seed=SEED, symbols=SYMBOLS) as fake:
        settings = fake_deployment_settings(store.url, fake, SYMBOLS, lease_ttl_s=3.0, job_timeout_s=20.0, workers=1)
        roles = Roles(settings, tmp_path / "logs")
        kills: list[str] = []
        try:
            serve = roles.start("serve", "serve", "--port", str(port))
            wait_until("the first frames", lambda: newest_frames(client), 90)
            observations = sum(len(stored_rows(client, "oi", *market)) for market in VENUE_MARKETS)
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.3, 2.5))
                family = children_of(serve.pid)
                roles_of_serve = [pid for pid in family if b"service.cli" in proc(pid, "cmdline")]
                target = rng.choice(["serve", "serve", *(["role"] * len(roles_of_serve))])
                if target == "serve":
                    roles.kill("serve")
                    wait_until("the roles of a killed serve stopping by themselves", lambda family=family: gone(family), 15, every_s=0.1)
                    kills.append("serve")
                else:
                    victim = rng.choice(roles_of_serve)
                    role = proc(victim, "cmdline").split(b"\0")
                    if len(role) > 3:  # else it ended meanwhile (serve restarts it)
                        kills.append(role[3].decode())
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(victim, signal.SIGKILL)
                check_store_whole(client)
                if not roles.alive("serve"):
                    serve = roles.restart("serve")
            assert "serve" in kills and len(set(kills)) == 3, kills
            # The kills fell among writes: the collectors stored open interest between them (every second).
            assert sum(len(stored_rows(client, "oi", *market)) for market in VENUE_MARKETS) > observations

            # One more serve, left running: it fills what the kills made it miss.
            if not roles.alive("serve"):
                serve = roles.restart("serve")
            last_closed = (int(time.time() * 1000) // MINUTE - 1) * MINUTE

            def caught_up() -> bool:
                return all(len(rows := stored_rows(client, "candles", *market)) and int(rows["ts_ms"][-1]) >= last_closed for market in VENUE_MARKETS)

            wait_until("every bar up to the last closed one", caught_up, 60)
            with httpx.Client(timeout=5) as http:

                def fresh_frames() -> bool:
                    try:
                        return all(
                            (r := http.get(f"http://127.0.0.1:{port}/v1/heatmaps/{m[0]}/{m[1]}/latest", params={"range": "12h"})).status_code == 200
                            and r.json()["data_until"] > last_closed
                            for m in VENUE_MARKETS
                        )
                    except httpx.TransportError:  # the restarted serve's API is not listening yet
                        return False

                wait_until("frames of the last closed bar", fresh_frames, 60)
            truth = FakeExchange(SEED, SYMBOLS)
            for venue, symbol in VENUE_MARKETS:
                rows = stored_rows(client, "candles", venue, symbol)
                expected = truth[venue].market.rows(symbol, int(rows["ts_ms"][0]), int(rows["ts_ms"][-1]) + MINUTE).candles
                assert rows["ts_ms"].tolist() == expected["ts_ms"].tolist(), (venue, symbol)  # no hole, nothing twice
            assert check_store_whole(client) >= len(VENUE_MARKETS)
            print(f"{KILLS} kills: {', '.join(kills)}")

            # Stopped as an orchestrator stops it (SIGTERM): its roles stop with it, exit 0.
            family = children_of(serve.pid)
            # The roles serve started return freed memory to the system (serve set glibc's malloc so; service.allocator).
            environments = [proc(pid, "environ").split(b"\0") for pid in family if b"service.cli" in proc(pid, "cmdline")]
            assert environments and all(b"MALLOC_ARENA_MAX=2" in env for env in environments if env != [b""])
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(30) == 0
            wait_until("serve's roles stopped with it", lambda: gone(family), 10, every_s=0.1)
        finally:
            roles.stop()
            client.close()
            store.stop()
