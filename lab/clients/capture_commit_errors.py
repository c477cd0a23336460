"""``python -m lab.clients.capture_commit_errors``: real failed commits of Kafka's VerifiableConsumer, for the fixture
of tests/unit/test_client_outcomes.py (tests/unit/fixtures/verifiable_consumer_commit_errors.events).

The tool prints a failed commit's message only, never its class (lab/clients/outcomes.commit_error_name names it);
the fixture keeps lines the tool really printed, so that a message read wrongly fails a test. This makes one class
of them happen on the lab, directly on the brokers (the tool's text does not depend on the path to them): one member
with the cooperative assignor consumes a producer's records while a second member joins and leaves, --rounds times.
A cooperative member keeps fetching while its group rebalances, so it commits between its JoinGroup and its
SyncGroup, and the Java consumer refuses that commit itself (RebalanceInProgressException, "... the consumer is
undergoing a rebalance ...").

Prints each failed commit line and the same member's good commit before it, as the tool wrote them. Hold the lab's
lock while it runs. Bounded: --rounds rounds of JOIN_S + LEAVE_S seconds, every process killed at the end.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from lab.clients.cluster_clients import verifiable_consumer, verifiable_producer
from lab.state import LabState

COOPERATIVE = "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"
JOIN_S, LEAVE_S = 8.0, 6.0  # a member's stay and absence: each is one rebalance, the JVM's start included
START_S = 20.0  # the first member's JVM and its first assignment
RATE = 200  # records/s: every poll returns records, so every poll is followed by a commit


def failed_commits(lines: list[str]) -> list[str]:
    """Each failed offsets_committed line and the good one before it, in the tool's own words."""
    kept, last_good = [], None
    for line in lines:
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("name") != "offsets_committed":
            continue
        if event.get("success", True):
            last_good = line
        else:
            kept += [line] if last_good is None or last_good in kept else [last_good, line]
    return kept


def capture(lab: LabState, rounds: int) -> list[str]:
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    topic = f"capture-{uuid.uuid4().hex[:6]}"
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=3)], request_timeout=15)[topic].result()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="kgw-capture-") as tmp:
        workdir = Path(tmp)

        def member(name: str) -> subprocess.Popen:
            argv = verifiable_consumer(lab, workdir, lab.bootstrap_servers, topic, f"{topic}-group",
                                       "--assignment-strategy", COOPERATIVE)
            proc = subprocess.Popen(argv, stdout=(workdir / f"{name}.events").open("w"),
                                    stderr=(workdir / f"{name}.stderr").open("w"))
            procs.append(proc)
            return proc

        try:
            seconds = START_S + rounds * (JOIN_S + LEAVE_S) + 10
            procs.append(subprocess.Popen(verifiable_producer(lab, workdir, lab.bootstrap_servers, topic,
                                                              int(RATE * seconds), RATE, 1),
                                          stdout=subprocess.DEVNULL, stderr=(workdir / "producer.stderr").open("w")))
            member("steady")
            time.sleep(START_S)
            for number in range(rounds):
                joining = member(f"joining-{number}")
                time.sleep(JOIN_S)
                joining.send_signal(signal.SIGTERM)  # it leaves the group: one more rebalance
                joining.wait(30)
                time.sleep(LEAVE_S)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(60)
            admin.delete_topics([topic], request_timeout=10)[topic].exception()
        return [line for events in sorted(workdir.glob("*.events"))
                for line in failed_commits(events.read_text().splitlines())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.clients.capture_commit_errors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="times the second member joins and leaves (default 6)")
    args = parser.parse_args(argv)
    lines = capture(LabState.load(), args.rounds)
    print("\n".join(lines))
    return 0 if lines else 1


if __name__ == "__main__":
    sys.exit(main())
