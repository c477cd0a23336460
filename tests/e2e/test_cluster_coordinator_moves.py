"""The gateway cluster's group coordinator moves under running nodes; the nodes stay ready.

Each node learns who is alive by asking the coordinator of its group (a broker: the leader of one
__consumer_offsets partition). That leader moves in two everyday ways, done here one after the other
to two gateway nodes: the coordinator's broker restarts (rolling broker upgrade: leadership moves to
another replica), then a preferred-leader election of every partition gives it back while the interim
leader stays up (what Kafka's auto leader rebalance does within five minutes of the broker's return). A node that kept
asking the old coordinator reported "cannot reach the backing Kafka" and went unready until its client's
cached coordinator expired, minutes later; every node at once, so a load balancer would drop them all.
"""

from __future__ import annotations

import signal
import subprocess
from contextlib import ExitStack
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from gateway_app.cluster_names import group_name
from tests.e2e.cluster_support import (OFFSETS_TOPIC, ClusterNode, elect_preferred_leaders, forget_cluster,
                                      http_get, offsets_partition, offsets_partitions, wait_until)

REPO = Path(__file__).resolve().parents[2]
SAMPLE_EVERY_S = 0.2
LONGEST_UNREADY_S = 3.0  # readiness tolerates 3 s without an answer from the coordinator; a move costs one refresh


class ReadinessSampler:
    """Polls a node's /health/ready until stopped; reports the longest run of non-200 answers."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self.samples: list[tuple[float, int, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ReadinessSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            status, body = http_get(self.node.address, "/health/ready")
            self.samples.append((time.monotonic(), status, body))

    def longest_unready(self) -> tuple[float, bytes]:
        """Seconds of the longest unready stretch and the first answer of that stretch."""
        longest, answer, since = 0.0, b"", None
        for at, status, body in self.samples:
            if status != 200 and since is None:
                since, first = at, body
            elif status == 200 and since is not None:
                if at - since > longest:
                    longest, answer = at - since, first
                since = None
        if since is not None and self.samples[-1][0] - since > longest:
            longest, answer = self.samples[-1][0] - since, first
        return longest, answer


def partition_state(admin: AdminClient, partition: int) -> tuple[int, list[int]]:
    metadata = admin.list_topics(OFFSETS_TOPIC, timeout=10).topics[OFFSETS_TOPIC].partitions[partition]
    return metadata.leader, list(metadata.replicas)


@pytest.fixture
def led_by_preferred(lab):
    """A fresh cluster id whose group's __consumer_offsets partition is led by its preferred replica
    (so that once that broker has restarted, a preferred election moves the coordinator back to it)."""
    partitions = offsets_partitions(lab)
    for _ in range(200):
        cid = f"t-{uuid.uuid4().hex[:8]}"
        partition = offsets_partition(group_name(cid), len(partitions))
        if partitions[partition].leader == partitions[partition].replicas[0]:
            break
    else:
        pytest.fail("no __consumer_offsets partition is led by its preferred replica")
    yield cid, partition
    forget_cluster(lab, cid)


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_nodes_stay_ready_while_the_group_coordinator_moves(lab, led_by_preferred, tmp_path):
    cid, partition = led_by_preferred
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    nodes = [ClusterNode(lab, cid, f"gw-{rack}", rack, lab.gateway_addresses[i], tmp_path)
             for i, rack in enumerate(["rack-a", "rack-b"])]
    try:
        for node in nodes:
            node.wait_ready()
        # Moves start once the rebalance that let both nodes in has finished: its outcome is then in
        # the coordinator's log, which is all a new coordinator knows of the group.
        group = group_name(cid)
        described = {}

        def settled() -> bool:
            fresh = AdminClient({"bootstrap.servers": lab.bootstrap_servers})  # this test's own client must not go stale
            described["now"] = fresh.describe_consumer_groups([group], request_timeout=10)[group].result()
            return (described["now"].state == ConsumerGroupState.STABLE
                    and {m.client_id for m in described["now"].members} == {n.node_id for n in nodes})
        wait_until(settled, 30, "both nodes in a stable group", 0.5)
        coordinator, _ = partition_state(admin, partition)
        assert described["now"].coordinator.id == coordinator, "offsets_partition() disagrees with the broker"

        samplers = [ReadinessSampler(node) for node in nodes]
        with ExitStack() as sampling:
            for sampler in samplers:
                sampling.enter_context(sampler)
            restart = subprocess.run([sys.executable, "-m", "lab", "broker", "restart", str(coordinator)], cwd=REPO,
                                     capture_output=True, text=True, timeout=180)
            assert restart.returncode == 0, restart.stderr[-2000:]
            interim, _ = partition_state(admin, partition)
            assert interim != coordinator, f"leadership of {OFFSETS_TOPIC}-{partition} did not move off broker {coordinator}"
            # The nodes have refreshed against the interim coordinator all through the broker's restart (seconds, at
            # 0.5 s a refresh); the samplers keep watching through the move back, so no pause is needed here.

            # Every partition, as the auto leader rebalance does: the lab is left balanced for the tests after this.
            wait_until(lambda: elect_preferred_leaders(lab) or partition_state(admin, partition)[0] == coordinator, 20,
                       "the preferred leader to return", 1.0)
            time.sleep(8)  # several refreshes against the coordinator that just moved back

        print(f"\ncoordinator {OFFSETS_TOPIC}-{partition}: broker {coordinator} -> {interim} (restart) -> {coordinator} (election)")
        for node, sampler in zip(nodes, samplers):
            longest, answer = sampler.longest_unready()
            answer = " ".join(answer.decode(errors="replace").split())  # the readiness JSON on one line
            print(f"{node.node_id}: {len(sampler.samples)} readiness samples, longest unready {longest:.1f}s {answer}")
            assert longest <= LONGEST_UNREADY_S, f"{node.node_id} unready for {longest:.1f}s: {answer}"
        assert all(node.ready() for node in nodes)
        for node in nodes:  # both drain at once; one SIGTERM each (a second one can land after the handler is gone)
            node.proc.send_signal(signal.SIGTERM)
        for node in nodes:
            assert node.proc.wait(20) == 0
    finally:
        for node in nodes:
            node.kill()
