"""The molecule soak's verdict (molecule/shared/kafka_client_check.py, Soak.problems) on made-up client outcomes:
every acknowledged record consumed exactly once passes, and each kind of repeat fails under --exactly-once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

CHECK = Path(__file__).parents[2] / "molecule" / "shared" / "kafka_client_check.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("kafka_client_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clean_soak(check, records: int = 200):
    """A soak where every record sent was acknowledged and consumed once, from partition (n % 6) at offset n // 6."""
    soak = check.Soak("198.18.0.1:6969", "t", rate=100)
    soak.sent = records
    soak.acked = {f"s{n}" for n in range(records)}
    soak.commits_ok = 3
    for n in range(records):
        soak.delivered(f"s{n}", n % 6, n // 6)
    return soak


def test_every_record_once_passes(check):
    assert clean_soak(check).problems(exactly_once=True) == []


def test_a_record_read_again_at_its_offset_fails_even_after_the_consumer_lost_its_partitions(check):
    soak = clean_soak(check)
    soak.lost(None, [object(), object()])  # the group took two partitions away; the re-read is still a repeat
    soak.delivered("s7", 1, 1)
    problems = soak.problems(exactly_once=True)
    assert soak.duplicates() == (["s7"], [])
    assert len(problems) == 1 and "1 messages consumed more than once at the same offset" in problems[0], problems
    assert "told 2 partitions were lost" in problems[0]


def test_a_record_stored_twice_in_the_log_fails(check):
    soak = clean_soak(check)
    soak.delivered("s7", 1, 40)  # the same value at a second offset: the log holds it twice
    problems = soak.problems(exactly_once=True)
    assert soak.duplicates() == ([], ["s7"])
    assert problems == ["1 messages stored at more than one offset, e.g. ['s7']"]


def test_repeats_are_allowed_without_exactly_once(check):
    soak = clean_soak(check)
    soak.delivered("s7", 1, 1)
    soak.delivered("s8", 2, 40)
    assert soak.problems(exactly_once=False) == []


def test_a_lost_record_and_a_missing_commit_fail(check):
    soak = clean_soak(check)
    soak.acked.add("s999")
    soak.sent += 1
    soak.commits_ok = 0
    problems = soak.problems(exactly_once=True)
    assert "no commit was reported to on_commit" in problems
    assert "1 acknowledged messages never consumed, e.g. ['s999']" in problems



def test_the_soak_says_it_flows_once_at_its_first_consumed_record(check, tmp_path):
    """The ready file the scenarios wait for before a disturbance: touched when a record has gone through, not when
    the clients merely started, and once."""
    ready = tmp_path / "soak.ready"
    flowing = []
    soak = check.Soak("198.18.0.1:6969", "t", rate=100, on_flowing=lambda: (flowing.append(1), ready.touch()))
    assert not ready.exists()
    soak.delivered("s0", 0, 0)
    soak.delivered("s1", 1, 0)
    assert ready.exists() and flowing == [1]
