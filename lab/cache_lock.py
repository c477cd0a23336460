"""One builder at a time for an entry of the lab's shared cache (KGW_LAB_CACHE, /var/cache/kgw-lab).

Two lab instances come up at once when the suite runs on two workers (tests/workers.py): on a machine whose cache is
cold, both would debootstrap into the same root file system or resolve the same jars into one directory. The
second waits here for the first and then finds the entry complete.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from .layout import CACHE_DIR


@contextmanager
def cache_lock(entry: str) -> Iterator[None]:
    """Hold the cache entry's lock (released when the process ends, however it ends)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f".{entry}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
