"""librdkafka's statistics timeline (rack_clients.py --timeline), read while the consumer runs: every sample is
{"t": wall-clock seconds, "rxbytes": {broker id: bytes received so far}, "consumed": ..., "fetching": ...}.

The pipes of a consumer are read as it writes them: a pipe left unread fills (64 KiB) and stalls the consumer in its
own print, which on a loaded machine left a whole measurement window without a byte.
"""

from __future__ import annotations

import json
import threading
from typing import IO


class PipeLines:
    """Every line a pipe carries, collected by a thread as they come."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def text(self, timeout_s: float = 10.0) -> str:
        """All of it, once the writer closed the pipe (its process exited)."""
        self._thread.join(timeout_s)
        return "\n".join(self.snapshot())


def samples(lines: list[str]) -> list[dict]:
    """The statistics samples among a consumer's lines (its last line, the result, has no "t")."""
    found = []
    for line in lines:
        if line.startswith('{"t"'):
            found.append(json.loads(line))
    return found


def window(timeline: list[dict], start: float, end: float) -> dict[str, float]:
    """librdkafka's received bytes per broker between two moments: the last sample at or before each."""
    def at(moment: float) -> dict[str, float]:
        earlier = [s for s in timeline if s["t"] <= moment]
        return earlier[-1]["rxbytes"] if earlier else {}

    first, last = at(start), at(end)
    return {broker: last[broker] - first.get(broker, 0) for broker in last}


def recent(timeline: list[dict], span_s: float) -> tuple[dict[str, float], float] | None:
    """Bytes per broker over the latest stretch of at least span_s between two samples, and its length; None until
    the timeline covers span_s."""
    if not timeline:
        return None
    last = timeline[-1]
    earlier = [s for s in timeline if s["t"] <= last["t"] - span_s]
    if not earlier:
        return None
    return window(timeline, earlier[-1]["t"], last["t"]), last["t"] - earlier[-1]["t"]


def share(rxbytes: dict[str, float], broker_id: int) -> float:
    """The share of the bytes received that came from one broker."""
    total = sum(rxbytes.values())
    return rxbytes.get(str(broker_id), 0) / total if total else 0.0


def reading_from(timeline: list[dict], broker_id: int, least_share: float, least_bytes: float,
                 span_s: float = 1.0) -> bool:
    """Over the latest span_s or more, the consumer received at least least_bytes, least_share of them from the
    broker."""
    latest = recent(timeline, span_s)
    if latest is None:
        return False
    rxbytes, _ = latest
    return sum(rxbytes.values()) >= least_bytes and share(rxbytes, broker_id) >= least_share
