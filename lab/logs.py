"""The lab's long-lived logs (brokers, hosts' consoles): appended to across restarts and boots, so a broker's restart
in a test keeps what it logged before, and `lab down` keeps them for a look afterwards. On a machine that keeps its
labs for days they would only grow (a broker's log passed 100 MB in two days of suite runs), so a log past KEEP_BYTES
is moved aside to NAME.1, replacing the one before, when its process starts again: at most two generations."""

from __future__ import annotations

from pathlib import Path

KEEP_BYTES = 64 * 2**20


def rotated_if_large(path: Path, keep_bytes: int = KEEP_BYTES) -> Path:
    """`path`, its directory made; moved aside to NAME.1 first when it holds more than `keep_bytes`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size > keep_bytes:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    return path
