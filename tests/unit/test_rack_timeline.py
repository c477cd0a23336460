"""librdkafka's statistics timeline and the consumers' count as the rack-aware restart test reads them
(tests/e2e/rack_timeline.py, rack_clients.py): windows, the latest second's reads, pipes read while the writer runs."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from tests.e2e.rack_clients import Count
from tests.e2e.rack_timeline import PipeLines, reading_from, recent, samples, share, window


def sample(t: float, **rxbytes: float) -> dict:
    return {"t": t, "rxbytes": {k.lstrip("b"): v for k, v in rxbytes.items()}, "consumed": 0, "fetching": {}}


# broker 3 away from 10 s to 20 s: the consumer reads 250 kB/s from the others, then from broker 3 again from 22 s
TIMELINE = [sample(t, b1=0, b2=0, b3=250_000 * t) for t in (8.0, 8.5, 9.0, 9.5, 10.0)] + \
           [sample(t, b1=125_000 * (t - 10), b2=125_000 * (t - 10), b3=2_500_000) for t in (15.0, 20.0)] + \
           [sample(t, b1=1_250_000, b2=1_250_000, b3=2_500_000 + 250_000 * max(0.0, t - 22)) for t in (21.0, 22.0, 22.5, 23.0)]


def test_samples_skip_the_result_line():
    lines = [json.dumps(s) for s in TIMELINE[:2]] + [json.dumps({"consumed": 5, "rxbytes": {}})]
    assert samples(lines) == TIMELINE[:2]


def test_a_window_counts_bytes_between_the_samples_at_or_before_its_ends():
    assert window(TIMELINE, 8.0, 10.0) == {"1": 0, "2": 0, "3": 500_000}
    assert window(TIMELINE, 10.2, 20.0) == {"1": 1_250_000, "2": 1_250_000, "3": 0}
    assert window(TIMELINE, 23.0, 99.0) == {"1": 0, "2": 0, "3": 0}  # nothing after the last sample


def test_recent_needs_the_span_covered():
    assert recent(TIMELINE[:1], 1.0) is None
    assert recent(TIMELINE[:3], 1.0) == ({"1": 0, "2": 0, "3": 250_000}, 1.0)


def test_reading_from_the_broker_only_once_its_latest_second_says_so():
    broker = 3
    assert reading_from(TIMELINE[:5], broker, 0.99, 100_000)
    assert not reading_from(TIMELINE[:7], broker, 0.99, 100_000)  # away: the others' bytes
    assert not reading_from(TIMELINE[:9], broker, 0.99, 100_000)  # back in Metadata, no bytes yet (21 s to 22 s)
    assert reading_from(TIMELINE, broker, 0.99, 100_000)  # 22 s to 23 s: 250 kB from broker 3
    assert not reading_from(TIMELINE, broker, 0.99, 300_000)  # too little to tell
    assert share({"1": 1, "3": 99}, 3) == 0.99 and share({}, 3) == 0.0


def test_a_writer_of_more_than_a_pipe_holds_is_not_stalled():
    """200 kB through a pipe (capacity 64 KiB) while nobody waits on the process: it exits on its own."""
    writer = subprocess.Popen([sys.executable, "-c", "import sys\nfor i in range(2000): print('x' * 99, flush=True)"],
                              stdout=subprocess.PIPE, text=True)
    lines = PipeLines(writer.stdout)
    assert writer.wait(timeout=20) == 0
    assert lines.text().splitlines() == ["x" * 99] * 2000


def test_a_consumer_says_when_its_deadline_not_its_count_ended_it(tmp_path):
    count_file = tmp_path / "count"
    ended = Count(argparse.Namespace(count=None, count_file=str(count_file), max_s=0.0))
    ended.add(b"0000001:x")
    assert ended.done() and ended.result()["deadline_reached"]  # no count yet: only the deadline ended it
    count_file.write_text("1")
    counted = Count(argparse.Namespace(count=None, count_file=str(count_file), max_s=60.0))
    assert not counted.done()
    counted.add(b"0000001:x")
    assert counted.done() and not counted.result()["deadline_reached"]
