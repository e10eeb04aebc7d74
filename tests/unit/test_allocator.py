"""glibc malloc settings: memory freed by the process goes back to the system, in this process
and in those it starts, unless the operator chose otherwise."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from service.allocator import SETTINGS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

# Frame-sized blocks (512 KiB) freed while small objects allocated between them live on: what a
# process that builds and serves frames does. Reports how much resident memory the freed blocks
# still hold, and the MALLOC_* variables a process started afterwards sees.
SCENARIO = """
import json, os, subprocess, sys
if sys.argv[1] == "tuned":
    from service.allocator import return_freed_memory
    return_freed_memory()

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

block = bytearray(1 << 20)
del block  # one large block freed (by default, the threshold for a block of its own rises to it)
before = rss()
big, small = [], []
for _ in range(200):
    big.append(bytearray(512 * 1024))
    small.append(bytearray(600))
del big
child = subprocess.run([sys.executable, "-c", "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('MALLOC_')}))"], capture_output=True, text=True, check=True)
print(json.dumps({"held_mb": (rss() - before) / 2**20, "child_env": json.loads(child.stdout)}))
"""


def run(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", SCENARIO, mode], capture_output=True, text=True, check=True, cwd=ROOT, env={**clean, **env}).stdout
    return json.loads(out)


def test_freed_frame_sized_blocks_go_back_to_the_system_and_started_processes_do_the_same() -> None:
    default = run("default")
    tuned = run("tuned")
    assert default["held_mb"] > 50  # glibc's defaults keep the 100 MB freed (what the setting is for)
    assert tuned["held_mb"] < 10
    assert default["child_env"] == {}
    assert tuned["child_env"] == {name: str(value) for name, value, _ in SETTINGS}


def test_the_operators_own_settings_win() -> None:
    tuned = run("tuned", MALLOC_ARENA_MAX="4")
    assert tuned["child_env"]["MALLOC_ARENA_MAX"] == "4"
    assert tuned["child_env"]["MALLOC_MMAP_THRESHOLD_"] == str(128 * 1024)
