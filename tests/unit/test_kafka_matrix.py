"""lab.matrix (counting each e2e test for its client family, merging releases) and the page docs.generate writes
from its results file."""

from __future__ import annotations

from docs.generate import matrix_page_from
from lab.matrix import by_family, family_of, merge, outcomes

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="6">
<testcase classname="tests.e2e.test_clients" name="test_java_console_producer_and_consumer" time="3.31" />
<testcase classname="tests.e2e.test_clients" name="test_franz_go_produces_consumes_in_a_group_and_administers" time="0.61">
  <failure message="AssertionError">assert 1 == 3</failure></testcase>
<testcase classname="tests.e2e.test_clients" name="test_kafka_python_produce_consume" time="8.87" />
<testcase classname="tests.e2e.test_dataplane" name="test_idempotent_producer" time="4.2" />
<testcase classname="tests.e2e.test_dataplane" name="test_transactions" time="1.0"><error message="fixture" /></testcase>
<testcase classname="tests.e2e.test_kip1242" name="test_the_bootstrap_port_stands_for_no_node" time="2.2">
  <skipped message="why" /></testcase>
</testsuite></testsuites>
"""


def test_each_test_counts_for_the_family_its_name_or_module_says() -> None:
    assert family_of("tests.e2e.test_clients", "test_franz_go_produces") == "Go (franz-go)"
    assert family_of("tests.e2e.test_clients", "test_java_producer_and_consumer_performance") == "Java"
    assert family_of("tests.e2e.test_cluster_gateway", "test_verifiable_producer_survives") == "Java"
    assert family_of("tests.e2e.test_clients", "test_kcat_metadata_lists_only_gateway_addresses") == "kcat (librdkafka)"
    assert family_of("tests.e2e.test_clients", "test_aiokafka_produce_consume") == "aiokafka"
    assert family_of("tests.e2e.test_request_guard", "test_a_59_byte_produce") == "raw frames"
    assert family_of("tests.e2e.test_dataplane", "test_idempotent_producer") == "librdkafka (confluent-kafka)"


def test_outcomes_read_failures_errors_and_skips_from_junit_xml() -> None:
    cases = outcomes(JUNIT)
    assert [(case["name"].split("_")[1], case["outcome"]) for case in cases] == [
        ("java", "passed"), ("franz", "failed"), ("kafka", "passed"), ("idempotent", "passed"),
        ("transactions", "failed"), ("the", "skipped")]
    assert cases[0]["seconds"] == 3.31


def test_families_are_counted_and_timed() -> None:
    families = by_family(outcomes(JUNIT))
    assert families["Go (franz-go)"] == {"passed": 0, "failed": 1, "skipped": 0, "duration_s": 0.6}
    assert families["librdkafka (confluent-kafka)"] == {"passed": 1, "failed": 1, "skipped": 0, "duration_s": 5.2}
    assert families["raw frames"]["skipped"] == 1
    assert list(families) == sorted(families)


def entry(commit: str, passed: int, failed: int = 0) -> dict:
    return {"commit": commit, "date": "2026-12-05T13:00:00Z", "lab_up_s": 20.0, "tests_s": 300.0,
            "pytest_exit": 1 if failed else 0, "modules": ["tests/e2e/test_clients.py"],
            "families": {"Java": {"passed": passed, "failed": failed, "skipped": 0, "duration_s": 16.0}},
            "failed_tests": ["tests.e2e.test_clients::test_java_console"] if failed else []}


def test_a_release_run_again_replaces_its_entry_and_releases_sort_by_number() -> None:
    results = merge({}, "4.4.0", entry("aaa", 3))
    results = merge(results, "3.9.2", entry("bbb", 2, 1))
    results = merge(results, "4.1.2", entry("ccc", 3))
    results = merge(results, "4.4.0", entry("ddd", 3))
    assert list(results["versions"]) == ["3.9.2", "4.1.2", "4.4.0"]
    assert results["versions"]["4.4.0"]["commit"] == "ddd"


def test_the_page_shows_each_family_against_each_release_with_commit_and_date() -> None:
    results = merge(merge({}, "4.4.0", entry("abc123", 3)), "3.9.2", entry("def456", 2, 1))
    results["versions"]["4.4.0"]["families"]["Go (franz-go)"] = {"passed": 1, "failed": 0, "skipped": 1,
                                                                  "duration_s": 0.6}
    page = matrix_page_from(results)
    assert "| client family | Kafka 3.9.2 | Kafka 4.4.0 |" in page
    assert "| Java | FAIL 2/3 | pass 3/3 |" in page
    assert "| Go (franz-go) | not run | pass 1/1, 1 skipped |" in page
    assert "| 3.9.2 | `def456` | 2026-12-05T13:00:00Z | 20.0 s | 300.0 s | 1 | `tests.e2e.test_clients::test_java_console` |" \
        in page
    assert "| 4.4.0 | `abc123` |" in page and "| 0 | none |" in page


def test_a_matrix_never_run_says_so() -> None:
    assert matrix_page_from({}).endswith("The matrix has not been run yet.\n")
