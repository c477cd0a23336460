"""The benchmark checks its own runs: what Kafka's tools and bench.latency printed, good and bad, and the verdict.

The outputs in fixtures/bench_tools were captured on the lab (Kafka 4.4.0, three brokers, no gateway) with the
benchmark's own arguments (bench/perf_tools.py), at 20000 1 KiB records:
- produce_ok: ProducerPerformance --num-records 20000, acks=all;
- produce_failed: the same with --num-records 2000 and max.request.size=900, so every send fails with
  RecordTooLargeException (stderr: the first 3 of its 2000 identical lines);
- consume_ok / consume_short: ConsumerPerformance asked for 20000 / 30000 records of that topic (--timeout 20000 /
  5000): the second stops at its timeout with the 20000 there were;
- e2e_ok: EndToEndLatency --num-records 1000 --producer-acks all --record-size 1024;
- latency_ok / latency_errors: `python -m bench.latency BOOTSTRAP TOPIC RATE 3 [10]`, at 2000/s, and at 4000/s
  with message.timeout.ms 10, where 207 records were not delivered in time.
"""

import json
from pathlib import Path

import pytest

from bench.latency import accepted
from bench.perf_tools import RejectedRun, consume_result, end_to_end_result, produce_result

CAPTURED = Path(__file__).with_name("fixtures") / "bench_tools"


def captured(name: str) -> str:
    return (CAPTURED / name).read_text()


def test_a_complete_producer_run_is_read():
    result = produce_result(captured("produce_ok.out"), "", 20000)
    assert (result.records, result.mb_per_s, result.p50_ms, result.p99_ms) == (20000, 2.13, 2088.0, 4892.0)


def test_a_producer_run_with_failed_sends_is_rejected():
    with pytest.raises(RejectedRun, match=r"0 of 2000 records acknowledged; .*RecordTooLargeException"):
        produce_result(captured("produce_failed.out"), captured("produce_failed.err"), 2000)


def test_a_producer_run_is_rejected_when_it_sent_fewer_records_than_asked():
    with pytest.raises(RejectedRun, match="20000 of 20001 records acknowledged"):
        produce_result(captured("produce_ok.out"), "", 20001)


def test_a_complete_consumer_run_is_read():
    result = consume_result(captured("consume_ok.out"), "", 20000)
    assert (result.records, result.mb_per_s) == (20000, 38.0726)


def test_a_consumer_run_that_read_fewer_records_than_asked_is_rejected():
    with pytest.raises(RejectedRun, match=r"read 20000 of 30000 records\. WARNING: Exiting before consuming"):
        consume_result(captured("consume_short.out"), "", 30000)


def test_end_to_end_latency_is_read():
    result = end_to_end_result(captured("e2e_ok.out"), 1000)
    assert (result.avg_ms, result.p50_ms, result.p99_ms, result.p999_ms) == (2.2831, 1.0, 14.0, 134.0)


def test_end_to_end_output_without_its_figures_is_rejected():
    with pytest.raises(RejectedRun, match="unexpected EndToEndLatency output"):
        end_to_end_result(captured("e2e_ok.out").replace("Avg latency", "Average"), 1000)


def test_a_latency_run_with_every_record_delivered_is_kept():
    result = json.loads(captured("latency_ok.out"))
    assert accepted(result) is result


def test_a_latency_run_with_delivery_errors_is_rejected():
    with pytest.raises(RejectedRun, match="207 delivery errors, 0 undelivered"):
        accepted(json.loads(captured("latency_errors.out")))


def test_a_latency_run_with_undelivered_records_is_rejected():
    result = {**json.loads(captured("latency_ok.out")), "undelivered": 3}
    with pytest.raises(RejectedRun, match="0 delivery errors, 3 undelivered"):
        accepted(result)
