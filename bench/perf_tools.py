"""Kafka's own ProducerPerformance / ConsumerPerformance, run and parsed."""

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
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


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


def _java(lab: LabState, main_class: str, args: list[str], timeout: float) -> str:
    _LOG_CONFIG.write_text(_QUIET_LOG4J2)
    argv = ["java", "-Xmx512m", f"-Dlog4j2.configurationFile={_LOG_CONFIG}", "-cp", lab.java_classpath,
            main_class, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{main_class} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def produce(lab: LabState, bootstrap: str, topic: str, records: int, *, throughput: int = -1,
            props: dict[str, str] | None = None, record_size: int = 1024) -> ProduceResult:
    producer_props = {"bootstrap.servers": bootstrap, "acks": "all", **(props or {})}
    out = _java(lab, "org.apache.kafka.tools.ProducerPerformance", [
        "--topic", topic, "--num-records", str(records), "--record-size", str(record_size),
        "--throughput", str(throughput), "--producer-props", *(f"{k}={v}" for k, v in producer_props.items()),
    ], timeout=300)
    summary = _PRODUCER_SUMMARY.search(out.strip().splitlines()[-1])
    if not summary:
        raise RuntimeError(f"unexpected ProducerPerformance output: {out[-500:]}")
    return ProduceResult(int(summary["records"]), float(summary["rps"]), float(summary["mbps"]),
                         float(summary["p50"]), float(summary["p99"]))


def consume(lab: LabState, bootstrap: str, topic: str, records: int) -> ConsumeResult:
    out = _java(lab, "org.apache.kafka.tools.ConsumerPerformance", [
        "--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records),
        "--group", f"bench-{uuid.uuid4().hex[:8]}", "--timeout", "60000",
        "--consumer.config", "/dev/null", "--hide-header",
    ], timeout=300)
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms,
    # fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec — fetch.MB.sec leaves out the group join, which is not throughput.
    fields = [f.strip() for f in out.strip().splitlines()[-1].split(",")]
    return ConsumeResult(records=int(fields[4]), mb_per_s=float(fields[8]))
