"""Resident memory that follows what is in use: glibc malloc settings for liqmap's processes.

Two defaults of glibc's malloc make a long-running service that allocates frame-sized blocks
(numpy grids, encoded bodies of 100 KB and more) from several threads hold memory it no longer
uses, in steps that never come back down:

* the threshold above which a block gets its own mapping (returned to the system when freed)
  rises to the largest such block ever freed, up to 32 MB; blocks below it come from heaps,
  which give memory back only from their top;
* each thread that allocates while another does gets a heap of its own, up to 8 per core.

``bench/load.py`` shows it (README, "Load"): under 64 connections the API's and the embedded
store's resident memory each rose by about a seventh in one step at the first bar close (new
frames built and served while the old ones were still referenced) and stayed there. With a
fixed threshold of 128 KiB and two heaps, freed blocks go back and both stay flat.

:func:`return_freed_memory` sets them for this process (``mallopt``) and, through the
environment, for every process it starts (the embedded store, the roles, engine processes).
An operator's own ``MALLOC_*`` variables win. Nothing happens on a C library other than glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# Environment variable (read by glibc as a process starts), value, and mallopt's parameter.
SETTINGS = (
    ("MALLOC_MMAP_THRESHOLD_", 128 * 1024, -3),  # M_MMAP_THRESHOLD: fixed, so it never rises
    ("MALLOC_TRIM_THRESHOLD_", 128 * 1024, -1),  # M_TRIM_THRESHOLD: free heap tops past this
    ("MALLOC_ARENA_MAX", 2, -8),  # M_ARENA_MAX
)


def return_freed_memory() -> dict[str, str]:
    """Apply :data:`SETTINGS` where the environment does not set them; returns what was set."""
    if platform.libc_ver()[0] != "glibc":
        return {}
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    applied = {}
    for name, value, parameter in SETTINGS:
        if name in os.environ:
            continue
        if libc.mallopt(parameter, value) == 1:
            os.environ[name] = str(value)
            applied[name] = str(value)
    return applied
