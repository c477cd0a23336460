"""Helpers of the data-plane e2e tests: a real gateway node process, and clients run in the client netns.

Each test module runs its own node on one of the lab's gateway addresses with a port range of its
own (so modules, and other helpers' tests on port 6969, never collide), started by PID and stopped
with SIGTERM, which also proves the drain-and-exit-0 path every time.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from confluent_kafka.admin import AdminClient
from kio.serial import entity_reader, entity_writer

from gateway_app.cluster.membership import group_name, topic_name
from lab.layout import CLUSTER_SECRET

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


class GatewayNode:
    def __init__(self, lab: Any, address: str, port_start: int, http_port: int, log_dir: Path,
                 **env: str) -> None:
        self.lab = lab
        self.address = address
        self.port_start = port_start
        self.http_port = http_port
        self.log_path = log_dir / f"gateway-{address}-{port_start}.log"
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

    def start(self, timeout_s: float = 90.0, ready: bool = True) -> "GatewayNode":
        """Start and wait until /health/ready answers 200 (or, with ready=False, answers at all)."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "KAFKA_"))}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([PYTHON, "-m", "gateway_app"], cwd=REPO, env={**clean, **self.env},
                                            stdout=log, stderr=subprocess.STDOUT)
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

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (killed -9 only if it hangs)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._forget_cluster()
        return self.process.returncode

    def _forget_cluster(self) -> None:
        """Delete the node's membership topic and group from the backing cluster (best effort)."""
        cluster_id = self.env["GATEWAY_CLUSTER_ID"]
        admin = AdminClient({"bootstrap.servers": self.lab.bootstrap_servers})
        for future in admin.delete_topics([topic_name(cluster_id)], request_timeout=10).values():
            future.exception()
        for future in admin.delete_consumer_groups([group_name(cluster_id)], request_timeout=10).values():
            future.exception()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{self.http_address}:{self.http_port}{path}", timeout=3) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include `labels` (0 if absent)."""
        _, text = self.http("/metrics")
        total = 0.0
        for line in text.splitlines():
            match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
            if not match or match.group(1) != name:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(3))
        return total


def running_node(lab: Any, tmp_path_factory: Any, port_start: int, http_port: int, **env: str) -> Iterator[GatewayNode]:
    """One gateway node on the last lab gateway address for a module; it must exit 0 on SIGTERM at the end."""
    log_dir = tmp_path_factory.mktemp(f"gateway-{port_start}")
    gateway = GatewayNode(lab, lab.gateway_addresses[-1], port_start, http_port, log_dir, **env).start()
    yield gateway
    assert gateway.stop() == 0, gateway.log()[-2000:]


def node_fixture(port_start: int, http_port: int, **env: str) -> Callable[..., Any]:
    """A module-scoped `node` fixture around running_node."""

    @pytest.fixture(scope="module")
    def node(lab: Any, tmp_path_factory: Any) -> Iterator[GatewayNode]:
        yield from running_node(lab, tmp_path_factory, port_start, http_port, **env)

    return node


def kafka_exchange(address: str, port: int, header: Any, body: Any, response_type: type,
                   response_header_bytes: int = 4, timeout_s: float = 5.0) -> Any:
    """One raw request/response with kio types over a fresh TCP connection (no client library in between)."""
    buffer = io.BytesIO()
    entity_writer(type(header))(buffer, header)
    entity_writer(type(body))(buffer, body)
    payload = buffer.getvalue()
    with socket.create_connection((address, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
        frame = _recv_exactly(sock, size)
    return entity_reader(response_type)(frame[response_header_bytes:], 0)[0]


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed mid-frame")
        data += chunk
    return bytes(data)


def run_client(lab: Any, scenario: str, *args: str, timeout_s: float = 120.0) -> dict[str, Any]:
    """Run a scenario of tests/e2e/dataplane_clients.py inside the client netns; returns its JSON result."""
    argv = lab.client_cmd([PYTHON, "-m", "tests.e2e.dataplane_clients", scenario, *args])
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise AssertionError(f"{scenario} failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class BackgroundProducer:
    """The `produce-for` scenario running in the client netns while a test disturbs the system."""

    def __init__(self, lab: Any, bootstrap: str, topic: str, seconds: float, count: int = 200_000) -> None:
        self.seconds = seconds
        self.process = subprocess.Popen(
            lab.client_cmd([PYTHON, "-m", "tests.e2e.dataplane_clients", "produce-for", "--bootstrap", bootstrap,
                            "--topic", topic, "--seconds", str(seconds), "--count", str(count)]),
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def result(self) -> dict[str, Any]:
        try:
            out, _ = self.process.communicate(timeout=self.seconds + 240)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        return json.loads(out.strip().splitlines()[-1])

    def __enter__(self) -> "BackgroundProducer":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_in_client_netns(lab: Any, argv: list[str], timeout_s: float = 120.0,
                        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(lab.client_cmd(argv), cwd=REPO, capture_output=True, text=True, timeout=timeout_s,
                          input=stdin)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def java_tool(lab: Any, main_class: str, *args: str) -> list[str]:
    return ["java", "-Xmx256m", "-cp", lab.java_classpath, main_class, *args]

