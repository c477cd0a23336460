"""Kafka's own ProducerPerformance / ConsumerPerformance / EndToEndLatency, run, parsed and checked.

A run that did not do what it was asked is rejected (RejectedRun), never averaged: ProducerPerformance counts
only acknowledged records in its summary and prints each failed send's exception, so a run with failed sends
reports fewer records than asked (and a faster, emptier run); ConsumerPerformance stops at its timeout with
what it read; EndToEndLatency exits non-zero on a record it did not get back.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from lab.state import LabState

_QUIET_LOG4J2 = "rootLogger.level = WARN\nrootLogger.appenderRef.out.ref = out\nappender.out.type = Console\n" \
    "appender.out.name = out\nappender.out.target = SYSTEM_ERR\nappender.out.layout.type = PatternLayout\n" \
    "appender.out.layout.pattern = %p %m%n\n"
_LOG_CONFIG = Path(tempfile.gettempdir()) / "kgw-bench-log4j2.properties"

# "200000 records sent, 45018.0 records/sec (43.96 MB/sec), 456.25 ms avg latency, 869.00 ms max latency,
#  452 ms 50th, 803 ms 95th, 852 ms 99th, 867 ms 99.9th."
_PRODUCER_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+|NaN) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


# "Avg latency: 2.4560 ms" and "Percentiles: 50th = 2, 99th = 5, 99.9th = 11"
_E2E_AVERAGE = re.compile(r"^Avg latency: (?P<avg>[\d.]+) ms$", re.M)
_E2E_PERCENTILES = re.compile(r"^Percentiles: 50th = (?P<p50>\d+), 99th = (?P<p99>\d+), 99\.9th = (?P<p999>\d+)$",
                              re.M)


class RejectedRun(RuntimeError):
    """A tool run that did not do what it was asked (failed sends, records not read): its figures are not used."""


@dataclass(frozen=True)
class ProduceResult:
    records: int
    records_per_s: float
    mb_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class ConsumeResult:
    records: int
    mb_per_s: float


@dataclass(frozen=True)
class EndToEndResult:
    """EndToEndLatency: each record produced (acks=all) and consumed before the next; produce to poll, ms."""
    records: int
    avg_ms: float
    p50_ms: float
    p99_ms: float
    p999_ms: float


def _java(lab: LabState, main_class: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    _LOG_CONFIG.write_text(_QUIET_LOG4J2)
    argv = ["java", "-Xmx512m", f"-Dlog4j2.configurationFile={_LOG_CONFIG}", "-cp", lab.java_classpath,
            main_class, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RejectedRun(f"{main_class} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def produce(lab: LabState, bootstrap: str, topic: str, records: int, *, throughput: int = -1,
            props: dict[str, str] | None = None, record_size: int = 1024) -> ProduceResult:
    producer_props = {"bootstrap.servers": bootstrap, "acks": "all", **(props or {})}
    done = _java(lab, "org.apache.kafka.tools.ProducerPerformance", [
        "--topic", topic, "--num-records", str(records), "--record-size", str(record_size),
        "--throughput", str(throughput), "--producer-props", *(f"{k}={v}" for k, v in producer_props.items()),
    ], timeout=300)
    return produce_result(done.stdout, done.stderr, records)


def produce_result(stdout: str, stderr: str, asked: int) -> ProduceResult:
    """ProducerPerformance's summary line, if every record asked for was acknowledged."""
    lines = stdout.strip().splitlines()
    summary = _PRODUCER_SUMMARY.search(lines[-1]) if lines else None
    if not summary:
        raise RejectedRun(f"unexpected ProducerPerformance output: {stdout[-500:]}")
    acknowledged = int(summary["records"])  # its callback counts a record only when the send succeeded
    if acknowledged != asked:
        first_error = next((line for line in stderr.splitlines() if "Exception" in line), "no exception printed")
        raise RejectedRun(f"ProducerPerformance: {acknowledged} of {asked} records acknowledged; "
                          f"{first_error[:300]}")
    return ProduceResult(acknowledged, float(summary["rps"]), float(summary["mbps"]),
                         float(summary["p50"]), float(summary["p99"]))


def consume(lab: LabState, bootstrap: str, topic: str, records: int) -> ConsumeResult:
    done = _java(lab, "org.apache.kafka.tools.ConsumerPerformance", [
        "--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records),
        "--group", f"bench-{uuid.uuid4().hex[:8]}", "--timeout", "60000",
        "--consumer.config", "/dev/null", "--hide-header",
    ], timeout=300)
    return consume_result(done.stdout, done.stderr, records)


def consume_result(stdout: str, stderr: str, asked: int) -> ConsumeResult:
    """ConsumerPerformance's figures, if it read every record asked for (it stops at its timeout with fewer)."""
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms,
    # fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec — fetch.MB.sec leaves out the group join, which is not throughput.
    lines = stdout.strip().splitlines()
    fields = [f.strip() for f in lines[-1].split(",")] if lines else []
    if len(fields) < 10:
        raise RejectedRun(f"unexpected ConsumerPerformance output: {stdout[-500:]}")
    read = int(fields[4])
    if read < asked:
        warning = next((line for line in (stdout + stderr).splitlines() if "WARNING" in line), "")
        raise RejectedRun(f"ConsumerPerformance read {read} of {asked} records. {warning}".strip())
    return ConsumeResult(records=read, mb_per_s=float(fields[8]))


def end_to_end(lab: LabState, bootstrap: str, topic: str, records: int, record_size: int = 1024) -> EndToEndResult:
    """Kafka's EndToEndLatency: one record at a time, acks=all, produced and read back on `topic` (which exists)."""
    done = _java(lab, "org.apache.kafka.tools.EndToEndLatency", [
        "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records),
        "--producer-acks", "all", "--record-size", str(record_size),
    ], timeout=300)
    return end_to_end_result(done.stdout, records)


def end_to_end_result(stdout: str, asked: int) -> EndToEndResult:
    average, percentiles = _E2E_AVERAGE.search(stdout), _E2E_PERCENTILES.search(stdout)
    if not average or not percentiles:
        raise RejectedRun(f"unexpected EndToEndLatency output: {stdout[-500:]}")
    return EndToEndResult(asked, float(average["avg"]), float(percentiles["p50"]), float(percentiles["p99"]),
                          float(percentiles["p999"]))
