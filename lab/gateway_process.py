"""A gateway node process on the lab controller: what the e2e tests, the benchmark and the soak start.

`GatewayNode` runs `python -m gateway_app` by PID on one of the lab's gateway addresses, with an environment of its
own (no GATEWAY_*/KAFKA_* variable of the caller leaks in), waits until /health/ready answers 200, and stops it
with SIGTERM, which also proves the drain-and-exit-0 path every time. `forget_cluster` is the one clean-up of a
gateway cluster's membership topic and group.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from gateway_app.cluster_names import group_name, topic_name

from .layout import CLUSTER_SECRET
from .polling import wait_until

REPO = Path(__file__).resolve().parents[1]
CLUSTER_PORT_START, CLUSTER_HTTP_PORT = 6969, 8888  # the ports of a cluster node (ClusterNode)
PYTHON = sys.executable

LOG_PROBLEMS = ("Traceback (most recent call last)", "Fatal Python error")
SUPERVISED = "gateway cluster membership failed"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def forget_cluster(bootstrap_servers: str, cluster_id: str) -> None:
    """Delete a gateway cluster's members topic and group from the backing cluster (best effort)."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    for future in admin.delete_topics([topic_name(cluster_id)], request_timeout=10).values():
        future.exception()
    for future in admin.delete_consumer_groups([group_name(cluster_id)], request_timeout=10).values():
        future.exception()


class GatewayNode:
    """One node with a gateway cluster of its own unless GATEWAY_CLUSTER_ID is given; `source` is the checkout
    whose gateway_app runs (a benchmark compares revisions)."""

    def __init__(self, lab: Any, address: str, port_start: int, http_port: int, log_dir: Path,
                 log_name: str | None = None, source: Path = REPO, **env: str) -> None:
        self.lab = lab
        self.address = address
        self.port_start = port_start
        self.http_port = http_port
        self.source = source
        self.log_path = log_dir / (log_name or f"gateway-{address}-{port_start}.log")
        self.env = {
            "GATEWAY_BIND_HOST": address, "GATEWAY_ADVERTISED_HOST": address,
            "GATEWAY_PORT_START": str(port_start), "GATEWAY_HTTP_PORT": str(http_port),
            "GATEWAY_NODE_ID": f"dp-{port_start}", "GATEWAY_DRAIN_TIMEOUT_S": "5",
            "GATEWAY_CLUSTER_ID": unique("dp"),  # a cluster of its own: no other test's node joins the mapping
            "GATEWAY_CLUSTER_SECRET": CLUSTER_SECRET,
            "KAFKA_BOOTSTRAP_SERVERS": lab.bootstrap_servers, **env,
        }
        self.http_address = self.env.get("GATEWAY_HTTP_BIND_HOST") or address
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.address}:{self.port_start}"

    def launch(self) -> "GatewayNode":
        """Start the process and return at once (see wait_ready)."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "KAFKA_"))}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([PYTHON, "-m", "gateway_app"], cwd=self.source, env={**clean, **self.env},
                                            stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout_s: float = 90.0, ready: bool = True) -> "GatewayNode":
        """Until /health/ready answers 200 (or, with ready=False, answers at all)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited with {self.process.returncode}: {self.log()[-2000:]}")
            status = self.http("/health/ready")[0]
            if status == 200 or (status and not ready):
                return self
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"gateway not ready within {timeout_s}s: {self.log()[-2000:]}")

    def start(self, timeout_s: float = 90.0, ready: bool = True) -> "GatewayNode":
        return self.launch().wait_ready(timeout_s, ready)

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (killed -9 only if it hangs)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def stop(self, timeout_s: float = 30.0) -> int:
        """terminate(), then forget the node's gateway cluster."""
        code = self.terminate(timeout_s)
        forget_cluster(self.lab.bootstrap_servers, self.env["GATEWAY_CLUSTER_ID"])
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_problems(self) -> list[str]:
        """Lines of the node's log that only a bug of ours writes: a Python traceback, a fatal error. A traceback
        the membership's supervisor logs before it restarts the membership (counted in
        gateway_cluster_membership_restarts_total; a broker restart can cause one) is not one of them."""
        found, previous = [], ""
        for line in self.log().splitlines():
            if any(mark in line for mark in LOG_PROBLEMS) and SUPERVISED not in previous:
                found.append(line)
            previous = line
        return found

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{self.http_address}:{self.http_port}{path}", timeout=3) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include `labels` (see metric_sum); AssertionError when
        /metrics cannot be read, so a check of "nothing happened" cannot pass on nothing measured."""
        status, text = self.http("/metrics")
        if status != 200:
            raise AssertionError(f"/metrics of {self.http_address}:{self.http_port} answered {status or 'nothing'}")
        return metric_sum(text, name, labels)


SAMPLE_SUFFIXES = ("_total", "_sum", "_count", "_bucket", "_created", "_info")


def metric_sum(text: str, name: str, labels: dict[str, str]) -> float:
    """Sum of the samples named `name` in a Prometheus text exposition whose labels include `labels`.

    0 when the family is exported but no sample has those labels yet (a labelled counter shows a sample
    only once it counted something); AssertionError when no family of that name is exported at all
    (a typo, or a metric that was renamed), which would otherwise read as 0 forever."""
    families, total = set(), 0.0
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            families.add(line.split()[2])
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    if name not in families and not any(name == family + suffix for family in families for suffix in SAMPLE_SUFFIXES):
        raise AssertionError(f"no metric {name} is exported (families: {len(families)})")
    return total


class ClusterNode(GatewayNode):
    """One member of a gateway cluster (tests, soak) on a lab gateway address, started at once (see wait_ready)."""

    def __init__(self, lab: Any, cluster_id: str, node_id: str, rack: str | None, address: str, log_dir: Path,
                 internal_load_balancing: bool = True, advertised_host: str | None = None, **env: str) -> None:
        super().__init__(lab, address, CLUSTER_PORT_START, CLUSTER_HTTP_PORT, log_dir, log_name=f"{node_id}.log",
                         GATEWAY_CLUSTER_ID=cluster_id, GATEWAY_NODE_ID=node_id, GATEWAY_RACK_ID=rack or "",
                         GATEWAY_ADVERTISED_HOST=advertised_host or address,
                         GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING=str(internal_load_balancing).lower(), **env)
        self.node_id = node_id
        self.launch()

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self.process is not None
        return self.process

    def ready(self) -> bool:
        return self.http("/health/ready")[0] == 200

    def wait_ready(self, timeout_s: float = 40.0, ready: bool = True) -> "ClusterNode":
        """Until /health/ready answers 200 (or, with ready=False, answers at all). Unlike a lone node, one that
        does not get there is left running and its gateway cluster kept: the test's other nodes share it."""
        answered = self.ready if ready else (lambda: self.http("/health/ready")[0] != 0)
        wait_until(lambda: answered() or self.proc.poll() is not None, timeout_s, f"{self.node_id} ready", 0.2)
        assert self.proc.poll() is None, f"{self.node_id} exited:\n{self.log_path.read_text()[-3000:]}"
        return self

    def terminate(self, timeout_s: float = 20.0) -> int:
        return super().terminate(timeout_s)
